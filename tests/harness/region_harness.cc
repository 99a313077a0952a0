#include "harness/region_harness.h"

#include <httplib.h>
#include <signal.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "auth/api_token.h"
#include "base/net.h"
#include "crypto/secret_box.h"
#include "harness/pg_harness.h"
#include "tls/certificates.h"

namespace tandem::testing {

std::string BundleDir(const TempDir& tmp, const std::string& name,
                      const std::map<std::string, std::string>& files) {
  std::string dir = tmp.path() + "/" + name;
  EXPECT_TRUE(MakeDirs(dir).ok());
  for (const auto& [path, content] : files) {
    std::string full = dir;
    full.append("/").append(path);
    EXPECT_TRUE(MakeDirs(full.substr(0, full.rfind('/'))).ok());
    EXPECT_TRUE(WriteFileAtomic(full, content).ok()) << full;
  }
  return dir;
}

using namespace std::chrono_literals;

// A TLS write to a server a test killed fails that call instead of killing the test (OpenSSL
// writes with write(2), which raises SIGPIPE).
[[maybe_unused]] const bool kSigpipeIgnored = [] {
  signal(SIGPIPE, SIG_IGN);
  return true;
}();

// SetTestCaFile's: the CA of the last pair or region a test of this process started.
std::string& TestCaFile() {
  static std::string ca;
  return ca;
}

std::string TandemBin() {
  const char* b = getenv("TANDEM_BIN");
  return b && *b ? b : TANDEM_BIN_PATH;
}

namespace {
bool cli_sends_owner_token = true;  // CliSendsOwnerToken
}  // namespace

CliRun RunCli(const std::vector<std::string>& args, int timeout_seconds,
              const std::string& stdin_text) {
  SpawnOptions so;
  so.argv = {TandemBin()};
  so.argv.insert(so.argv.end(), args.begin(), args.end());
  if (cli_sends_owner_token) so.env_extra["TANDEM_TOKEN"] = OwnerToken();
  if (!TestCaFile().empty()) so.env_extra["TANDEM_CA_FILE"] = TestCaFile();
  std::optional<TempDir> input;
  if (!stdin_text.empty()) {
    auto dir = TempDir::Create("tandem-cli-in");
    if (!dir.ok()) return {-1, dir.status().ToString()};
    input.emplace(std::move(dir).value());
    so.input_path = input->path() + "/stdin";
    if (!WriteFileAtomic(so.input_path, stdin_text).ok()) return {-1, "cannot write stdin"};
  }
  auto r = RunCommand(so, std::chrono::seconds(timeout_seconds));
  if (!r.ok()) return {-1, r.status().ToString()};
  return {r->exit.exited ? r->exit.code : 128 + r->exit.code, r->output};
}

const std::string& OwnerToken() {
  static const std::string token = auth::FormatToken(auth::NewToken());
  return token;
}

void CliSendsOwnerToken(bool on) { cli_sends_owner_token = on; }

std::string WriteOwnerTokenFile(const std::string& dir) {
  std::string path = dir + "/owner.token";
  Status s = WriteFileAtomic(path, OwnerToken() + "\n", 0600);
  if (!s.ok()) ADD_FAILURE() << s.ToString();
  return path;
}

void SetTestCaFile(const std::string& ca_file) { TestCaFile() = ca_file; }

namespace {

std::unique_ptr<httplib::Client> NewClient(const std::string& base_url,
                                           const std::string& ca_file) {
  auto c = std::make_unique<httplib::Client>(base_url);
  if (base_url.starts_with("https://")) {
    c->enable_server_certificate_verification(true);
    const std::string& ca = ca_file.empty() ? TestCaFile() : ca_file;
    if (!ca.empty()) c->set_ca_cert_path(ca);
  }
  c->set_connection_timeout(5);
  c->set_read_timeout(30);
  // As tandem's own clients: on a kept connection, Nagle's algorithm would hold a request's
  // body until the server acknowledged its headers (up to 40 ms of delayed ACK).
  c->set_tcp_nodelay(true);
  return c;
}

HttpReply SendOn(httplib::Client& c, const std::string& method, const std::string& path,
                 const std::string& body,
                 const std::vector<std::pair<std::string, std::string>>& headers) {
  httplib::Headers h;
  bool has_authorization = false;
  for (const auto& [k, v] : headers) {
    if (strcasecmp(k.c_str(), "Authorization") == 0) {
      has_authorization = true;
      if (v.empty()) continue;
    }
    h.emplace(k, v);
  }
  if (!has_authorization) h.emplace("Authorization", "Bearer " + OwnerToken());
  httplib::Result r(nullptr, httplib::Error::Unknown);
  if (method == "GET")
    r = c.Get(path, h);
  else if (method == "POST")
    r = c.Post(path, h, body, "application/json");
  else if (method == "PUT")
    r = c.Put(path, h, body, "application/json");
  else if (method == "PATCH")
    r = c.Patch(path, h, body, "application/json");
  else if (method == "DELETE")
    r = c.Delete(path, h);
  if (!r) return {};
  return {r->status, r->body};
}

}  // namespace

HttpReply Http(const std::string& base_url, const std::string& method, const std::string& path,
               const std::string& body,
               const std::vector<std::pair<std::string, std::string>>& headers,
               const std::string& ca_file) {
  std::unique_ptr<httplib::Client> c = NewClient(base_url, ca_file);
  return SendOn(*c, method, path, body, headers);
}

struct HttpSession::Connection {
  std::string base_url;
  std::unique_ptr<httplib::Client> client;
};

HttpSession::HttpSession(std::string ca_file) : ca_file_(std::move(ca_file)) {}
HttpSession::~HttpSession() = default;

HttpReply HttpSession::Send(const std::string& base_url, const std::string& method,
                            const std::string& path, const std::string& body,
                            const std::vector<std::pair<std::string, std::string>>& headers) {
  if (!conn_ || conn_->base_url != base_url) {
    conn_ = std::make_unique<Connection>(Connection{base_url, NewClient(base_url, ca_file_)});
    conn_->client->set_keep_alive(true);
  }
  HttpReply r = SendOn(*conn_->client, method, path, body, headers);
  if (r.status == 0) conn_.reset();
  return r;
}

std::string MakeWorkerCredential(const std::string& base_url, const std::string& deployment) {
  const std::string path = deployment.empty()
                               ? "/api/v1/worker-credentials"
                               : "/api/v1/deployments/" + deployment + "/worker-credentials";
  HttpReply r = Http(base_url, "POST", path, R"({"name":"test workers"})");
  if (r.status != 201) return "";
  nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
  return j.is_object() && j.contains("credential") ? j["credential"].get<std::string>() : "";
}

std::vector<pid_t> RegistryPids(const std::string& state_dir) {
  return ServerPids("docker-registry", state_dir);
}

void KillRegistries(const std::string& state_dir) { KillServers("docker-registry", state_dir); }

std::vector<pid_t> ServerPids(const std::string& program, const std::string& state_dir) {
  std::vector<pid_t> pids;
  const std::string under = state_dir + "/";
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc", ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    auto cmdline = ReadFile(it->path().string() + "/cmdline");
    if (!cmdline.ok()) continue;  // gone meanwhile, or not ours to read
    std::string args = *cmdline;
    std::replace(args.begin(), args.end(), '\0', ' ');
    if (args.find(program) != std::string::npos && args.find(under) != std::string::npos) {
      const pid_t pid = static_cast<pid_t>(std::stol(name));
      if (pid != getpid()) pids.push_back(pid);
    }
  }
  return pids;
}

void KillServers(const std::string& program, const std::string& state_dir) {
  std::vector<pid_t> pids = ServerPids(program, state_dir);
  for (pid_t pid : pids) kill(pid, SIGTERM);
  for (pid_t pid : pids) {
    for (int i = 0; i < 100 && ProcessAlive(pid); ++i) std::this_thread::sleep_for(50ms);
    if (ProcessAlive(pid)) kill(pid, SIGKILL);
  }
}

Result<std::unique_ptr<RegionProcess>> RegionProcess::Create(Options o) {
  std::unique_ptr<RegionProcess> p(new RegionProcess());
  p->o_ = std::move(o);
  ASSIGN_OR_RETURN(TempDir tmp, TempDir::Create("tandem-test-region"));
  p->dir_ = AbsolutePath(tmp.Release());
  chmod(p->dir_.c_str(), 0755);  // the PostgreSQL user must reach its data directory
  // The region's TMPDIR, where its workers keep their tasks' directories: removed with the
  // rest, even when a SIGKILLed worker left them. Tasks run as other users, who search it.
  RETURN_IF_ERROR(MakeDirs(p->tmp_dir(), 0711));
  // Distinct ports (a port just released may be handed out again).
  std::set<int> ports;
  while (ports.size() < 3) {
    ASSIGN_OR_RETURN(int port, PickFreePort());
    ports.insert(port);
  }
  auto next = ports.begin();
  p->http_port_ = *next++;
  p->pg_port_ = *next++;
  if (p->o_.registry) p->registry_port_ = *next;
  p->key_file_ = p->dir_ + "/secret.key";
  std::string key = p->o_.secret_key.empty() ? NewSecretKeyBase64() : p->o_.secret_key;
  RETURN_IF_ERROR(WriteFileAtomic(p->key_file_, key + "\n", 0600));
  std::string pg = p->o_.external_dsn
                       ? "  external:\n    dsn: \"" + *p->o_.external_dsn + "\"\n"
                       : "  managed:\n    port: " + std::to_string(p->pg_port_) +
                             "\n    run_as: \"" + RunAsUser() + "\"\n    shared_buffers: 16MB\n";
  std::string tls_yaml;
  if (p->o_.tls) {
    RETURN_IF_ERROR(MakeDirs(p->dir_ + "/ca"));
    ASSIGN_OR_RETURN(tls::Pem ca, tls::CreateAuthority("tandem test CA", std::chrono::hours(24)));
    RETURN_IF_ERROR(WriteFileAtomic(p->ca_file(), ca.certificate));
    ASSIGN_OR_RETURN(tls::Pem pem, tls::IssueServerCertificate(
                                       ca, {"test-region", {"*.tandem.test"}, {"127.0.0.1"}},
                                       std::chrono::hours(24)));
    RETURN_IF_ERROR(WriteFileAtomic(p->dir_ + "/region.key", pem.private_key, 0600));
    RETURN_IF_ERROR(WriteFileAtomic(p->dir_ + "/region.crt", pem.certificate));
    tls_yaml = "tls:\n  cert_file: region.crt\n  key_file: region.key\n  ca_file: ca/ca.crt\n";
    SetTestCaFile(p->ca_file());
  } else {
    SetTestCaFile("");  // a CA an earlier test of this process set is not this one's
  }
  std::string yaml =
      "region:\n  name: test-region\n  address: 127.0.0.1\n  http_port: " +
      std::to_string(p->http_port_) + "\n  state_dir: state\npostgres:\n" + pg +
      "  connect_timeout_seconds: " + std::to_string(p->o_.connect_timeout_seconds) +
      "\nsecrets:\n  key_file: secret.key\n  owner_token_file: " + WriteOwnerTokenFile(p->dir_) +
      "\n" +
      (p->o_.registry ? "registry:\n  port: " + std::to_string(p->registry_port_) + "\n" : "") +
      tls_yaml + p->o_.extra_yaml;
  p->config_ = p->dir_ + "/region.yaml";
  RETURN_IF_ERROR(WriteFileAtomic(p->config_, yaml));
  return p;
}

std::string RegionProcess::url() const {
  return (o_.tls ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(http_port_);
}

std::string RegionProcess::registry_url() const {
  if (registry_port_ == 0) return "";
  return (o_.tls ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(registry_port_);
}

std::string RegionProcess::log() const {
  auto l = ReadFile(dir_ + "/region.log");
  return l.ok() ? *l : "";
}

Status RegionProcess::Start() {
  // SIGKILLed with the test process, even when an assertion aborts it before the destructor
  // runs; the region's own children (PostgreSQL, workers) follow it by their death signals.
  ASSIGN_OR_RETURN(child_, Child::Spawn({.argv = {TandemBin(), "region", "--config", config_},
                                         .env_extra = {{"TMPDIR", tmp_dir()}},
                                         .output_path = dir_ + "/region.log",
                                         .death_signal = SIGKILL}));
  auto deadline = std::chrono::steady_clock::now() + 120s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto e = child_->Poll()) {
      return Unavailable("region " + e->Describe() + "; log:\n" + log());
    }
    if (Call("GET", "/readyz").status == 200) return Status::Ok();
    std::this_thread::sleep_for(50ms);
  }
  return Unavailable("region not ready after 120 s; log:\n" + log());
}

CliRun RegionProcess::StartExpectingExit(int timeout_seconds) {
  auto c = Child::Spawn({.argv = {TandemBin(), "region", "--config", config_},
                         .env_extra = {{"TMPDIR", tmp_dir()}},
                         .output_path = dir_ + "/region.log",
                         .death_signal = SIGKILL});
  if (!c.ok()) return {-1, c.status().ToString()};
  child_ = std::move(c).value();
  auto e = child_->Wait(std::chrono::seconds(timeout_seconds));
  if (!e) {
    child_->Stop(SIGTERM, 30s);
    return {-1, "still running after " + std::to_string(timeout_seconds) + " s; log:\n" + log()};
  }
  child_.reset();
  return {e->exited ? e->code : 128 + e->code, log()};
}

std::string RegionProcess::Dsn() const {
  auto pw = ReadFile(dir_ + "/state/pg/pg.password");
  return "host=127.0.0.1 port=" + std::to_string(pg_port_) + " user=tandem dbname=tandem " +
         "password=" + (pw.ok() ? *pw : "");
}

std::string RegionProcess::SecretKey() const {
  auto k = ReadFile(key_file_);
  return k.ok() ? *k : "";
}

pid_t RegionProcess::PostgresPid() const {
  auto pidfile = ReadFile(dir_ + "/state/pg/data/postmaster.pid");
  return pidfile.ok() ? static_cast<pid_t>(atol(pidfile->c_str())) : 0;
}

void RegionProcess::Kill(int sig) {
  if (!child_) return;
  child_->Signal(sig);
  child_->Wait(60s);
  child_.reset();
}

void RegionProcess::Stop() {
  if (!child_) return;
  child_->Stop(SIGTERM, 60s);
  child_.reset();
}

RegionProcess::~RegionProcess() {
  Stop();
  // A postmaster outliving its region (it should not) is stopped here, by its PID.
  pid_t pg = PostgresPid();
  if (pg > 0 && ProcessAlive(pg)) {
    kill(pg, SIGQUIT);
    for (int i = 0; i < 100 && ProcessAlive(pg); ++i) std::this_thread::sleep_for(50ms);
  }
  // Likewise a registry, found by its command line (which names the region's state directory).
  if (!dir_.empty()) KillRegistries(state_dir());
  if (!dir_.empty()) (void)RemoveAll(dir_);
}

}  // namespace tandem::testing

namespace tandem::testing {

RegionProcess* SharedRegionTest::region_ = nullptr;

void SharedRegionTest::SetUpTestSuite() {
  auto r = RegionProcess::Create({});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  Status s = (*r)->Start();
  ASSERT_TRUE(s.ok()) << s.ToString();
  region_ = std::move(r).value().release();
}

void SharedRegionTest::TearDownTestSuite() {
  delete region_;
  region_ = nullptr;
}

}  // namespace tandem::testing
