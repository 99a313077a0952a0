// A real Knot DNS server on loopback: its zone, signed updates, refused keys, a restart, and the
// caching resolver in front of it.
#include "dns/knot_server.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <optional>

#include "base/fs.h"
#include "base/net.h"
#include "base/process.h"
#include "crypto/secret_box.h"
#include "dns/dns.h"

namespace tandem::dns {
namespace {

using namespace std::chrono_literals;

constexpr char kKnotd[] = "/usr/sbin/knotd";

std::string RunAs() { return RunningAsRoot() ? "tandem" : ""; }

TsigKey NewKey(const std::string& name = "tandem-update") {
  return TsigKey{name, "hmac-sha256", NewSecretKeyBase64()};
}

class KnotServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kKnotd, X_OK) != 0) GTEST_SKIP() << "no knotd (scripts/setup.sh installs knot)";
    auto dir = TempDir::Create("tandem-knot-test");
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_.emplace(std::move(dir).value());
    chmod(dir_->path().c_str(), 0755);
    o_.state_dir = AbsolutePath(dir_->path()) + "/dns";
    o_.listen = Server{"127.0.0.1", PickFreePort().value()};
    o_.zone = "tandem.test";
    o_.key = NewKey();
    o_.run_as = RunAs();
    auto k = KnotServer::Create(o_);
    ASSERT_TRUE(k.ok()) << k.status().ToString();
    knot_ = std::move(k).value();
  }
  void TearDown() override {
    if (knot_) {
      EXPECT_TRUE(knot_->Stop().ok());
    }
  }

  std::string AddressOf(const std::string& name) {
    auto a = LookUp(o_.listen, name, 1s);
    if (!a.ok()) return a.status().ToString();
    return a->addresses.size() == 1 ? a->addresses[0] : "several addresses";
  }

  std::optional<TempDir> dir_;
  KnotOptions o_;
  KnotServerPtr knot_;
};

TEST_F(KnotServerTest, ServesTheRecordsItStartedWithAtTheTtl) {
  ASSERT_TRUE(knot_->Start({{"etl-3f6c2a.tandem.test", "127.0.0.11"},
                            {"etl-3f6c2a-exec.tandem.test", "127.0.0.11"}},
                           10s)
                  .ok());
  auto a = LookUp(o_.listen, "etl-3f6c2a.tandem.test", 1s);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->addresses, std::vector<std::string>{"127.0.0.11"});
  EXPECT_EQ(a->ttl, 5u);
  EXPECT_EQ(AddressOf("etl-3f6c2a-exec.tandem.test"), "127.0.0.11");
  EXPECT_EQ(AddressOf("ns.tandem.test"), "127.0.0.1");
  auto missing = LookUp(o_.listen, "nobody-000000.tandem.test", 1s);
  EXPECT_EQ(missing.status().code(), Code::kNotFound) << missing.status().ToString();
  EXPECT_NE(missing.status().message().find("NXDOMAIN"), std::string::npos);
}

TEST_F(KnotServerTest, ASignedUpdateChangesEveryNameAtOnce) {
  ASSERT_TRUE(knot_->Start({{"a-000001.tandem.test", "127.0.0.11"},
                            {"b-000002.tandem.test", "127.0.0.11"},
                            {"gone-000003.tandem.test", "127.0.0.11"}},
                           10s)
                  .ok());
  Update u;
  u.zone = "tandem.test";
  u.set = {{"a-000001.tandem.test", "127.0.0.12"},
           {"b-000002.tandem.test", "127.0.0.12"},
           {"new-000004.tandem.test", "127.0.0.12"}};
  u.remove = {"gone-000003.tandem.test"};
  Status s = SendUpdate(o_.listen, o_.key, u, 2s);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(AddressOf("a-000001.tandem.test"), "127.0.0.12");
  EXPECT_EQ(AddressOf("b-000002.tandem.test"), "127.0.0.12");
  EXPECT_EQ(AddressOf("new-000004.tandem.test"), "127.0.0.12");
  EXPECT_EQ(LookUp(o_.listen, "gone-000003.tandem.test", 1s).status().code(), Code::kNotFound);
  // Sending the same update again changes nothing and is no error.
  EXPECT_TRUE(SendUpdate(o_.listen, o_.key, u, 2s).ok());
  EXPECT_EQ(AddressOf("a-000001.tandem.test"), "127.0.0.12");
}

TEST_F(KnotServerTest, AWrongOrUnknownKeyIsRefusedAndChangesNothing) {
  ASSERT_TRUE(knot_->Start({{"a-000001.tandem.test", "127.0.0.11"}}, 10s).ok());
  Update u;
  u.zone = "tandem.test";
  u.set = {{"a-000001.tandem.test", "127.0.0.12"}};

  TsigKey wrong_secret = o_.key;
  wrong_secret.secret = NewSecretKeyBase64();
  Status s = SendUpdate(o_.listen, wrong_secret, u, 2s);
  EXPECT_EQ(s.code(), Code::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("TSIG key tandem-update"), std::string::npos) << s.ToString();

  Status unknown = SendUpdate(o_.listen, NewKey("someone-else"), u, 2s);
  EXPECT_EQ(unknown.code(), Code::kFailedPrecondition) << unknown.ToString();
  EXPECT_NE(unknown.message().find("someone-else"), std::string::npos) << unknown.ToString();

  EXPECT_EQ(AddressOf("a-000001.tandem.test"), "127.0.0.11");
}

TEST_F(KnotServerTest, AnUpdateOutsideTheZoneIsRefused) {
  ASSERT_TRUE(knot_->Start({}, 10s).ok());
  Update u;
  u.zone = "other.test";
  u.set = {{"a.other.test", "127.0.0.12"}};
  Status s = SendUpdate(o_.listen, o_.key, u, 2s);
  EXPECT_EQ(s.code(), Code::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("other.test"), std::string::npos) << s.ToString();
}

TEST_F(KnotServerTest, AKilledServerIsSeenAndRestartsWithTheRecordsItIsGiven) {
  ASSERT_TRUE(knot_->Start({{"a-000001.tandem.test", "127.0.0.11"}}, 10s).ok());
  Update u;
  u.zone = "tandem.test";
  u.set = {{"a-000001.tandem.test", "127.0.0.12"}};
  ASSERT_TRUE(SendUpdate(o_.listen, o_.key, u, 2s).ok());
  ASSERT_TRUE(knot_->Alive());
  pid_t pid = knot_->pid();
  ASSERT_GT(pid, 0);
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  for (int i = 0; i < 200 && knot_->Alive(); ++i) usleep(10000);
  EXPECT_FALSE(knot_->Alive());
  EXPECT_EQ(LookUp(o_.listen, "a-000001.tandem.test", 300ms).status().code(), Code::kUnavailable);
  // The zone is rebuilt from what the caller knows, not from what the dead server held.
  ASSERT_TRUE(knot_->Start({{"a-000001.tandem.test", "127.0.0.12"}}, 10s).ok());
  EXPECT_NE(knot_->pid(), pid);
  EXPECT_EQ(AddressOf("a-000001.tandem.test"), "127.0.0.12");
}

TEST_F(KnotServerTest, RefusesRecordsOutsideItsZone) {
  Status s = knot_->Start({{"a.elsewhere.test", "127.0.0.11"}}, 10s);
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.ToString();
  EXPECT_FALSE(knot_->Alive());
}

TEST_F(KnotServerTest, TheResolverKeepsAnswersForTheirTtlAndForgetsOnRequest) {
  ASSERT_TRUE(knot_->Start({{"a-000001.tandem.test", "127.0.0.11"}}, 10s).ok());
  FakeClock clock;
  Resolver resolver(o_.listen, 1s, clock);
  EXPECT_EQ(resolver.Resolve("a-000001.tandem.test").value(), "127.0.0.11");
  Update u;
  u.zone = "tandem.test";
  u.set = {{"a-000001.tandem.test", "127.0.0.12"}};
  ASSERT_TRUE(SendUpdate(o_.listen, o_.key, u, 2s).ok());
  EXPECT_EQ(resolver.Resolve("a-000001.tandem.test").value(), "127.0.0.11");  // cached
  clock.Advance(5s);  // the TTL
  EXPECT_EQ(resolver.Resolve("a-000001.tandem.test").value(), "127.0.0.12");
  u.set = {{"a-000001.tandem.test", "127.0.0.13"}};
  ASSERT_TRUE(SendUpdate(o_.listen, o_.key, u, 2s).ok());
  resolver.Forget("a-000001.tandem.test");  // a client found the address led nowhere
  EXPECT_EQ(resolver.Resolve("a-000001.tandem.test").value(), "127.0.0.13");
  EXPECT_EQ(resolver.Resolve("nobody-000000.tandem.test").status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace tandem::dns
