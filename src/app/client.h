// The CLI's way to a region: finds the running platform through its state directory (or a
// URL given outright) and sends requests. httplib stays in client.cc.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "base/status.h"

namespace tandem::app {

struct Target {
  std::string state_dir;    // where `tandem up` wrote platform.json
  std::string url;          // overrides state_dir when set
  std::string control_url;  // the control plane; overrides platform.json's for `tandem dr`
};

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

  // kUnavailable when the region cannot be reached; any HTTP answer is a result.
  Result<HttpResult> Send(const std::string& method, const std::string& path,
                          const std::string& body = "", const Headers& headers = {}) const;
  const std::string& base_url() const { return base_; }
  void set_read_timeout_seconds(int s) { read_timeout_s_ = s; }

 private:
  std::string base_;
  int read_timeout_s_ = 60;
};

// Percent-encodes one path segment.
std::string PathEscape(const std::string& s);

// The file `tandem up` writes into its state directory while the platform runs.
std::string PlatformFile(const std::string& state_dir);

}  // namespace tandem::app
