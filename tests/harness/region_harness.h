// A real region agent for end-to-end tests: `tandem region` as a subprocess with a generated
// config in a temporary directory, on 127.0.0.1 and free ports, with its own managed
// PostgreSQL (or an external one) and a registry section on a free port of its own, so tests
// never share the default registry port. Everything it starts is stopped by PID in the
// destructor, even when the test fails.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/fs.h"
#include "base/process.h"
#include "base/status.h"

namespace tandem::testing {

// A directory `name` under `tmp` holding `files` (relative paths, parents created): a bundle to
// hand to `tandem deploy`.
std::string BundleDir(const TempDir& tmp, const std::string& name,
                      const std::map<std::string, std::string>& files);

// The API token every region and pair this process starts makes its platform's first owner
// (secrets.owner_token_file); Http() sends it, and RunCli gives it to the CLI as TANDEM_TOKEN
// unless CliSendsOwnerToken(false) said not to (a test of the CLI's own way to a credential).
const std::string& OwnerToken();
void CliSendsOwnerToken(bool on);
// A file holding OwnerToken(), under `dir` (0600); its path.
std::string WriteOwnerTokenFile(const std::string& dir);

struct HttpReply {
  int status = 0;  // 0: no answer
  std::string body;
};

// The `tandem` binary under test (from TANDEM_BIN, set by ctest).
std::string TandemBin();

// Runs `tandem ARGS...`; returns its exit code and output (stdout and stderr together).
struct CliRun {
  int exit_code = -1;
  std::string output;
};
CliRun RunCli(const std::vector<std::string>& args, int timeout_seconds = 60,
              const std::string& stdin_text = "");

// The CA that Http() trusts for an https URL when given none, and that RunCli hands the CLI
// (TANDEM_CA_FILE): a TLS pair's (PairProcess::Options::tls). "" by default.
void SetTestCaFile(const std::string& ca_file);

// One request on a connection of its own.
// `headers`: extra request headers, e.g. {{"Host", "etl-3f6c2a.tandem.test"}}.
// Sends OwnerToken() as "Authorization: Bearer" unless `headers` has an Authorization header of
// its own; one with an empty value sends none. An https `base_url`'s certificate must chain to
// `ca_file` and cover its host. Status 0 when no answer came.
HttpReply Http(const std::string& base_url, const std::string& method, const std::string& path,
               const std::string& body = "",
               const std::vector<std::pair<std::string, std::string>>& headers = {},
               const std::string& ca_file = "");

// Requests as Http() sends them, on one connection kept between them as a real client keeps
// it (over TLS a connection per request costs both sides a handshake, which a benchmark's
// clients sending every few milliseconds would otherwise add to what it measures). A new
// connection when the base URL changes and after a request got no answer. One per thread.
class HttpSession {
 public:
  explicit HttpSession(std::string ca_file = "");
  ~HttpSession();
  HttpSession(const HttpSession&) = delete;
  HttpSession& operator=(const HttpSession&) = delete;

  HttpReply Send(const std::string& base_url, const std::string& method, const std::string& path,
                 const std::string& body = "",
                 const std::vector<std::pair<std::string, std::string>>& headers = {});

 private:
  struct Connection;
  std::string ca_file_;
  std::unique_ptr<Connection> conn_;
};

// A new worker credential made through the region at `base_url` as the owner: of `deployment`'s
// workers, or ("") of a pool serving every deployment. "" when the region refused (the test's
// own assertion then fails on it).
std::string MakeWorkerCredential(const std::string& base_url, const std::string& deployment = "");

// The PIDs of the docker-registry processes whose command line names a path under
// `state_dir` (a region's registry keeps its config there).
std::vector<pid_t> RegistryPids(const std::string& state_dir);
// Stops, by PID, every docker-registry RegistryPids finds (SIGTERM, then SIGKILL): a region
// that is gone must not leave its registry holding the port.
void KillRegistries(const std::string& state_dir);
// The same for any server program whose command line names `program` and a path under
// `state_dir` (the control plane's knotd, say).
std::vector<pid_t> ServerPids(const std::string& program, const std::string& state_dir);
void KillServers(const std::string& program, const std::string& state_dir);

class RegionProcess {
 public:
  struct Options {
    std::optional<std::string> external_dsn;  // else a managed PostgreSQL
    int connect_timeout_seconds = 60;
    std::string secret_key;  // base64; generated when empty
    std::string extra_yaml;  // appended to the generated config
    bool registry = true;    // a registry section (registry.port: a free port)
    // A tls section: a CA of the test's own (ca_file()) and a certificate for 127.0.0.1; the
    // region and its registry serve HTTPS, and Http() and RunCli trust that CA (SetTestCaFile).
    bool tls = false;
  };

  // Writes the config and key; does not start anything.
  static Result<std::unique_ptr<RegionProcess>> Create(Options o);
  // Starts `tandem region` and waits for /readyz (or for the process to exit).
  Status Start();
  // Starts it and waits for it to exit on its own (for start-up failures).
  CliRun StartExpectingExit(int timeout_seconds = 60);
  ~RegionProcess();

  void Kill(int sig);  // signals the region process and reaps it
  void Stop();         // SIGTERM, then waits
  // The PID of the managed PostgreSQL's postmaster (0 if none).
  pid_t PostgresPid() const;

  HttpReply Call(const std::string& method, const std::string& path,
                 const std::string& body = "") const {
    return Http(url(), method, path, body);
  }
  std::string url() const;
  const std::string& dir() const { return dir_; }
  const std::string& config_path() const { return config_; }
  std::string log() const;
  int http_port() const { return http_port_; }
  // A connection string to the managed PostgreSQL's `tandem` database, for tests that look
  // at what is stored (as an operator could).
  std::string Dsn() const;
  std::string SecretKey() const;
  int pg_port() const { return pg_port_; }
  // 0 without a registry section.
  int registry_port() const { return registry_port_; }
  // "http://127.0.0.1:<registry port>"; empty without a registry section.
  std::string registry_url() const;
  // region.state_dir.
  std::string state_dir() const { return dir_ + "/state"; }
  std::string tmp_dir() const { return dir_ + "/tmp"; }  // the region's TMPDIR
  // With Options::tls: the CA its certificate chains to, alone in its directory.
  std::string ca_file() const { return dir_ + "/ca/ca.crt"; }

 private:
  RegionProcess() = default;
  Options o_;
  std::string dir_, config_, key_file_;
  int http_port_ = 0, pg_port_ = 0, registry_port_ = 0;
  ChildPtr child_;
};

// A suite whose tests share one region (started once per test process: ctest runs each test
// in its own process, so every test still gets a fresh region).
class SharedRegionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  void SetUp() override { ASSERT_NE(region_, nullptr) << "the region did not start"; }

  static RegionProcess* region_;
};

}  // namespace tandem::testing
