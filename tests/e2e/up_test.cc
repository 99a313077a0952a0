// `tandem up` as the README runs it (on free ports and 127.0.0.1 instead of the defaults):
// it starts a region, the CLI finds it through the state directory, a killed region is
// restarted with nothing lost, and SIGTERM stops everything it started.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <thread>

#include "base/fs.h"
#include "base/net.h"
#include "base/process.h"
#include "harness/region_harness.h"
#include "tls/certificates.h"

namespace tandem::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

class UpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The README's way: the CLI finds the owner's credential in the state directory, not in
    // the harness's TANDEM_TOKEN.
    CliSendsOwnerToken(false);
    auto d = TempDir::Create("tandem-test-up");
    ASSERT_TRUE(d.ok());
    dir_ = AbsolutePath(d->Release());
    chmod(dir_.c_str(), 0755);
    state_ = dir_ + "/state";
    // The platform's TMPDIR, where the workers keep their tasks' directories: removed with the
    // rest (tasks run as other users, who search it).
    ASSERT_TRUE(MakeDirs(dir_ + "/tmp", 0711).ok());
    std::set<int> ports;  // distinct: a port just released may be handed out again
    while (ports.size() < 7) ports.insert(*PickFreePort());
    auto it = ports.begin();
    http_port_ = *it++;
    pg_port_ = *it++;
    http_port_b_ = *it++;
    pg_port_b_ = *it++;
    control_port_ = *it++;
    registry_port_ = *it++;
    registry_port_b_ = *it++;
  }
  // `up` on 127.0.0.1 and free ports instead of the defaults.
  std::vector<std::string> UpArgs(int http_port, int pg_port) const {
    return {"up",
            "--http-port",
            std::to_string(http_port),
            "--pg-port",
            std::to_string(pg_port),
            "--http-port-b",
            std::to_string(http_port_b_),
            "--pg-port-b",
            std::to_string(pg_port_b_),
            "--control-port",
            std::to_string(control_port_),
            "--registry-port",
            std::to_string(registry_port_),
            "--registry-port-b",
            std::to_string(registry_port_b_),
            "--address",
            "127.0.0.1",
            "--address-b",
            "127.0.0.1",
            "--control-address",
            "127.0.0.1"};
  }
  void TearDown() override {
    if (up_) up_->Stop(SIGTERM, 60s);
    for (const char* r : {"region-a", "region-b"}) {
      auto pidfile = ReadFile(state_ + "/" + r + "/pg/data/postmaster.pid");
      if (pidfile.ok()) {
        pid_t pg = static_cast<pid_t>(atol(pidfile->c_str()));
        if (ProcessAlive(pg)) kill(pg, SIGQUIT);
      }
    }
    (void)RemoveAll(dir_);
  }

  // Starts `tandem up` and waits for it to say it is up.
  void StartUp() {
    std::vector<std::string> argv = {TandemBin(), "--state-dir", state_};
    for (const std::string& a : UpArgs(http_port_, pg_port_)) argv.push_back(a);
    auto c = Child::Spawn(
        {.argv = argv, .env_extra = {{"TMPDIR", dir_ + "/tmp"}}, .output_path = dir_ + "/up.out"});
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
  int http_port_ = 0, pg_port_ = 0, http_port_b_ = 0, pg_port_b_ = 0, control_port_ = 0;
  int registry_port_ = 0, registry_port_b_ = 0;
  ChildPtr up_;
};

TEST_F(UpTest, StartsServesRestartsAndStops) {
  StartUp();
  EXPECT_NE(Output().find("https://127.0.0.1:" + std::to_string(http_port_)), std::string::npos);
  EXPECT_TRUE(PathExists(state_ + "/secret.key"));
  const std::string ca = state_ + "/tls/ca.crt";
  EXPECT_NE(Output().find(ca), std::string::npos) << Output();

  // The pair is up: region-a active, region-b its standby, the control plane answering. A
  // region is ready before it holds its first lease (the voters grant none for one lease length
  // after they start), and writes wait for the lease: wait for both.
  CliRun status;
  auto a_holds_lease = [](const std::string& out) {
    for (size_t at = out.find("\nregion-a "); at != std::string::npos;
         at = out.find("\nregion-a ", at + 1)) {
      const std::string line = out.substr(at + 1, out.find('\n', at + 1) - at - 1);
      if (line.find(" holds ") != std::string::npos) return true;
    }
    return false;
  };
  for (int i = 0; i < 200; ++i) {
    status = Cli({"dr", "status"});
    if (status.output.find("syncing") != std::string::npos && a_holds_lease(status.output)) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(a_holds_lease(status.output)) << status.output;
  EXPECT_EQ(status.exit_code, 0) << status.output;
  EXPECT_NE(status.output.find("Active: region-a (primary)"), std::string::npos) << status.output;
  EXPECT_NE(status.output.find("syncing"), std::string::npos) << status.output;
  auto pair = ReadFile(state_ + "/pair.yaml");
  ASSERT_TRUE(pair.ok());
  // Each region has a registry, on the port it was given.
  size_t a = pair->find("registry:\n      port: " + std::to_string(registry_port_) + "\n");
  size_t b = pair->find("registry:\n      port: " + std::to_string(registry_port_b_) + "\n");
  EXPECT_NE(a, std::string::npos) << *pair;
  EXPECT_NE(b, std::string::npos) << *pair;
  EXPECT_LT(a, b) << *pair;

  // The platform owner's credential: written 0600, named in the output, sent by the CLI with
  // no extra step; a request without it is refused.
  struct stat cred {};
  ASSERT_EQ(stat((state_ + "/credential").c_str(), &cred), 0);
  EXPECT_EQ(cred.st_mode & 0777, 0600u);
  EXPECT_NE(Output().find(state_ + "/credential"), std::string::npos) << Output();
  CliRun who = Cli({"whoami"});
  EXPECT_EQ(who.exit_code, 0) << who.output;
  EXPECT_NE(who.output.find("token bootstrap"), std::string::npos) << who.output;
  EXPECT_NE(who.output.find("owner"), std::string::npos) << who.output;
  const std::string region_url = "https://127.0.0.1:" + std::to_string(http_port_);
  EXPECT_EQ(Http(region_url, "GET", "/api/v1/deployments", "", {{"Authorization", ""}}, ca).status,
            401);
  const std::string control_url = "https://127.0.0.1:" + std::to_string(control_port_);
  EXPECT_EQ(
      Http(control_url, "POST", "/api/v1/dr/failover", "{}", {{"Authorization", ""}}, ca).status,
      401);
  // Every listener speaks TLS only, with a certificate of the platform's CA.
  EXPECT_EQ(Http("http://127.0.0.1:" + std::to_string(http_port_), "GET", "/readyz").status, 0);
  EXPECT_EQ(Http(region_url, "GET", "/readyz", "", {}, ca).status, 200);
  // The registries want a token from a region's realm.
  HttpReply registry = Http("https://127.0.0.1:" + std::to_string(registry_port_), "GET", "/v2/",
                            "", {{"Authorization", ""}}, ca);
  EXPECT_EQ(registry.status, 401) << registry.body;
  EXPECT_EQ(Http(region_url, "GET", "/readyz").status, 0) << "trusted without the CA";
  for (const char* key : {"ca.key", "control.key", "region-a.key", "region-b.key"}) {
    struct stat st {};
    ASSERT_EQ(stat((state_ + "/tls/" + key).c_str(), &st), 0) << key;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << key;
  }
  // A CLI that trusts another CA refuses the platform, and says why.
  {
    auto other = tls::CreateAuthority("someone else", std::chrono::hours(1));
    ASSERT_TRUE(other.ok());
    ASSERT_TRUE(WriteFileAtomic(state_ + "/other-ca.crt", other->certificate).ok());
    CliRun refused = Cli({"--ca-file", state_ + "/other-ca.crt", "deployment", "list"});
    EXPECT_NE(refused.exit_code, 0) << refused.output;
    EXPECT_NE(refused.output.find("certificate was refused"), std::string::npos) << refused.output;
    EXPECT_NE(refused.output.find("not signed by the CA in " + state_ + "/other-ca.crt"),
              std::string::npos)
        << refused.output;
  }

  CliRun create = Cli({"deployment", "create", "up-dep"});
  ASSERT_EQ(create.exit_code, 0) << create.output;
  // A deployment viewer token made with the CLI reads but may not write or fail over.
  CliRun made = Cli({"token", "create", "reader", "--deployment", "up-dep", "--role", "viewer"});
  ASSERT_EQ(made.exit_code, 0) << made.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(made.output, m, std::regex("tandem_[0-9a-f]{32}_[0-9a-f]{64}")))
      << made.output;
  const std::string reader = m.str();
  EXPECT_EQ(Http(region_url, "GET", "/api/v1/deployments/up-dep", "",
                 {{"Authorization", "Bearer " + reader}}, ca)
                .status,
            200);
  EXPECT_EQ(Http(region_url, "DELETE", "/api/v1/deployments/up-dep", "",
                 {{"Authorization", "Bearer " + reader}}, ca)
                .status,
            403);
  EXPECT_EQ(Http(control_url, "POST", "/api/v1/dr/failover", "{}",
                 {{"Authorization", "Bearer " + reader}}, ca)
                .status,
            403);
  CliRun listed = Cli({"token", "list", "--deployment", "up-dep"});
  EXPECT_EQ(listed.exit_code, 0) << listed.output;
  EXPECT_NE(listed.output.find("reader"), std::string::npos) << listed.output;
  EXPECT_EQ(listed.output.find(reader), std::string::npos) << "the list shows the token";

  // `tandem deploy` pushes the bundle's image with a token from the region's realm. A viewer's
  // credential gets none for pushing: its deploy fails, and nothing is deployed.
  ASSERT_TRUE(MakeDirs(state_ + "/dags").ok());
  ASSERT_TRUE(WriteFileAtomic(state_ + "/dags/hello.yaml",
                              "hello:\n  schedule: null\n  tasks:\n    hi:\n      operator: "
                              "bash\n      bash_command: echo hi\n")
                  .ok());
  ASSERT_TRUE(WriteFileAtomic(state_ + "/reader.token", reader + "\n", 0600).ok());
  CliRun denied =
      Cli({"--token-file", state_ + "/reader.token", "deploy", "up-dep", state_ + "/dags"});
  EXPECT_NE(denied.exit_code, 0) << denied.output;
  EXPECT_NE(denied.output.find("nothing was deployed"), std::string::npos) << denied.output;
  EXPECT_NE(denied.output.find("deploying needs the deployment's editor role"), std::string::npos)
      << denied.output;
  CliRun deployed = Cli({"deploy", "up-dep", state_ + "/dags"});
  EXPECT_EQ(deployed.exit_code, 0) << deployed.output << Output();
  EXPECT_NE(deployed.output.find("replicated to the standby"), std::string::npos)
      << deployed.output;

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
  CliRun second = Cli(UpArgs(*PickFreePort(), *PickFreePort()));
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
  EXPECT_FALSE(PathExists(state_ + "/region-b/pg/data/postmaster.pid"));
  for (int port : {http_port_, pg_port_, http_port_b_, pg_port_b_, control_port_, registry_port_,
                   registry_port_b_}) {
    EXPECT_FALSE(CanConnect("127.0.0.1", port)) << port;
  }
  CliRun after = Cli({"deployment", "list"});
  EXPECT_EQ(after.exit_code, 3);

  // A TLS key others can read stops the region at start, before it serves anything.
  ASSERT_EQ(chmod((state_ + "/tls/region-a.key").c_str(), 0644), 0);
  CliRun open_key = Cli({"region", "--pair", state_ + "/pair.yaml", "--name", "region-a"});
  EXPECT_EQ(open_key.exit_code, 2) << open_key.output;
  EXPECT_NE(open_key.output.find("chmod 600 " + state_ + "/tls/region-a.key"), std::string::npos)
      << open_key.output;
  EXPECT_EQ(open_key.output.find("PRIVATE KEY"), std::string::npos) << open_key.output;
  EXPECT_FALSE(CanConnect("127.0.0.1", http_port_));

  // A lost key is not silently replaced: the secrets stored under it would be unreadable.
  ASSERT_TRUE(RemoveAll(state_ + "/secret.key").ok());
  CliRun nokey = Cli(UpArgs(http_port_, pg_port_));
  EXPECT_EQ(nokey.exit_code, 2);
  EXPECT_NE(nokey.output.find("restore the key file"), std::string::npos) << nokey.output;
  EXPECT_FALSE(PathExists(state_ + "/secret.key"));
}

TEST_F(UpTest, TakenPortIsRefusedBeforeStarting) {
  StartUp();
  // Same ports, another state directory.
  std::vector<std::string> args = {"--state-dir", dir_ + "/other"};
  for (const std::string& a : UpArgs(http_port_, *PickFreePort())) args.push_back(a);
  CliRun clash = RunCli(args);
  EXPECT_EQ(clash.exit_code, 3);
  EXPECT_NE(clash.output.find("already in use"), std::string::npos) << clash.output;
}

TEST_F(UpTest, TakenRegistryPortIsRefusedBeforeStarting) {
  // Something else listens on region-b's registry port.
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(registry_port_b_));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << strerror(errno);
  ASSERT_EQ(listen(fd, 1), 0);
  std::vector<std::string> args = {"--state-dir", state_};
  for (const std::string& a : UpArgs(http_port_, pg_port_)) args.push_back(a);
  CliRun clash = RunCli(args);
  close(fd);
  EXPECT_EQ(clash.exit_code, 3) << clash.output;
  EXPECT_NE(clash.output.find("region-b registry port: 127.0.0.1:" +
                              std::to_string(registry_port_b_) + " is already in use"),
            std::string::npos)
      << clash.output;
  // Refused before anything started.
  EXPECT_EQ(clash.output.find("starting"), std::string::npos) << clash.output;
  EXPECT_FALSE(PathExists(state_ + "/platform.json"));
  EXPECT_FALSE(CanConnect("127.0.0.1", control_port_));
}

}  // namespace
}  // namespace tandem::testing
