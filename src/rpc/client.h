// A small HTTP client for the calls between tandem's own processes: control plane <-> region
// agents (health checks, leases, failover steps). Every call is bounded by a timeout and carries
// a bearer credential; httplib stays in client.cc.
//
// Connections are kept and reused: a TLS handshake costs more CPU than most of these calls (a
// lease renewal, a batch of log chunks), and they come several times a second. A connection idle
// for longer than kReuseIdle is not reused: the servers close one idle for 2 s, and over TLS a
// closed one still looks usable until a call fails on it.
//
// Thread-safety: Call() may run on many threads at once; each takes a kept connection or opens
// one, and gives it back when the call got an answer.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "tls/certificates.h"

namespace tandem::rpc {

struct Reply {
  int status = 0;
  std::string body;
};

class Client {
 public:
  static constexpr std::chrono::milliseconds kReuseIdle{1500};

  // `base_url` is "http://host:port" or "https://host:port". `timeout` bounds connecting,
  // sending and reading each. `source_address`, when set, is the local address calls come from
  // (a process's own address: loopback traffic would otherwise all come from 127.0.0.1, and a
  // network rule could not tell one region's calls from another's). An https peer's certificate
  // must chain to `trust`'s CA and carry the host of `base_url`.
  Client(std::string base_url, std::string bearer, Duration timeout,
         std::string source_address = "", tls::Trust trust = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Unavailable (naming the URL) when the peer cannot be reached or does not answer in time;
  // any HTTP answer is a Reply.
  Result<Reply> Call(const std::string& method, const std::string& path,
                     const std::string& body = "") const;
  // As Call, but a non-2xx answer becomes a Status: the body's "detail" with a code that
  // matches the HTTP status (409 FailedPrecondition, 503 Unavailable, 401 Unauthenticated...).
  Result<std::string> CallOk(const std::string& method, const std::string& path,
                             const std::string& body = "") const;

  const std::string& base_url() const { return base_; }

 private:
  std::string base_;
  std::string host_;
  int port_ = 0;
  std::string bearer_;
  Duration timeout_;
  std::string source_;
  bool https_ = false;
  tls::Trust trust_;

  struct Connection;
  std::unique_ptr<Connection> Take() const;
  void GiveBack(std::unique_ptr<Connection> c) const;
  mutable std::mutex mu_;
  mutable std::vector<std::unique_ptr<Connection>> idle_;  // guarded by mu_; newest last
};

// The bearer the pair's processes use between themselves, derived from the shared secret key
// (base64 text), so nobody without the key can grant leases, promote or fence.
Result<std::string> InternalCredential(const std::string& secret_key_base64);

}  // namespace tandem::rpc
