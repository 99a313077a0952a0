// RegistryServer: a docker-registry (Debian's package of the CNCF distribution registry) that
// this process runs for a region, the way pg::LocalServer runs PostgreSQL.
//
// Layout under the state directory:
//   registry.yml   the configuration, generated at every start (0600, owned by the run-as user)
//   http.secret    the secret the registry signs upload state with, kept across restarts so an
//                  upload started before a restart can finish after it (0600)
//   data/          storage.filesystem.rootdirectory, owned by the run-as user
//   registry.log   the registry's stdout and stderr
//
// The registry listens on host:port (a region's own address), over HTTPS when given a certificate
// (copied to tls.crt / tls.key beside registry.yml, owned by the run-as user, since the
// originals may be readable by root only), with deletes disabled — nothing of the platform
// deletes an image, so nobody may — no storage health check, no redirects and warn-level logs. It
// is started with AWS_CA_BUNDLE unset (its S3 code can panic at start on a bundle it cannot use)
// and stopped by PID: SIGTERM, then SIGKILL after a bound. With a token realm it requires a
// bearer token on every request (auth.token, with the CA copied to token-ca.crt as the bundle
// tokens must chain to): docs/security.md, "Registries".
//
// Running as root: the registry does not refuse root as PostgreSQL does, but it is a network
// server that writes whatever clients upload, so it is given the region's unprivileged user too
// (`run_as`); as root without one, Start refuses (FailedPrecondition).
//
// Thread-safety: every method may be called from any thread; mu_ serialises start and stop.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "base/clock.h"
#include "base/process.h"
#include "base/status.h"
#include "tls/certificates.h"

namespace tandem::images {

struct RegistryServerOptions {
  std::string binary = "/usr/bin/docker-registry";
  std::string state_dir;  // absolute
  std::string host = "127.0.0.1";
  int port = 0;
  // The system user the registry runs as (requires root); empty = this process's user.
  std::string run_as;
  std::string log_level = "warn";
  // HTTPS: the certificate (covering `host`) and key to serve; both empty: plain HTTP. `trust`
  // is what Start's own checks of the registry trust.
  std::string tls_cert_file;
  std::string tls_key_file;
  tls::Trust trust;
  // Token auth (registry_token.h): every request needs a bearer token whose certificate chains
  // to trust.ca_file, and clients without one are sent to this realm for it. Empty: no auth.
  // REQUIRES: TLS and trust.ca_file when set (Create refuses otherwise).
  std::string token_realm;
  Duration stop_grace = std::chrono::seconds(10);  // SIGTERM, then SIGKILL
};

class RegistryServer {
 public:
  // InvalidArgument for a relative state directory or a port out of range.
  static Result<std::unique_ptr<RegistryServer>> Create(RegistryServerOptions options);
  ~RegistryServer();  // stops the registry if it runs
  RegistryServer(const RegistryServer&) = delete;
  RegistryServer& operator=(const RegistryServer&) = delete;

  // Starts the registry and waits until GET /v2/ answers. OK when it already runs.
  // FailedPrecondition when the binary is missing or the user cannot be used; Unavailable when
  // the port is taken, the registry exits, or it does not answer within `timeout` (with the
  // tail of its log).
  Status Start(Duration timeout);
  // Stops it (SIGTERM, SIGKILL after stop_grace). OK when it was not running.
  Status Stop();
  // True while the process lives and answers GET /v2/ (asked at most every kProbeEvery; in
  // between, a live process counts).
  bool Running();
  static constexpr Duration kProbeEvery = std::chrono::seconds(5);

  // "https://host:port" (http without TLS)
  std::string url() const;
  pid_t pid() const;  // 0 when not running
  std::string config_path() const { return o_.state_dir + "/registry.yml"; }
  std::string data_dir() const { return o_.state_dir + "/data"; }
  std::string log_path() const { return o_.state_dir + "/registry.log"; }

  // The configuration Start writes, for `data_dir` and `secret`.
  static std::string ConfigYaml(const RegistryServerOptions& options, const std::string& data_dir,
                                const std::string& secret);

 private:
  explicit RegistryServer(RegistryServerOptions o) : o_(std::move(o)) {}
  // REQUIRES: mu_ is held.
  Status StopLocked();
  Status PrepareLocked();
  std::string LogSince(long offset) const;

  const RegistryServerOptions o_;
  mutable std::mutex mu_;
  ChildPtr child_;              // guarded by mu_
  std::optional<UserIds> ids_;  // guarded by mu_; set when running as another user
  std::optional<MonoTime> last_answer_;  // guarded by mu_: when the running process last answered
};

using RegistryServerPtr = std::unique_ptr<RegistryServer>;

}  // namespace tandem::images
