// rpc::Client against a loopback HTTP server: calls reuse a kept connection, a connection idle
// past kReuseIdle is replaced, concurrent calls each get one, and a peer that is gone is
// Unavailable.
#include "rpc/client.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace tandem::rpc {
namespace {

using namespace std::chrono_literals;

class Server {
 public:
  Server() {
    // As tandem's servers (api/http.cc); httplib's default closes after 5 requests.
    server_.set_keep_alive_max_count(1000);
    server_.set_keep_alive_timeout(5);
    server_.Get("/port", [this](const httplib::Request& req, httplib::Response& res) {
      {
        std::lock_guard lock(mu_);
        ports_.insert(req.remote_port);
      }
      res.set_content(std::to_string(req.remote_port), "text/plain");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    for (int i = 0; i < 500 && !server_.is_running(); ++i) std::this_thread::sleep_for(2ms);
  }
  ~Server() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  size_t connections() {
    std::lock_guard lock(mu_);
    return ports_.size();
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  std::set<int> ports_;
};

TEST(RpcClientTest, CallsReuseAKeptConnectionUntilItIdlesTooLong) {
  Server server;
  Client c(server.url(), "", 2s);
  auto first = c.Call("GET", "/port");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  const size_t before = server.connections();
  for (int i = 0; i < 5; ++i) {
    auto again = c.Call("GET", "/port");
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->body, first->body) << "call " << i << " opened a new connection";
  }
  EXPECT_EQ(server.connections(), before);
  std::this_thread::sleep_for(Client::kReuseIdle + 200ms);
  auto later = c.Call("GET", "/port");
  ASSERT_TRUE(later.ok());
  EXPECT_NE(later->body, first->body);
  EXPECT_EQ(server.connections(), before + 1);
}

TEST(RpcClientTest, ConcurrentCallsEachGetAConnection) {
  Server server;
  Client c(server.url(), "", 2s);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  threads.reserve(8);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        if (c.Call("GET", "/port").ok()) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 160);
  EXPECT_LE(server.connections(), 8u + 20u);  // kept connections were reused, not one per call
  EXPECT_LT(server.connections(), 160u);
}

TEST(RpcClientTest, APeerThatIsGoneIsUnavailable) {
  std::string url;
  {
    Server server;
    url = server.url();
    Client c(url, "", 1s);
    ASSERT_TRUE(c.Call("GET", "/port").ok());
  }
  Client c(url, "", 1s);
  auto r = c.Call("GET", "/port");
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_NE(r.status().message().find(url), std::string::npos) << r.status().ToString();
}

}  // namespace
}  // namespace tandem::rpc
