// `tandem up` as the README runs it (on free ports and 127.0.0.1 instead of the defaults):
// it starts a region, the CLI finds it through the state directory, a killed region is
// restarted with nothing lost, and SIGTERM stops everything it started.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "base/fs.h"
#include "base/net.h"
#include "base/process.h"
#include "harness/region_harness.h"

namespace tandem::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

class UpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = TempDir::Create("tandem-test-up");
    ASSERT_TRUE(d.ok());
    dir_ = AbsolutePath(d->Release());
    chmod(dir_.c_str(), 0755);
    state_ = dir_ + "/state";
    http_port_ = *PickFreePort();
    pg_port_ = *PickFreePort();
  }
  void TearDown() override {
    if (up_) up_->Stop(SIGTERM, 60s);
    auto pidfile = ReadFile(state_ + "/region-a/pg/data/postmaster.pid");
    if (pidfile.ok()) {
      pid_t pg = static_cast<pid_t>(atol(pidfile->c_str()));
      if (ProcessAlive(pg)) kill(pg, SIGQUIT);
    }
    (void)RemoveAll(dir_);
  }

  // Starts `tandem up` and waits for it to say it is up.
  void StartUp() {
    auto c = Child::Spawn({.argv = {TandemBin(), "up", "--state-dir", state_, "--http-port",
                                    std::to_string(http_port_), "--pg-port",
                                    std::to_string(pg_port_), "--address", "127.0.0.1"},
                           .output_path = dir_ + "/up.out"});
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    up_ = std::move(c).value();
    for (int i = 0; i < 1200; ++i) {
      if (Output().find("tandem is up") != std::string::npos) return;
      ASSERT_FALSE(up_->Poll().has_value()) << Output();
      std::this_thread::sleep_for(100ms);
    }
    FAIL() << "tandem up did not come up:\n" << Output();
  }
  std::string Output() const {
    auto o = ReadFile(dir_ + "/up.out");
    return o.ok() ? *o : "";
  }
  CliRun Cli(std::vector<std::string> args) {
    args.insert(args.begin(), {"--state-dir", state_});
    return RunCli(args);
  }
  pid_t RegionPid() {
    auto p = ReadFile(state_ + "/platform.json");
    if (!p.ok()) return 0;
    auto j = Json::parse(*p, nullptr, false);
    return j.is_discarded() ? 0 : j["regions"][0]["pid"].get<pid_t>();
  }

  std::string dir_, state_;
  int http_port_ = 0, pg_port_ = 0;
  ChildPtr up_;
};

TEST_F(UpTest, StartsServesRestartsAndStops) {
  StartUp();
  EXPECT_NE(Output().find("http://127.0.0.1:" + std::to_string(http_port_)), std::string::npos);
  EXPECT_TRUE(PathExists(state_ + "/secret.key"));

  CliRun create = Cli({"deployment", "create", "up-dep"});
  ASSERT_EQ(create.exit_code, 0) << create.output;

  // A region that dies is restarted by `up`; what was acknowledged is still there.
  pid_t region = RegionPid();
  ASSERT_GT(region, 0);
  ASSERT_EQ(kill(region, SIGKILL), 0);
  CliRun get;
  for (int i = 0; i < 600; ++i) {
    get = Cli({"deployment", "get", "up-dep"});
    if (get.exit_code == 0 && RegionPid() != region) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(get.exit_code, 0) << get.output << Output();
  EXPECT_NE(RegionPid(), region);
  EXPECT_NE(Output().find("restarting it"), std::string::npos);

  // A second `up` on the same state directory is refused.
  CliRun second = Cli({"up", "--http-port", std::to_string(*PickFreePort()), "--pg-port",
                       std::to_string(*PickFreePort()), "--address", "127.0.0.1"});
  EXPECT_EQ(second.exit_code, 3);
  EXPECT_NE(second.output.find("already running"), std::string::npos) << second.output;

  // SIGTERM stops everything: the region, its PostgreSQL, and the platform file.
  pid_t last_region = RegionPid();
  ASSERT_TRUE(up_->Signal(SIGTERM));
  auto e = up_->Wait(60s);
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(e->exited && e->code == 0) << e->Describe();
  up_.reset();
  EXPECT_FALSE(ProcessAlive(last_region));
  EXPECT_FALSE(PathExists(state_ + "/platform.json"));
  EXPECT_FALSE(PathExists(state_ + "/region-a/pg/data/postmaster.pid"));
  EXPECT_FALSE(CanConnect("127.0.0.1", http_port_));
  EXPECT_FALSE(CanConnect("127.0.0.1", pg_port_));
  CliRun after = Cli({"deployment", "list"});
  EXPECT_EQ(after.exit_code, 3);

  // A lost key is not silently replaced: the secrets stored under it would be unreadable.
  ASSERT_TRUE(RemoveAll(state_ + "/secret.key").ok());
  CliRun nokey = Cli({"up", "--http-port", std::to_string(http_port_), "--pg-port",
                      std::to_string(pg_port_), "--address", "127.0.0.1"});
  EXPECT_EQ(nokey.exit_code, 2);
  EXPECT_NE(nokey.output.find("restore the key file"), std::string::npos) << nokey.output;
  EXPECT_FALSE(PathExists(state_ + "/secret.key"));
}

TEST_F(UpTest, TakenPortIsRefusedBeforeStarting) {
  StartUp();
  // Same ports, another state directory.
  CliRun clash = RunCli({"--state-dir", dir_ + "/other", "up", "--http-port",
                         std::to_string(http_port_), "--pg-port", std::to_string(*PickFreePort()),
                         "--address", "127.0.0.1"});
  EXPECT_EQ(clash.exit_code, 3);
  EXPECT_NE(clash.output.find("already in use"), std::string::npos) << clash.output;
}

}  // namespace
}  // namespace tandem::testing
