// The CLI's way to a region: finds the running platform through its state directory (or a
// URL given outright) and sends requests. httplib stays in client.cc.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"

namespace tandem::dns {
class Resolver;
}

namespace tandem::app {

struct Target {
  std::string state_dir;    // where `tandem up` wrote platform.json
  std::string url;          // overrides state_dir when set
  std::string control_url;  // the control plane; overrides platform.json's for `tandem dr`
  // "ADDRESS:PORT" of the pair's DNS server: host names in url and control_url are looked up
  // there (env TANDEM_DNS); empty: the system's resolver.
  std::string dns_server;
  // The credential sent with every request (Authorization: Bearer): --token-file's, else env
  // TANDEM_TOKEN, else the session `tandem login` kept in <state_dir>/session, else the
  // platform owner's that `tandem up` wrote to <state_dir>/credential.
  std::string token_file;
  // The CA an https URL's certificate must chain to: --ca-file's (env TANDEM_CA_FILE), else
  // <state_dir>/tls/ca.crt when it exists, else the system's CAs.
  std::string ca_file;
};

// The CA file `target` names (see Target::ca_file), "" for the system's CAs; NotFound when one
// named outright does not exist.
Result<std::string> ResolveCaFile(const Target& target);
// Where `tandem up` keeps the platform's CA certificate (and, beside it, its key and the
// servers' certificates).
std::string CaFile(const std::string& state_dir);

// The credential `target` names (see Target::token_file), or "" when there is none; an error
// when a file named outright cannot be read.
Result<std::string> ResolveToken(const Target& target);

// Where `tandem up` keeps the platform owner's API token (mode 0600).
std::string CredentialFile(const std::string& state_dir);
// Where `tandem login` keeps the user's session token (mode 0600).
std::string SessionFile(const std::string& state_dir);

// Extra request headers, e.g. {{"Accept", "text/plain"}}.
using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpResult {
  int status = 0;
  std::string body;
};

class Client {
 public:
  // Resolves the region URL: `target.url`, else the active region of the platform in
  // platform.json (asking its control plane which one that is, since a failover changes it).
  static Result<Client> Connect(const Target& target);
  // The control plane: `target.control_url`, else the one in platform.json.
  static Result<Client> ConnectControl(const Target& target);
  explicit Client(std::string base_url) : base_(std::move(base_url)) {}
  // With a resolver, a host name in `base_url` is looked up through it: a request that cannot
  // connect, or is answered 421 or 503 (a failover moved the name or is under way), looks the
  // name up again and is retried with backoff for up to 30 s.
  Client(std::string base_url, std::shared_ptr<dns::Resolver> resolver)
      : base_(std::move(base_url)), resolver_(std::move(resolver)) {}
  // Sends `token` as "Authorization: Bearer" with every request ("" sends none).
  void set_token(std::string token) { token_ = std::move(token); }
  // An https server's certificate must chain to this CA file ("" for the system's CAs).
  void set_ca_file(std::string ca_file) { ca_file_ = std::move(ca_file); }

  // kUnavailable when the region cannot be reached; any HTTP answer is a result.
  Result<HttpResult> Send(const std::string& method, const std::string& path,
                          const std::string& body = "", const Headers& headers = {}) const;
  const std::string& base_url() const { return base_; }
  void set_read_timeout_seconds(int s) { read_timeout_s_ = s; }

 private:
  Result<HttpResult> SendOnce(const std::string& method, const std::string& path,
                              const std::string& body, const Headers& headers,
                              const std::string& address, bool* connected) const;

  std::string base_;
  std::shared_ptr<dns::Resolver> resolver_;
  std::string token_;
  std::string ca_file_;
  int read_timeout_s_ = 60;
};

// Percent-encodes one path segment.
std::string PathEscape(const std::string& s);

// The file `tandem up` writes into its state directory while the platform runs.
std::string PlatformFile(const std::string& state_dir);

}  // namespace tandem::app
