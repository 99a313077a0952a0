// Token auth against a real registry: a docker-registry this test starts over TLS with a CA of
// its own, on a free loopback port, requiring bearer tokens (auth.token), stopped by PID. Tokens
// are signed as a region signs them (with a certificate of the CA); the registry is the judge,
// and skopeo an independent client.
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/stat.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "base/clock.h"
#include "base/fs.h"
#include "base/net.h"
#include "base/process.h"
#include "crypto/secret_box.h"
#include "images/oci_image.h"
#include "images/registry_client.h"
#include "images/registry_server.h"
#include "images/registry_token.h"
#include "tls/certificates.h"
#include "tls/http_client.h"

namespace tandem::images {
namespace {

using namespace std::chrono_literals;

// A CA and a certificate for 127.0.0.1 signed by it, written under `dir`; the files' paths.
struct Authority {
  std::string ca_file, cert_file, key_file;
};
Result<Authority> MakeAuthority(const std::string& dir, const std::string& name) {
  ASSIGN_OR_RETURN(tls::Pem ca, tls::CreateAuthority(name + " CA", std::chrono::hours(24)));
  ASSIGN_OR_RETURN(tls::Pem server, tls::IssueServerCertificate(ca, {name, {}, {"127.0.0.1"}},
                                                                std::chrono::hours(24)));
  Authority a{dir + "/" + name + "-ca.crt", dir + "/" + name + ".crt", dir + "/" + name + ".key"};
  RETURN_IF_ERROR(WriteFileAtomic(a.ca_file, ca.certificate, 0644));
  RETURN_IF_ERROR(WriteFileAtomic(a.cert_file, server.certificate, 0644));
  RETURN_IF_ERROR(WriteFileAtomic(a.key_file, server.private_key, 0600));
  return a;
}

int64_t Now() { return UnixSeconds(RealClock().Wall()); }

class RegistryTokenE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto dir = TempDir::Create("tandem-registry-token");
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_ = new TempDir(std::move(dir).value());
    chmod(dir_->path().c_str(), 0755);  // the run-as user reaches its state directory
    const std::string root = AbsolutePath(dir_->path());
    auto own = MakeAuthority(root, "pair");
    ASSERT_TRUE(own.ok()) << own.status().ToString();
    auto other = MakeAuthority(root, "other");
    ASSERT_TRUE(other.ok()) << other.status().ToString();
    pair_ = new Authority(*own);
    RegistryServerOptions o;
    o.state_dir = root + "/registry";
    auto port = PickFreePort();
    ASSERT_TRUE(port.ok());
    o.port = *port;
    o.run_as = RunningAsRoot() ? "tandem" : "";
    o.tls_cert_file = own->cert_file;
    o.tls_key_file = own->key_file;
    o.trust = {own->ca_file};
    o.token_realm = "https://127.0.0.1:1/api/v1/registry/token";
    auto server = RegistryServer::Create(o);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    Status started = (*server)->Start(30s);
    ASSERT_TRUE(started.ok()) << started.ToString();
    server_ = std::move(server).value().release();
    signer_ = RegistryTokenSigner::FromFiles(own->cert_file, own->key_file).value().release();
    foreign_ = RegistryTokenSigner::FromFiles(other->cert_file, other->key_file).value().release();
  }

  static void TearDownTestSuite() {
    if (server_ != nullptr) {
      pid_t pid = server_->pid();
      EXPECT_TRUE(server_->Stop().ok());
      EXPECT_FALSE(pid != 0 && ProcessAlive(pid)) << "registry pid " << pid << " still runs";
    }
    delete server_;
    delete signer_;
    delete foreign_;
    delete pair_;
    delete dir_;
    server_ = nullptr;
  }

  // A client whose tokens come from `grant` (the scope asked -> the token sent).
  static RegistryPtr Client(std::function<Result<std::string>(const std::string&)> grant) {
    return NewRegistryClient(
               {.url = server_->url(), .trust = {pair_->ca_file}, .token = std::move(grant)})
        .value();
  }
  // Tokens granting exactly what each request asks, signed by `signer`, issued at `at`.
  static RegistryPtr Granting(const RegistryTokenSigner* signer, int64_t at = 0) {
    return Client([signer, at](const std::string& scope) -> Result<std::string> {
      std::vector<RegistryAccess> access;
      if (!scope.empty()) access.push_back(*ParseRegistryScope(scope));
      return signer->Sign("test", access, at == 0 ? Now() : at);
    });
  }

  static Image SmallImage(const std::string& salt) {
    return BuildImage({{"dags.yaml", "dags:\n  - id: " + salt + "\n"}}).value();
  }

  static TempDir* dir_;
  static Authority* pair_;
  static RegistryServer* server_;
  static RegistryTokenSigner* signer_;
  static RegistryTokenSigner* foreign_;
};

TempDir* RegistryTokenE2eTest::dir_ = nullptr;
Authority* RegistryTokenE2eTest::pair_ = nullptr;
RegistryServer* RegistryTokenE2eTest::server_ = nullptr;
RegistryTokenSigner* RegistryTokenE2eTest::signer_ = nullptr;
RegistryTokenSigner* RegistryTokenE2eTest::foreign_ = nullptr;

TEST_F(RegistryTokenE2eTest, ATokenForTheScopeLetsAClientPushAndPull) {
  RegistryPtr client = Granting(signer_);
  ASSERT_TRUE(client->Ping().ok());
  Image image = SmallImage("granted");
  ASSERT_TRUE(PushImage(*client, "etl-1a2b3c/bundle", "latest", image).ok());
  auto files = PullImage(*client, "etl-1a2b3c/bundle", image.digest);
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  EXPECT_EQ(files->at("dags.yaml"), "dags:\n  - id: granted\n");

  // skopeo, told the token, sees the same image.
  const std::string token =
      signer_->Sign("test", {*ParseRegistryScope("repository:etl-1a2b3c/bundle:pull")}, Now());
  const std::string host = server_->url().substr(std::string("https://").size());
  SpawnOptions so{.argv = {"/usr/bin/skopeo", "inspect", "--tls-verify=false", "--registry-token",
                           token, "docker://" + host + "/etl-1a2b3c/bundle"}};
  auto out = RunCommand(so, 60s);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_TRUE(out->exit.exited && out->exit.code == 0) << out->output;
  EXPECT_EQ(nlohmann::json::parse(out->output)["Digest"], image.digest);
}

TEST_F(RegistryTokenE2eTest, NoTokenABadOneOrTheWrongScopeIsRefused) {
  Image image = SmallImage("refused");
  ASSERT_TRUE(PushImage(*Granting(signer_), "etl-1a2b3c/bundle", "latest", image).ok());
  const std::string repo = "etl-1a2b3c/bundle";

  // No credential at all.
  RegistryPtr anonymous =
      NewRegistryClient({.url = server_->url(), .trust = {pair_->ca_file}}).value();
  EXPECT_EQ(anonymous->Ping().code(), Code::kUnauthenticated);
  EXPECT_EQ(PullImage(*anonymous, repo, image.digest).status().code(), Code::kUnauthenticated);
  EXPECT_EQ(PushImage(*anonymous, repo, "latest", SmallImage("anon")).code(),
            Code::kUnauthenticated);

  // Pull only: reads work, writes do not.
  RegistryPtr reader = Client([](const std::string& scope) -> Result<std::string> {
    std::vector<RegistryAccess> access;
    if (!scope.empty()) access.push_back({ParseRegistryScope(scope)->name, {"pull"}});
    return signer_->Sign("reader", access, Now());
  });
  EXPECT_TRUE(PullImage(*reader, repo, image.digest).ok());
  Status pushed = PushImage(*reader, repo, "latest", SmallImage("reader"));
  EXPECT_FALSE(pushed.ok());
  EXPECT_EQ(pushed.code(), Code::kUnauthenticated) << pushed.ToString();

  // Another repository's token, one signed by a certificate of another CA, an expired one.
  RegistryPtr elsewhere = Client([](const std::string&) -> Result<std::string> {
    return signer_->Sign("other", {{"other-9z9z9z/bundle", {"pull", "push"}}}, Now());
  });
  EXPECT_EQ(PullImage(*elsewhere, repo, image.digest).status().code(), Code::kUnauthenticated);
  EXPECT_EQ(PullImage(*Granting(foreign_), repo, image.digest).status().code(),
            Code::kUnauthenticated);
  EXPECT_EQ(PullImage(*Granting(signer_, Now() - 3600), repo, image.digest).status().code(),
            Code::kUnauthenticated);

  // A token whose claims were changed after signing, and one that claims no signature.
  const std::string good = signer_->Sign("test", {{"other-9z9z9z/bundle", {"pull"}}}, Now());
  const size_t dot1 = good.find('.'), dot2 = good.rfind('.');
  nlohmann::json claims =
      nlohmann::json::parse(*Base64UrlDecode(good.substr(dot1 + 1, dot2 - dot1 - 1)));
  claims["access"][0]["name"] = repo;
  const std::string changed =
      good.substr(0, dot1 + 1) + Base64UrlEncode(claims.dump()) + good.substr(dot2);
  const std::string unsigned_token =
      Base64UrlEncode(R"({"alg":"none","typ":"JWT"})") + "." + Base64UrlEncode(claims.dump()) + ".";
  for (const std::string& forged : {changed, unsigned_token}) {
    RegistryPtr c = Client([forged](const std::string&) -> Result<std::string> { return forged; });
    EXPECT_EQ(PullImage(*c, repo, image.digest).status().code(), Code::kUnauthenticated);
  }
}

TEST_F(RegistryTokenE2eTest, NobodyDeletes) {
  Image image = SmallImage("kept");
  RegistryPtr client = Granting(signer_);
  ASSERT_TRUE(PushImage(*client, "etl-1a2b3c/bundle", "latest", image).ok());
  auto cli = tls::NewHttpClient(true, "127.0.0.1",
                                std::stoi(server_->url().substr(server_->url().rfind(':') + 1)),
                                {pair_->ca_file});
  const std::string path = "/v2/etl-1a2b3c/bundle/manifests/" + image.digest;
  // Tokens never grant "delete" (the realm grants pull and push only)...
  cli->set_bearer_token_auth(
      signer_->Sign("test", {{"etl-1a2b3c/bundle", {"pull", "push"}}}, Now()));
  auto r = cli->Delete(path);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401) << r->body;
  // ...and a token that did would meet a registry whose deletes are off.
  cli->set_bearer_token_auth(
      signer_->Sign("test", {{"etl-1a2b3c/bundle", {"pull", "push", "delete"}}}, Now()));
  r = cli->Delete(path);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405) << r->body;
  EXPECT_TRUE(PullImage(*client, "etl-1a2b3c/bundle", image.digest).ok());
}

TEST(RegistryScopeTest, OnlyRepositoryPullAndPushAreGranted) {
  auto a = ParseRegistryScope("repository:etl-1a2b3c/bundle:pull,push,pull");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->name, "etl-1a2b3c/bundle");
  EXPECT_EQ(a->actions, (std::vector<std::string>{"pull", "push"}));
  EXPECT_EQ(RegistryScope("x/bundle", true), "repository:x/bundle:pull,push");
  for (const char* bad : {"registry:catalog:*", "repository:x/bundle:delete", "repository:x",
                          "repository:Bad Name:pull", "repository:x/bundle:", "",
                          "repository::pull", "repository:x/bundle:pull,*"}) {
    EXPECT_EQ(ParseRegistryScope(bad).status().code(), Code::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace tandem::images
