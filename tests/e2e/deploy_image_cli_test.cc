// `tandem deploy` with images, as a user runs it: the bundle is packaged as an OCI image and
// pushed to the registry the region names, then the region is asked to deploy that image.
//
// Two kinds of region:
//   - a real one (`tandem region` with a registry section in its config), checked from outside
//     with skopeo and through the API;
//   - a stub region served by this test process (the routes the CLI calls, recording what it
//     sends), with a real docker-registry beside it, so that what the CLI sends and prints for
//     each answer of the region can be checked exactly, including answers a single region
//     cannot give (a standby lacking the image).
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "base/fs.h"
#include "base/net.h"
#include "base/process.h"
#include "harness/pg_harness.h"
#include "harness/region_harness.h"
#include "images/registry.h"
#include "images/registry_client.h"
#include "images/registry_server.h"

namespace tandem::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kEtl =
    "etl:\n"
    "  tasks:\n"
    "    extract: {operator: bash, bash_command: \"echo extracted\"}\n"
    "    load: {operator: empty, dependencies: [extract]}\n";

void Contains(const std::string& text, const std::string& words) {
  EXPECT_NE(text.find(words), std::string::npos) << "expected \"" << words << "\" in:\n" << text;
}


// The digest in the CLI's "image sha256:<hex> ..." line; empty when there is none.
std::string PrintedDigest(const std::string& output) {
  std::smatch m;
  static const std::regex kLine("(^|\n)image (sha256:[0-9a-f]{64})( |\n)");
  return std::regex_search(output, m, kLine) ? m[2].str() : "";
}

// `skopeo inspect --tls-verify=false docker://<host:port>/<reference>`: the JSON it prints.
Result<Json> SkopeoInspect(const std::string& registry_url, const std::string& reference) {
  const std::string host = registry_url.substr(std::string("http://").size());
  SpawnOptions so{.argv = {"/usr/bin/skopeo", "inspect", "--tls-verify=false",
                           "docker://" + host + "/" + reference}};
  ASSIGN_OR_RETURN(RunOutput out, RunCommand(so, 60s));
  if (!out.exit.exited || out.exit.code != 0) {
    return Internal("skopeo " + out.exit.Describe() + ": " + out.output);
  }
  Json j = Json::parse(out.output.substr(std::min(out.output.find('{'), out.output.size())),
                       nullptr, false);
  if (j.is_discarded()) return Internal("skopeo printed no JSON: " + out.output);
  return j;
}

// Takes 127.0.0.1:`port` from whatever listened there (SO_REUSEADDR: the connections it leaves
// in TIME_WAIT do not stop it) and resets every connection at once, so no server can listen on
// the port and nothing answers there. Released when destroyed.
class PortSquatter {
 public:
  PortSquatter() = default;
  PortSquatter(const PortSquatter&) = delete;
  PortSquatter& operator=(const PortSquatter&) = delete;
  ~PortSquatter() { Release(); }

  // False when the port is taken.
  bool Take(int port) {
    Release();
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return false;
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd_, 16) != 0) {
      close(fd_);
      fd_ = -1;
      return false;
    }
    thread_ = std::thread([fd = fd_] {
      for (;;) {
        int c = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) return;  // shut down
        linger reset{.l_onoff = 1, .l_linger = 0};
        setsockopt(c, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
        close(c);
      }
    });
    return true;
  }
  void Release() {
    if (fd_ < 0) return;
    shutdown(fd_, SHUT_RDWR);  // wakes accept
    thread_.join();
    close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  std::thread thread_;
};

// ---- against a real region

class DeployImageRegionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tmp = TempDir::Create("deploy-image-cli");
    ASSERT_TRUE(tmp.ok());
    tmp_.emplace(std::move(tmp).value());
  }
  void StartRegion(bool registry) {
    auto r = RegionProcess::Create({.registry = registry});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    region_ = std::move(r).value();
    Status s = region_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  CliRun Cli(std::vector<std::string> args) {
    args.insert(args.begin(), {"--url", region_->url()});
    return RunCli(args);
  }
  // The namespace the region gave deployment `name`.
  std::string Namespace(const std::string& name) {
    HttpReply r = region_->Call("GET", "/api/v1/deployments/" + name);
    EXPECT_EQ(r.status, 200) << r.body;
    Json j = Json::parse(r.body, nullptr, false);
    return j.is_object() && j["namespace"].is_string() ? j["namespace"].get<std::string>() : "";
  }
  // The bundle version deployment `name` runs (GET .../bundle).
  Json BundleVersion(const std::string& name) {
    HttpReply r = region_->Call("GET", "/api/v1/deployments/" + name + "/bundle");
    Json j = Json::parse(r.body, nullptr, false);
    return j.is_object() && j.contains("bundle_version") ? j["bundle_version"] : Json(r.status);
  }

  std::optional<TempDir> tmp_;
  std::unique_ptr<RegionProcess> region_;
};

TEST_F(DeployImageRegionTest, DeployPushesTheBundleImageToTheRegionsRegistry) {
  StartRegion(true);
  HttpReply registry = region_->Call("GET", "/api/v1/registry");
  ASSERT_EQ(registry.status, 200) << registry.body << region_->log();
  Json where = Json::parse(registry.body, nullptr, false);
  EXPECT_EQ(where["url"], region_->registry_url()) << where;
  EXPECT_EQ(where["region"], "test-region") << where;

  ASSERT_EQ(Cli({"deployment", "create", "img"}).exit_code, 0);
  const std::string repository = Namespace("img") + "/bundle";
  std::string dir = BundleDir(*tmp_, "bundle", {{"etl.yaml", kEtl}, {"sql/q.sql", "select 1;\n"}});
  CliRun d = Cli({"deploy", "img", dir});
  ASSERT_EQ(d.exit_code, 0) << d.output << region_->log();
  Contains(d.output, "dags: etl");
  const std::string digest = PrintedDigest(d.output);
  ASSERT_FALSE(digest.empty()) << d.output;
  EXPECT_EQ(d.output.find("runs no registry"), std::string::npos) << d.output;

  // The registry holds the image under the digest printed, by tag and by digest.
  auto latest = SkopeoInspect(region_->registry_url(), repository + ":latest");
  ASSERT_TRUE(latest.ok()) << latest.status().ToString();
  EXPECT_EQ((*latest)["Digest"], digest) << *latest;
  auto pinned = SkopeoInspect(region_->registry_url(), repository + "@" + digest);
  ASSERT_TRUE(pinned.ok()) << pinned.status().ToString();
  EXPECT_EQ((*pinned)["Digest"], digest);
  // It holds the files deployed.
  auto client = images::NewRegistryClient({.url = region_->registry_url()});
  ASSERT_TRUE(client.ok());
  auto files = images::PullImage(**client, repository, digest);
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  EXPECT_EQ(*files, (images::Files{{"etl.yaml", kEtl}, {"sql/q.sql", "select 1;\n"}}));

  // The same files again: the same image, and the region's answer as JSON.
  CliRun again = Cli({"--output", "json", "deploy", "img", dir});
  ASSERT_EQ(again.exit_code, 0) << again.output;
  Json answer = Json::parse(again.output, nullptr, false);
  ASSERT_TRUE(answer.is_object()) << again.output;
  EXPECT_EQ(answer["unchanged"], true) << answer;
  EXPECT_EQ(answer["image"]["digest"], digest) << answer;
  EXPECT_EQ(answer["image"]["repository"], repository) << answer;
  EXPECT_GT(answer["image"]["bytes"].get<int64_t>(), 0) << answer;
}

// The region supervises its registry like its PostgreSQL: killed, it is started again, and
// deploys go on. (A registry that cannot be reached at all is the stub tests' case below.)
TEST_F(DeployImageRegionTest, AKilledRegistryIsStartedAgainByTheRegion) {
  StartRegion(true);
  ASSERT_EQ(Cli({"deployment", "create", "down"}).exit_code, 0);
  CliRun first = Cli({"deploy", "down", BundleDir(*tmp_, "v1", {{"etl.yaml", kEtl}})});
  ASSERT_EQ(first.exit_code, 0) << first.output << region_->log();
  const Json before = BundleVersion("down");
  ASSERT_TRUE(before.is_string()) << before;

  std::vector<pid_t> registries = RegistryPids(region_->state_dir());
  ASSERT_EQ(registries.size(), 1u) << region_->log();
  KillRegistries(region_->state_dir());
  std::vector<pid_t> again;
  for (int i = 0; i < 200; ++i) {
    again = RegistryPids(region_->state_dir());
    if (!again.empty() && again[0] != registries[0] &&
        CanConnect("127.0.0.1", region_->registry_port())) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(again.size(), 1u) << region_->log();
  EXPECT_NE(again[0], registries[0]);

  std::string v2 = BundleDir(*tmp_, "v2", {{"etl.yaml", kEtl}, {"more.yaml", "more: {}\n"}});
  CliRun d = Cli({"deploy", "down", v2});
  ASSERT_EQ(d.exit_code, 0) << d.output << region_->log();
  EXPECT_FALSE(PrintedDigest(d.output).empty()) << d.output;
  EXPECT_NE(BundleVersion("down"), before);
}

TEST_F(DeployImageRegionTest, DeployWithTheRegistryDownChangesNothing) {
  StartRegion(true);
  ASSERT_EQ(Cli({"deployment", "create", "down"}).exit_code, 0);
  CliRun first = Cli({"deploy", "down", BundleDir(*tmp_, "v1", {{"etl.yaml", kEtl}})});
  ASSERT_EQ(first.exit_code, 0) << first.output << region_->log();
  ASSERT_FALSE(PrintedDigest(first.output).empty()) << first.output;
  const Json before = BundleVersion("down");
  ASSERT_TRUE(before.is_string()) << before;

  // The registry the region runs goes away, and its port is taken so that the region cannot
  // start it again while the deploy runs: nothing answers there.
  ASSERT_EQ(RegistryPids(region_->state_dir()).size(), 1u) << region_->log();
  PortSquatter squatter;
  bool taken = false;
  for (int i = 0; i < 500 && !taken; ++i) {
    KillRegistries(region_->state_dir());
    taken = squatter.Take(region_->registry_port());
    if (!taken) std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(taken) << region_->log();
  ASSERT_EQ(Http(region_->registry_url(), "GET", "/v2/").status, 0);

  std::string v2 = BundleDir(*tmp_, "v2", {{"etl.yaml", kEtl}, {"more.yaml", "more: {}\n"}});
  CliRun d = Cli({"deploy", "down", v2});
  EXPECT_EQ(d.exit_code, 3) << d.output;
  Contains(d.output, "error: cannot reach the registry at " + region_->registry_url());
  Contains(d.output, "nothing was deployed");
  EXPECT_EQ(d.output.find("bundle_version"), std::string::npos) << d.output;
  EXPECT_EQ(BundleVersion("down"), before);
  HttpReply dags = region_->Call("GET", "/deployments/down/api/v2/dags");
  EXPECT_EQ(dags.body.find("\"more\""), std::string::npos) << dags.body;
}

TEST_F(DeployImageRegionTest, RegionWithoutRegistryGetsTheFiles) {
  StartRegion(false);
  ASSERT_EQ(Cli({"deployment", "create", "plain"}).exit_code, 0);
  CliRun d = Cli({"deploy", "plain", BundleDir(*tmp_, "b", {{"etl.yaml", kEtl}})});
  ASSERT_EQ(d.exit_code, 0) << d.output;
  Contains(d.output, "the region runs no registry: uploading the files themselves");
  Contains(d.output, "dags: etl");
  EXPECT_TRUE(PrintedDigest(d.output).empty()) << d.output;
  EXPECT_TRUE(BundleVersion("plain").is_string());
}

// ---- against a stub region

// The routes `tandem deploy` calls, answering as a test sets them, recording each bundle POST.
class StubRegion {
 public:
  StubRegion() {
    server_.Get("/api/v1/deployments/dep", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(Json({{"id", "0191e4c2-1111-7000-8000-000000000001"},
                            {"name", "dep"},
                            {"namespace", "dep-0191e4"}})
                          .dump(),
                      "application/json");
    });
    server_.Get("/api/v1/registry", [this](const httplib::Request&, httplib::Response& res) {
      std::lock_guard<std::mutex> l(mu_);
      if (registry_url_.empty()) {
        res.status = 404;
        res.set_content(R"({"detail": "this region runs no registry"})", "application/json");
      } else {
        res.set_content(Json({{"url", registry_url_}, {"region", "region-a"}}).dump(),
                        "application/json");
      }
    });
    server_.Post("/api/v1/deployments/dep/bundle",
                 [this](const httplib::Request& req, httplib::Response& res) {
                   std::lock_guard<std::mutex> l(mu_);
                   posts_.push_back(Json::parse(req.body, nullptr, false));
                   res.status = answer_status_;
                   res.set_content(answer_.dump(), "application/json");
                 });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~StubRegion() {
    server_.stop();
    thread_.join();
  }

  int port() const { return port_; }  // -1 when it could not listen
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void SetRegistry(const std::string& url) {
    std::lock_guard<std::mutex> l(mu_);
    registry_url_ = url;
  }
  void SetAnswer(int status, Json answer) {
    std::lock_guard<std::mutex> l(mu_);
    answer_status_ = status;
    answer_ = std::move(answer);
  }
  std::vector<Json> posts() {
    std::lock_guard<std::mutex> l(mu_);
    return posts_;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::string registry_url_;  // guarded by mu_; empty: 404
  int answer_status_ = 200;   // guarded by mu_
  Json answer_;               // guarded by mu_
  std::vector<Json> posts_;   // guarded by mu_
};

// An answer as a region of a pair gives it for `image`.
Json DeployAnswer(const Json& image, bool replicated) {
  return {{"bundle_version", "sha256:" + std::string(64, 'b')},
          {"unchanged", false},
          {"dags", {"etl"}},
          {"new_dag_versions", 1},
          {"stale_dags", 0},
          {"import_errors", Json::array()},
          {"image",
           {{"repository", image["repository"]},
            {"digest", image["digest"]},
            {"bytes", 1234},
            {"replicated", replicated}}}};
}

class DeployImageStubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tmp = TempDir::Create("deploy-image-stub");
    ASSERT_TRUE(tmp.ok());
    tmp_.emplace(std::move(tmp).value());
    ASSERT_GT(stub_.port(), 0);
    dir_ = BundleDir(*tmp_, "bundle", {{"etl.yaml", kEtl}, {"sql/q.sql", "select 1;\n"}});
  }
  // A docker-registry of this test's own, on a free port.
  void StartRegistry() {
    const std::string state = tmp_->path() + "/registry";
    ASSERT_TRUE(MakeDirs(state).ok());
    chmod(tmp_->path().c_str(), 0755);  // the registry's user must reach its directory
    images::RegistryServerOptions o;
    o.state_dir = state;
    auto port = PickFreePort();
    ASSERT_TRUE(port.ok());
    o.port = *port;
    o.run_as = RunAsUser();
    auto server = images::RegistryServer::Create(o);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    registry_ = std::move(server).value();
    Status s = registry_->Start(30s);
    ASSERT_TRUE(s.ok()) << s.ToString();
    stub_.SetRegistry(registry_->url());
  }
  CliRun Cli(std::vector<std::string> args) {
    args.insert(args.begin(), {"--url", stub_.url()});
    return RunCli(args);
  }

  StubRegion stub_;
  std::optional<TempDir> tmp_;
  std::string dir_;
  images::RegistryServerPtr registry_;
};

TEST_F(DeployImageStubTest, PushesTheImageThenAsksTheRegionToDeployIt) {
  StartRegistry();
  // The digest is not known before the first push: the first answer leaves it empty.
  stub_.SetAnswer(200, DeployAnswer({{"repository", "dep-0191e4/bundle"}, {"digest", ""}}, true));
  CliRun d = Cli({"deploy", "dep", dir_});
  ASSERT_EQ(d.exit_code, 0) << d.output;
  ASSERT_EQ(stub_.posts().size(), 1u);
  const Json sent = stub_.posts()[0];
  EXPECT_EQ(sent.size(), 2u) << sent;
  EXPECT_EQ(sent["image"]["repository"], "dep-0191e4/bundle") << sent;
  EXPECT_EQ(sent["allow_unreplicated"], false) << sent;
  ASSERT_TRUE(sent["image"]["digest"].is_string()) << sent;
  const std::string digest = sent["image"]["digest"].get<std::string>();
  EXPECT_TRUE(std::regex_match(digest, std::regex("sha256:[0-9a-f]{64}"))) << digest;

  // The registry holds it by digest and as latest, with the bundle's files.
  auto latest = SkopeoInspect(registry_->url(), "dep-0191e4/bundle:latest");
  ASSERT_TRUE(latest.ok()) << latest.status().ToString();
  EXPECT_EQ((*latest)["Digest"], digest);
  auto client = images::NewRegistryClient({.url = registry_->url()});
  ASSERT_TRUE(client.ok());
  auto files = images::PullImage(**client, "dep-0191e4/bundle", digest);
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  EXPECT_EQ(*files, (images::Files{{"etl.yaml", kEtl}, {"sql/q.sql", "select 1;\n"}}));

  // Replicated: said so.
  stub_.SetAnswer(200, DeployAnswer(sent["image"], true));
  CliRun replicated = Cli({"deploy", "dep", dir_});
  ASSERT_EQ(replicated.exit_code, 0) << replicated.output;
  EXPECT_EQ(PrintedDigest(replicated.output), digest) << replicated.output;
  Contains(replicated.output, "image " + digest + " replicated to the standby\n");
  Contains(replicated.output, "bundle_version: sha256:bbbb");
  // The same files make the same image.
  EXPECT_EQ(stub_.posts()[1]["image"], sent["image"]);

  // Allowed to go ahead unreplicated: said so, and sent so.
  stub_.SetAnswer(200, DeployAnswer(sent["image"], false));
  CliRun ahead = Cli({"deploy", "dep", dir_, "--allow-unreplicated"});
  ASSERT_EQ(ahead.exit_code, 0) << ahead.output;
  EXPECT_EQ(stub_.posts()[2]["allow_unreplicated"], true);
  Contains(ahead.output, "image " + digest +
                             " NOT yet replicated to the standby (--allow-unreplicated): it will "
                             "be copied when the standby's registry answers");

  // --output json prints the region's answer as it is.
  CliRun json = Cli({"--output", "json", "deploy", "dep", dir_, "--allow-unreplicated"});
  ASSERT_EQ(json.exit_code, 0) << json.output;
  EXPECT_EQ(Json::parse(json.output, nullptr, false), DeployAnswer(sent["image"], false))
      << json.output;
}

TEST_F(DeployImageStubTest, UnreachableRegistryFailsBeforeTheRegionIsAsked) {
  auto port = PickFreePort();  // nothing listens there
  ASSERT_TRUE(port.ok());
  const std::string url = "http://127.0.0.1:" + std::to_string(*port);
  stub_.SetRegistry(url);
  CliRun d = Cli({"deploy", "dep", dir_});
  EXPECT_EQ(d.exit_code, 3) << d.output;
  Contains(d.output, "error: cannot reach the registry at " + url + ": ");
  Contains(d.output, "nothing was deployed");
  EXPECT_TRUE(stub_.posts().empty());
}

TEST_F(DeployImageStubTest, RegionWithoutRegistryGetsTheFiles) {
  stub_.SetAnswer(200, {{"bundle_version", "sha256:" + std::string(64, 'c')},
                        {"unchanged", false},
                        {"dags", {"etl"}},
                        {"new_dag_versions", 1},
                        {"stale_dags", 0},
                        {"import_errors", Json::array()}});
  CliRun d = Cli({"deploy", "dep", dir_});
  ASSERT_EQ(d.exit_code, 0) << d.output;
  Contains(d.output, "the region runs no registry: uploading the files themselves");
  Contains(d.output, "bundle_version: sha256:cccc");
  EXPECT_TRUE(PrintedDigest(d.output).empty()) << d.output;
  ASSERT_EQ(stub_.posts().size(), 1u);
  EXPECT_EQ(stub_.posts()[0],
            Json({{"files", {{"etl.yaml", kEtl}, {"sql/q.sql", "select 1;\n"}}}}));
}

TEST_F(DeployImageStubTest, StandbyLackingTheImageFailsWithTheRegionsDetail) {
  StartRegistry();
  const std::string detail =
      "the standby's registry does not hold the image yet (region-b: connection refused); "
      "retry, or deploy with --allow-unreplicated";
  stub_.SetAnswer(503, {{"detail", detail}});
  CliRun unavailable = Cli({"deploy", "dep", dir_});
  EXPECT_EQ(unavailable.exit_code, 3) << unavailable.output;
  Contains(unavailable.output, "error: " + detail + " (HTTP 503)");
  EXPECT_EQ(unavailable.output.find("bundle_version"), std::string::npos);

  stub_.SetAnswer(504, {{"detail", "the standby's registry did not take the image within 60 s"}});
  CliRun timeout = Cli({"deploy", "dep", dir_});
  EXPECT_NE(timeout.exit_code, 0) << timeout.output;
  Contains(timeout.output, "error: the standby's registry did not take the image within 60 s");
  EXPECT_EQ(stub_.posts().size(), 2u);
}

}  // namespace
}  // namespace tandem::testing
