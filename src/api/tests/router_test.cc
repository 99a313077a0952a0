#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "api/http.h"

namespace tandem::api {
namespace {

using std::chrono::milliseconds;

// A handler that holds its request until the test lets it go.
class Hold {
 public:
  Response Serve() {
    std::unique_lock lock(mu_);
    held_ = true;
    cv_.notify_all();
    cv_.wait(lock, [this] { return released_; });
    return Response{200, "{}"};
  }
  bool WaitHeld() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [this] { return held_; });
  }
  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;
  bool released_ = false;
};

Request Get(const std::string& method, const std::string& path) {
  Request r;
  r.method = method;
  r.path = path;
  return r;
}

TEST(RouterTest, UsersRequestsBeyondTheLimitWaitThenAre503WhileWorkersPass) {
  Router router;
  router.set_authorizer([](Request&, auth::Need) { return Status::Ok(); });
  router.set_user_limit(1, milliseconds(50));
  Hold hold;
  router.Add("GET", "/api/v1/deployments", [&](const Request&) { return hold.Serve(); });
  router.Add("POST", "/execution/v1/claim", [](const Request&) { return Response{200, "{}"}; });
  router.Add("GET", "/healthz", [](const Request&) { return Response{200, "{}"}; });

  std::thread first([&] {
    Request r = Get("GET", "/api/v1/deployments");
    EXPECT_EQ(router.Dispatch(r).status, 200);
  });
  ASSERT_TRUE(hold.WaitHeld());
  // The one slot is taken: a second user request waits its 50 ms and is told to come back.
  Request second = Get("GET", "/api/v1/deployments");
  Response busy = router.Dispatch(second);
  EXPECT_EQ(busy.status, 503);
  EXPECT_NE(busy.body.find("\"detail\""), std::string::npos) << busy.body;
  bool retry_after = false;
  for (const auto& [name, value] : busy.headers) retry_after |= name == "Retry-After";
  EXPECT_TRUE(retry_after);
  // The region's own traffic is not counted.
  Request claim = Get("POST", "/execution/v1/claim");
  EXPECT_EQ(router.Dispatch(claim).status, 200);
  Request health = Get("GET", "/healthz");
  EXPECT_EQ(router.Dispatch(health).status, 200);
  hold.Release();
  first.join();
  // The slot is back (the handler holds nothing now).
  Request third = Get("GET", "/api/v1/deployments");
  EXPECT_EQ(router.Dispatch(third).status, 200);
}

TEST(RouterTest, ARefusedCredentialTakesNoSlot) {
  Router router;
  router.set_authorizer([](Request&, auth::Need) { return Unauthenticated("no credential"); });
  router.set_user_limit(1, milliseconds(10));
  router.Add("GET", "/api/v1/deployments", [](const Request&) { return Response{200, "{}"}; });
  for (int i = 0; i < 3; ++i) {
    Request r = Get("GET", "/api/v1/deployments");
    EXPECT_EQ(router.Dispatch(r).status, 401);
  }
}

}  // namespace
}  // namespace tandem::api
