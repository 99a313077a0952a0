#include "control/audit_forwarder.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "api/audit.h"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

namespace tandem::control {
namespace {

using std::chrono::milliseconds;

// Waits up to 5 s for `done`.
template <typename F>
bool Eventually(F done) {
  for (int i = 0; i < 500; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return done();
}

TEST(AuditForwarderTest, EventsWaitForARegionAndArriveInOrder) {
  std::mutex mu;
  std::vector<std::string> written;
  int refusals = 3;  // no region is active for the first three tries
  AuditForwarder f(
      [&](const std::string& e) -> Status {
        std::lock_guard lock(mu);
        if (refusals > 0) {
          --refusals;
          return Unavailable("no region is active");
        }
        written.push_back(e);
        return Status::Ok();
      },
      milliseconds(5));
  f.Add("failover asked by alice");
  f.Add("failover succeeded");
  ASSERT_TRUE(Eventually([&] { return f.pending() == 0; }));
  std::lock_guard lock(mu);
  EXPECT_EQ(written, (std::vector<std::string>{"failover asked by alice", "failover succeeded"}));
  EXPECT_EQ(refusals, 0);
}

TEST(AuditForwarderTest, AnEventRefusedAsMalformedIsDroppedAndTheRestGoOn) {
  std::mutex mu;
  std::vector<std::string> written;
  AuditForwarder f(
      [&](const std::string& e) -> Status {
        if (e == "bad") return InvalidArgument("field `status` must be an HTTP status");
        std::lock_guard lock(mu);
        written.push_back(e);
        return Status::Ok();
      },
      milliseconds(5));
  f.Add("bad");
  f.Add("good");
  ASSERT_TRUE(Eventually([&] { return f.pending() == 0; }));
  std::lock_guard lock(mu);
  EXPECT_EQ(written, std::vector<std::string>{"good"});
}

TEST(AuditForwarderTest, BeyondItsCapacityTheOldestIsDropped) {
  std::mutex gate;
  gate.lock();  // the region answers nothing until the test says so
  std::vector<std::string> written;
  AuditForwarder f(
      [&](const std::string& e) -> Status {
        if (!gate.try_lock()) return Unavailable("down");
        gate.unlock();
        written.push_back(e);
        return Status::Ok();
      },
      milliseconds(5), 2);
  f.Add("1");
  f.Add("2");
  f.Add("3");
  EXPECT_LE(f.pending(), 2u);
  gate.unlock();
  ASSERT_TRUE(Eventually([&] { return f.pending() == 0; }));
  EXPECT_EQ(written.back(), "3");
  EXPECT_EQ(std::count(written.begin(), written.end(), "1"), 0);
}

}  // namespace
}  // namespace tandem::control

namespace tandem::control {
namespace {

// What the control plane sends is what the region reads back, and the region refuses anything
// else (the route is the pair's, but a bug on either side must not write a malformed event).
TEST(AuditWireTest, RoundTripsAndRefusesMalformedEvents) {
  store::AuditEvent e;
  e.principal = "user alice";
  e.source = "127.0.0.1";
  e.event = "failover_succeeded";
  e.route = "/api/v1/dr/failover";
  e.path = "/api/v1/dr/operations/7";
  e.status = 200;
  e.outcome = "ok";
  e.detail = R"({"operation":7,"rto_seconds":1.2})";
  Result<store::AuditEvent> back = api::AuditEventFromWire(api::AuditEventToWire(e));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->principal, e.principal);
  EXPECT_EQ(back->event, e.event);
  EXPECT_EQ(back->status, 200);
  EXPECT_EQ(back->detail, e.detail);
  EXPECT_FALSE(back->deployment_id.has_value());

  nlohmann::json good = nlohmann::json::parse(api::AuditEventToWire(e));
  auto refused = [&](const char* key, const nlohmann::json& value) {
    nlohmann::json bad = good;
    if (value.is_discarded()) {
      bad.erase(key);
    } else {
      bad[key] = value;
    }
    Result<store::AuditEvent> r = api::AuditEventFromWire(bad.dump());
    return !r.ok() && r.status().code() == Code::kInvalidArgument;
  };
  EXPECT_TRUE(refused("outcome", "maybe"));
  EXPECT_TRUE(refused("status", 42));
  EXPECT_TRUE(refused("status", "200"));
  EXPECT_TRUE(refused("deployment_id", "not-a-uuid"));
  EXPECT_TRUE(refused("detail", "a string"));
  EXPECT_TRUE(refused("principal", std::string(5000, 'x')));
  EXPECT_TRUE(refused("unknown", 1));
  EXPECT_TRUE(refused("principal", nlohmann::json(nlohmann::json::value_t::discarded)));
  EXPECT_FALSE(api::AuditEventFromWire("[1]").ok());
}

}  // namespace
}  // namespace tandem::control
