// A loopback HTTP/1.1 server for tests that keeps every request exactly as it arrived (the raw
// request target, every header) and answers each from a handler. One thread, one request per
// connection; stopped and joined by its destructor.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"

namespace tandem::logs::test {

struct RawRequest {
  std::string method;
  std::string target;                         // path and query, not decoded
  std::map<std::string, std::string> headers;  // lowercase names; repeats joined by ", "
  std::string body;
  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

struct CannedResponse {
  int status = 200;
  std::string body;
};

class FakeHttpServer {
 public:
  using Handler = std::function<CannedResponse(const RawRequest&)>;
  static Result<std::unique_ptr<FakeHttpServer>> Start(Handler handler);
  ~FakeHttpServer();
  FakeHttpServer(const FakeHttpServer&) = delete;
  FakeHttpServer& operator=(const FakeHttpServer&) = delete;

  int port() const { return port_; }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<RawRequest> requests() const;

 private:
  FakeHttpServer(int fd, int port, Handler handler);
  void Serve();
  void ServeOne(int conn);

  const int fd_;
  const int port_;
  const Handler handler_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<RawRequest> requests_;  // guarded by mu_
  std::thread thread_;
};

}  // namespace tandem::logs::test
