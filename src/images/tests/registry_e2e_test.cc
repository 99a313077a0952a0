// Against real registries: two docker-registry processes this test starts on free loopback
// ports in a temporary directory (run as the unprivileged `tandem` user when the test runs as
// root), stopped by PID when the suite ends, and through their parent-death signal if the test
// process dies. skopeo is the independent client that checks what they hold.
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/fs.h"
#include "base/net.h"
#include "base/process.h"
#include "base/random.h"
#include "images/digest.h"
#include "images/registry_client.h"
#include "images/registry_server.h"
#include "images/replicate.h"

namespace tandem::images {
namespace {

using namespace std::chrono_literals;

std::string RunAs() { return RunningAsRoot() ? "tandem" : ""; }

Result<RegistryServerPtr> StartRegistry(const std::string& dir) {
  RegistryServerOptions o;
  o.state_dir = dir;
  ASSIGN_OR_RETURN(o.port, PickFreePort());
  o.run_as = RunAs();
  ASSIGN_OR_RETURN(RegistryServerPtr server, RegistryServer::Create(o));
  RETURN_IF_ERROR(server->Start(30s));
  return server;
}

RegistryPtr Client(const std::string& url) {
  RegistryClientOptions o;
  o.url = url;
  o.connect_timeout = 2s;
  o.io_timeout = 20s;
  return NewRegistryClient(o).value();
}

// `skopeo inspect` of docker://<registry>/<ref>: the JSON it prints, or its raw manifest.
Result<std::string> Skopeo(const std::string& url, const std::string& ref, bool raw) {
  std::string host = url.substr(std::string("http://").size());
  SpawnOptions so{.argv = {"/usr/bin/skopeo", "inspect", "--tls-verify=false"}};
  if (raw) so.argv.push_back("--raw");
  so.argv.push_back("docker://" + host + "/" + ref);
  ASSIGN_OR_RETURN(RunOutput out, RunCommand(so, 60s));
  if (!out.exit.exited || out.exit.code != 0) {
    return Internal("skopeo " + out.exit.Describe() + ": " + out.output);
  }
  return out.output;
}

// A loopback HTTP server in front of a registry that serves the next `corrupt` blob reads
// with one byte changed (and the true Docker-Content-Digest), and passes everything else on.
class CorruptingProxy {
 public:
  CorruptingProxy(const std::string& upstream_url, int corrupt) : corrupt_(corrupt) {
    std::string hostport = upstream_url.substr(std::string("http://").size());
    host_ = hostport.substr(0, hostport.rfind(':'));
    port_ = std::stoi(hostport.substr(hostport.rfind(':') + 1));
    server_.Get(".*", [this](const httplib::Request& req, httplib::Response& res) {
      httplib::Client up(host_, port_);
      httplib::Headers h;
      if (req.has_header("Accept")) h.emplace("Accept", req.get_header_value("Accept"));
      auto r = up.Get(req.path, h);
      if (!r) {
        res.status = 502;
        return;
      }
      std::string body = r->body;
      if (req.path.find("/blobs/") != std::string::npos && r->status == 200 && !body.empty()) {
        ++blob_gets_;
        if (corrupt_ > 0) {
          --corrupt_;
          body[body.size() / 2] = static_cast<char>(body[body.size() / 2] ^ 0x01);
        }
      }
      res.status = r->status;
      for (const char* name : {"Docker-Content-Digest", "Docker-Distribution-Api-Version"}) {
        if (r->has_header(name)) res.set_header(name, r->get_header_value(name));
      }
      res.set_content(body, r->get_header_value("Content-Type").c_str());
    });
    port = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    for (int i = 0; i < 500 && !server_.is_running(); ++i) std::this_thread::sleep_for(2ms);
  }
  ~CorruptingProxy() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
  int blob_gets() const { return blob_gets_; }

  int port = 0;

 private:
  std::string host_;
  int port_ = 0;
  std::atomic<int> corrupt_;
  std::atomic<int> blob_gets_{0};
  httplib::Server server_;
  std::thread thread_;
};

class RegistryE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto dir = TempDir::Create("tandem-registry-e2e");
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_ = new TempDir(std::move(dir).value());
    chmod(dir_->path().c_str(), 0755);  // the run-as user reaches its state directories
    const std::string root = AbsolutePath(dir_->path());
    auto a = StartRegistry(root + "/region-a");
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    a_ = std::move(a).value().release();
    auto b = StartRegistry(root + "/region-b");
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    b_ = std::move(b).value().release();
  }

  static void TearDownTestSuite() {
    for (RegistryServer* s : {a_, b_}) {
      if (s != nullptr) {
        pid_t pid = s->pid();
        EXPECT_TRUE(s->Stop().ok());
        EXPECT_FALSE(pid != 0 && ProcessAlive(pid)) << "registry pid " << pid << " still runs";
      }
      delete s;
    }
    a_ = b_ = nullptr;
    delete dir_;
    dir_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(a_, nullptr);
    ASSERT_NE(b_, nullptr);
    a_client_ = Client(a_->url());
    b_client_ = Client(b_->url());
    options_.retry_pause = 10ms;
  }

  static Image SmallImage(const std::string& salt) {
    return BuildImage({{"dags.yaml", "dags:\n  - id: " + salt + "\n"},
                       {"plugins/util.py", "X = '" + salt + "'\n"}})
        .value();
  }

  static TempDir* dir_;
  static RegistryServer* a_;
  static RegistryServer* b_;
  RegistryPtr a_client_, b_client_;
  ReplicateOptions options_;
};

TempDir* RegistryE2eTest::dir_ = nullptr;
RegistryServer* RegistryE2eTest::a_ = nullptr;
RegistryServer* RegistryE2eTest::b_ = nullptr;

TEST_F(RegistryE2eTest, RunsAsTheUnprivilegedUserWhenRoot) {
  if (!RunningAsRoot()) GTEST_SKIP() << "runs as this user";
  auto status = ReadFile("/proc/" + std::to_string(a_->pid()) + "/status");
  ASSERT_TRUE(status.ok()) << status.status().ToString();
  size_t uid_line = status->find("\nUid:");
  ASSERT_NE(uid_line, std::string::npos);
  uid_t real_uid = static_cast<uid_t>(std::stoul(status->substr(uid_line + 5)));
  EXPECT_EQ(real_uid, LookupUser("tandem")->uid);
  EXPECT_NE(real_uid, 0u);
}

TEST_F(RegistryE2eTest, PushThenPullRoundTrips) {
  ASSERT_TRUE(a_client_->Ping().ok());
  Image image = SmallImage("round-trip");
  Status pushed = PushImage(*a_client_, "deployments/round-trip", "v1", image);
  ASSERT_TRUE(pushed.ok()) << pushed.ToString();

  auto by_tag = PullImage(*a_client_, "deployments/round-trip", "v1");
  ASSERT_TRUE(by_tag.ok()) << by_tag.status().ToString();
  EXPECT_EQ(by_tag->at("plugins/util.py"), "X = 'round-trip'\n");
  auto by_digest = PullImage(*a_client_, "deployments/round-trip", image.digest);
  ASSERT_TRUE(by_digest.ok()) << by_digest.status().ToString();
  EXPECT_EQ(*by_tag, *by_digest);

  auto head = a_client_->StatManifest("deployments/round-trip", "v1");
  ASSERT_TRUE(head.ok()) << head.status().ToString();
  EXPECT_EQ(head->value_or(""), image.digest);
  auto manifest = a_client_->GetManifest("deployments/round-trip", "v1");
  ASSERT_TRUE(manifest.ok());
  EXPECT_EQ(manifest->media_type, kOciManifestType);
  EXPECT_EQ(manifest->bytes, image.manifest);
  EXPECT_FALSE(a_client_->StatManifest("deployments/round-trip", "v2")->has_value());
  EXPECT_FALSE(a_client_->StatBlob("deployments/round-trip", DigestOf("nothing"))->has_value());
  auto unknown = a_client_->GetBlob("deployments/round-trip", DigestOf("nothing"), 100);
  EXPECT_EQ(unknown.status().code(), Code::kNotFound);
  EXPECT_NE(unknown.status().message().find("BLOB_UNKNOWN"), std::string::npos)
      << unknown.status().ToString();

  // Pushing again uploads nothing new and leaves the same digest.
  ASSERT_TRUE(PushImage(*a_client_, "deployments/round-trip", "v1", image).ok());
  EXPECT_EQ(a_client_->StatManifest("deployments/round-trip", "v1")->value_or(""), image.digest);
}

TEST_F(RegistryE2eTest, ABlobUploadWithTheWrongDigestIsRefused) {
  auto s = a_client_->PutBlob("deployments/bad-upload", DigestOf("what was meant"), "what came");
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("DIGEST_INVALID"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("deployments/bad-upload"), std::string::npos);
  EXPECT_FALSE(
      a_client_->StatBlob("deployments/bad-upload", DigestOf("what was meant"))->has_value());
}

TEST_F(RegistryE2eTest, ReplicatedImageHasTheSameDigestOnBothAndASecondRunCopiesNothing) {
  const std::string repo = "deployments/replicated";
  Image image = SmallImage("replicated");
  ASSERT_TRUE(PushImage(*a_client_, repo, "v1", image).ok());

  auto first = ReplicateImage(*a_client_, *b_client_, repo, image.digest, "v1", options_);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->blobs_copied, 2);
  EXPECT_EQ(first->blobs_skipped, 0);
  EXPECT_TRUE(first->manifest_copied);

  for (RegistryServer* s : {a_, b_}) {
    auto inspected = Skopeo(s->url(), repo + ":v1", false);
    ASSERT_TRUE(inspected.ok()) << inspected.status().ToString();
    auto j = nlohmann::json::parse(*inspected, nullptr, false);
    ASSERT_TRUE(j.is_object()) << *inspected;
    EXPECT_EQ(j.value("Digest", ""), image.digest) << s->url();
    auto raw = Skopeo(s->url(), repo + "@" + image.digest, true);
    ASSERT_TRUE(raw.ok()) << raw.status().ToString();
    EXPECT_EQ(DigestOf(*raw), image.digest) << s->url();
  }
  auto pulled = PullImage(*b_client_, repo, "v1");
  ASSERT_TRUE(pulled.ok()) << pulled.status().ToString();
  EXPECT_EQ(pulled->at("dags.yaml"), "dags:\n  - id: replicated\n");

  auto second = ReplicateImage(*a_client_, *b_client_, repo, image.digest, "v1", options_);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->blobs_copied, 0);
  EXPECT_EQ(second->blobs_skipped, 2);
  EXPECT_EQ(second->bytes_copied, 0);
  EXPECT_FALSE(second->manifest_copied);
}

TEST_F(RegistryE2eTest, ABlobWhoseDigestDoesNotMatchIsFetchedAgain) {
  const std::string repo = "deployments/corrupted-once";
  Image image = SmallImage("corrupted-once");
  ASSERT_TRUE(PushImage(*a_client_, repo, "v1", image).ok());
  CorruptingProxy proxy(a_->url(), 1);
  ASSERT_GT(proxy.port, 0);
  RegistryPtr source = Client(proxy.url());

  auto r = ReplicateImage(*source, *b_client_, repo, image.digest, "v1", options_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->refetches, 1);
  EXPECT_EQ(r->blobs_copied, 2);
  EXPECT_EQ(proxy.blob_gets(), 3);
  EXPECT_EQ(b_client_->StatManifest(repo, "v1")->value_or(""), image.digest);
  EXPECT_TRUE(PullImage(*b_client_, repo, image.digest).ok());
}

TEST_F(RegistryE2eTest, ABlobThatNeverMatchesIsRefusedNamingBothDigests) {
  const std::string repo = "deployments/corrupted-always";
  Image image = SmallImage("corrupted-always");
  ASSERT_TRUE(PushImage(*a_client_, repo, "v1", image).ok());
  CorruptingProxy proxy(a_->url(), 1000);
  RegistryPtr source = Client(proxy.url());

  auto r = ReplicateImage(*source, *b_client_, repo, image.digest, "v1", options_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInternal);
  const std::string msg = r.status().message();
  EXPECT_NE(msg.find("content digest mismatch: asked for " + image.parsed.config.digest),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("with digest sha256:"), std::string::npos) << msg;
  EXPECT_NE(msg.find(proxy.url()), std::string::npos) << msg;
  EXPECT_EQ(proxy.blob_gets(), options_.max_fetch_attempts);
  EXPECT_FALSE(b_client_->StatManifest(repo, image.digest)->has_value());
  EXPECT_FALSE(b_client_->StatBlob(repo, image.parsed.config.digest)->has_value());
}

TEST_F(RegistryE2eTest, AManifestWhoseBlobIsMissingIsRefused) {
  const std::string repo = "deployments/missing-blob";
  Image image = SmallImage("missing-blob");
  const Descriptor& config = image.parsed.config;
  ASSERT_TRUE(a_client_->PutBlob(repo, config.digest, image.blobs.at(config.digest)).ok());
  // The layer was never uploaded: the registry itself refuses the manifest.
  auto put = a_client_->PutManifest(repo, "v1", kOciManifestType, image.manifest);
  EXPECT_EQ(put.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(put.status().message().find("MANIFEST_BLOB_UNKNOWN"), std::string::npos)
      << put.status().ToString();
  EXPECT_NE(put.status().message().find(repo), std::string::npos);
  EXPECT_FALSE(a_client_->StatManifest(repo, "v1")->has_value());

  // A source that lost a blob after the manifest was stored: replication stops at that blob
  // and the target never names the image. Nobody may delete through the registry's API, so
  // the blob is lost from its storage.
  ASSERT_TRUE(PushImage(*a_client_, repo, "v2", image).ok());
  const std::string& layer = image.parsed.layers[0].digest;
  httplib::Client raw(a_->url().substr(7, a_->url().rfind(':') - 7),
                      std::stoi(a_->url().substr(a_->url().rfind(':') + 1)));
  auto del = raw.Delete("/v2/" + repo + "/blobs/" + layer);
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 405) << del->body;
  EXPECT_NE(del->body.find("UNSUPPORTED"), std::string::npos) << del->body;
  const std::string hex = layer.substr(layer.find(':') + 1);
  const std::string blob =
      a_->data_dir() + "/docker/registry/v2/blobs/sha256/" + hex.substr(0, 2) + "/" + hex + "/data";
  ASSERT_TRUE(PathExists(blob)) << blob;
  ASSERT_EQ(std::remove(blob.c_str()), 0) << blob;
  auto r = ReplicateImage(*a_client_, *b_client_, repo, image.digest, "v2", options_);
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_NE(r.status().message().find("BLOB_UNKNOWN"), std::string::npos) << r.status().ToString();
  EXPECT_NE(r.status().message().find(layer), std::string::npos);
  EXPECT_FALSE(b_client_->StatManifest(repo, image.digest)->has_value());
}

TEST_F(RegistryE2eTest, ATargetThatIsDownIsUnavailable) {
  auto c = StartRegistry(AbsolutePath(dir_->path()) + "/region-c");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  RegistryServerPtr down = std::move(c).value();
  pid_t pid = down->pid();
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(down->Running());
  ASSERT_TRUE(down->Stop().ok());
  EXPECT_FALSE(ProcessAlive(pid));
  EXPECT_FALSE(down->Running());
  EXPECT_EQ(down->pid(), 0);

  const std::string repo = "deployments/target-down";
  Image image = SmallImage("target-down");
  ASSERT_TRUE(PushImage(*a_client_, repo, "v1", image).ok());
  RegistryPtr target = Client(down->url());
  auto r = ReplicateImage(*a_client_, *target, repo, image.digest, "v1", options_);
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_NE(r.status().message().find("registry " + down->url()), std::string::npos)
      << r.status().ToString();
  EXPECT_NE(r.status().message().find(repo), std::string::npos);
  EXPECT_EQ(target->Ping().code(), Code::kUnavailable);

  // Started again on the same directory and port: the replication completes.
  ASSERT_TRUE(down->Start(30s).ok());
  auto again = ReplicateImage(*a_client_, *target, repo, image.digest, "v1", options_);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(target->StatManifest(repo, "v1")->value_or(""), image.digest);
  ASSERT_TRUE(down->Stop().ok());
}

TEST_F(RegistryE2eTest, Replicates50MiBImage) {
  const std::string repo = "deployments/large";
  auto t0 = std::chrono::steady_clock::now();
  Image image =
      BuildImage({{"dags.yaml", "dags: []\n"}, {"data.bin", RandomBytes(50 << 20)}}).value();
  auto t1 = std::chrono::steady_clock::now();
  ASSERT_GE(image.parsed.layers[0].size, 50 << 20);
  ASSERT_TRUE(PushImage(*a_client_, repo, "v1", image).ok());
  auto t2 = std::chrono::steady_clock::now();
  auto r = ReplicateImage(*a_client_, *b_client_, repo, image.digest, "v1", options_);
  auto t3 = std::chrono::steady_clock::now();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->blobs_copied, 2);
  EXPECT_GE(r->bytes_copied, 50 << 20);
  EXPECT_EQ(b_client_->StatManifest(repo, "v1")->value_or(""), image.digest);
  EXPECT_EQ(b_client_->StatBlob(repo, image.parsed.layers[0].digest)->value_or(0),
            image.parsed.layers[0].size);
  auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  printf("50 MiB image (layer %lld bytes): build %lld ms, push %lld ms, replicate A->B %lld ms\n",
         static_cast<long long>(image.parsed.layers[0].size), static_cast<long long>(ms(t1 - t0)),
         static_cast<long long>(ms(t2 - t1)), static_cast<long long>(ms(t3 - t2)));
}

}  // namespace
}  // namespace tandem::images
