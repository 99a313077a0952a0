#include "images/registry_client.h"

#include <httplib.h>

#include <charconv>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>

#include "base/text.h"
#include "images/digest.h"
#include "images/registry_token.h"
#include "tls/http_client.h"

namespace tandem::images {
namespace {

constexpr size_t kMaxErrorBody = size_t{64} * 1024;

struct Endpoint {
  bool https = false;
  std::string host;
  int port = 80;
};

// "http://host[:port]" or "https://..." followed by an optional path: the endpoint, and the path
// (with any query) in `*rest`.
Result<Endpoint> ParseHttpUrl(std::string_view url, std::string* rest) {
  Endpoint ep;
  std::string_view hostport;
  if (url.starts_with("http://")) {
    hostport = url.substr(7);
  } else if (url.starts_with("https://")) {
    hostport = url.substr(8);
    ep.https = true;
    ep.port = 443;
  } else {
    return InvalidArgument("registry URL must start with http:// or https:// (got \"" +
                           std::string(url.substr(0, 100)) + "\")");
  }
  size_t slash = hostport.find('/');
  *rest = slash == std::string_view::npos ? "" : std::string(hostport.substr(slash));
  hostport = hostport.substr(0, slash);
  size_t colon = hostport.rfind(':');
  ep.host = std::string(hostport.substr(0, colon));
  if (colon != std::string_view::npos) {
    std::string_view p = hostport.substr(colon + 1);
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), ep.port);
    if (ec != std::errc() || end != p.data() + p.size() || ep.port <= 0 || ep.port > 65535) {
      return InvalidArgument("bad port in registry URL \"" + std::string(url) + "\"");
    }
  }
  if (ep.host.empty() || ep.host.find_first_of("[]@ ") != std::string::npos) {
    return InvalidArgument("bad host in registry URL \"" + std::string(url) + "\"");
  }
  return ep;
}

std::string Limit(std::string s, size_t n) {
  if (s.size() > n) s = s.substr(0, n) + "...";
  return s;
}

// The Status code for a registry's error code (the spec's list), or else its HTTP status.
Code CodeOf(const std::string& code_name, int status) {
  static const std::map<std::string, Code, std::less<>> kCodes = {
      {"BLOB_UNKNOWN", Code::kNotFound},
      {"MANIFEST_UNKNOWN", Code::kNotFound},
      {"NAME_UNKNOWN", Code::kNotFound},
      {"BLOB_UPLOAD_UNKNOWN", Code::kNotFound},
      {"MANIFEST_BLOB_UNKNOWN", Code::kFailedPrecondition},
      {"DIGEST_INVALID", Code::kInvalidArgument},
      {"SIZE_INVALID", Code::kInvalidArgument},
      {"NAME_INVALID", Code::kInvalidArgument},
      {"TAG_INVALID", Code::kInvalidArgument},
      {"MANIFEST_INVALID", Code::kInvalidArgument},
      {"MANIFEST_UNVERIFIED", Code::kInvalidArgument},
      {"BLOB_UPLOAD_INVALID", Code::kInvalidArgument},
      {"UNSUPPORTED", Code::kInvalidArgument},
      {"UNAUTHORIZED", Code::kUnauthenticated},
      {"DENIED", Code::kPermissionDenied},
      {"TOOMANYREQUESTS", Code::kUnavailable},
  };
  if (auto it = kCodes.find(code_name); it != kCodes.end()) return it->second;
  if (status == 429 || status >= 500) return Code::kUnavailable;
  switch (status) {
    case 404:
      return Code::kNotFound;
    case 401:
      return Code::kUnauthenticated;
    case 403:
      return Code::kPermissionDenied;
    default:
      return Code::kInternal;
  }
}

// The error an HTTP answer stands for, from the registry's JSON error body when it sent one
// ({"errors":[{"code":"BLOB_UNKNOWN","message":"...","detail":...}]}).
Status AnswerError(const std::string& where, const std::string& method, int status,
                   const std::string& body) {
  std::string code_name, text;
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("errors") && j["errors"].is_array() && !j["errors"].empty()) {
    const auto& e = j["errors"][0];
    if (e.is_object()) {
      if (e.contains("code") && e["code"].is_string()) code_name = e["code"].get<std::string>();
      if (e.contains("message") && e["message"].is_string()) {
        text = e["message"].get<std::string>();
      }
      if (e.contains("detail") && !e["detail"].is_null()) {
        const auto& d = e["detail"];
        text += " (" + Limit(d.is_string() ? d.get<std::string>() : d.dump(), 300) + ")";
      }
    }
  } else if (!body.empty()) {
    text = Limit(body, 300);
  }
  Code code = CodeOf(code_name, status);
  std::string msg = where + ": " + method + " answered HTTP " + std::to_string(status);
  if (!code_name.empty()) msg += " " + code_name;
  if (!text.empty()) msg += ": " + text;
  return {code, msg};
}

Status TransportError(const std::string& where, const std::string& method,
                      const httplib::Client& cli, httplib::Error error, const tls::Trust& trust) {
  return Unavailable(where + ": " + method + " failed: " + tls::DescribeError(cli, error, trust));
}

std::optional<int64_t> ParseLength(const std::string& s) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < 0) return std::nullopt;
  return v;
}

std::string ManifestAccept() {
  return std::string(kOciManifestType) + ", " + kDockerManifestType + ", " + kOciIndexType + ", " +
         kDockerManifestListType;
}

class HttpRegistry final : public Registry {
 public:
  HttpRegistry(RegistryClientOptions o, Endpoint ep) : o_(std::move(o)), ep_(std::move(ep)) {
    while (!o_.url.empty() && o_.url.back() == '/') o_.url.pop_back();
  }

  const std::string& address() const override { return o_.url; }

  Status Ping() override {
    const std::string where = "registry " + o_.url;
    ASSIGN_OR_RETURN(auto cli, Connect(ep_, ""));
    auto r = cli->Get("/v2/");
    if (!r) return TransportError(where, "GET /v2/", *cli, r.error(), o_.trust);
    if (r->status == 200) return Status::Ok();
    return AnswerError(where, "GET /v2/", r->status, r->body);
  }

  Result<std::optional<int64_t>> StatBlob(const std::string& repository,
                                          const std::string& digest) override {
    RETURN_IF_ERROR(CheckNames(repository, digest));
    const std::string where = Where(repository, "blob " + digest);
    ASSIGN_OR_RETURN(auto cli, Connect(ep_, RegistryScope(repository, false)));
    cli->set_follow_location(true);
    auto r = cli->Head(BlobPath(repository, digest));
    if (!r) return TransportError(where, "HEAD", *cli, r.error(), o_.trust);
    if (r->status == 404) return std::optional<int64_t>();
    if (r->status != 200) return AnswerError(where, "HEAD", r->status, "");
    std::string header_digest = r->get_header_value("Docker-Content-Digest");
    if (!header_digest.empty() && header_digest != digest) {
      return Internal(where + ": HEAD answered for another digest, " + header_digest);
    }
    auto size = ParseLength(r->get_header_value("Content-Length"));
    if (!size) return Internal(where + ": HEAD answered without a valid Content-Length");
    return std::optional<int64_t>(*size);
  }

  Status PutBlob(const std::string& repository, const std::string& digest,
                 std::string_view data) override {
    RETURN_IF_ERROR(CheckNames(repository, digest));
    const std::string where = Where(repository, "blob " + digest);
    const std::string scope = RegistryScope(repository, true);
    ASSIGN_OR_RETURN(auto cli, Connect(ep_, scope));
    const std::string start = "/v2/" + repository + "/blobs/uploads/";
    auto r = cli->Post(start, httplib::Headers{}, "", 0, "application/octet-stream");
    if (!r) return TransportError(where, "POST " + start, *cli, r.error(), o_.trust);
    if (r->status != 202) return AnswerError(where, "POST " + start, r->status, r->body);
    std::string location = r->get_header_value("Location");
    if (location.empty()) return Internal(where + ": the upload was started without a Location");

    // The Location is where this upload continues: a path on this registry, or a URL that may
    // name another host. Either may carry the registry's own query parameters already.
    Endpoint ep = ep_;
    std::string target = location;
    if (location.starts_with("http://") || location.starts_with("https://")) {
      auto parsed = ParseHttpUrl(location, &target);
      if (!parsed.ok())
        return Internal(where + ": unusable upload Location " + Limit(location, 200));
      ep = *parsed;
    } else if (location.front() != '/') {
      return Internal(where + ": unusable upload Location " + Limit(location, 200));
    }
    if (target.empty()) target = "/";
    target += target.find('?') == std::string::npos ? '?' : '&';
    target += "digest=" + PercentEncode(digest);
    std::unique_ptr<httplib::Client> up;
    if (ep.host == ep_.host && ep.port == ep_.port && ep.https == ep_.https) {
      up = std::move(cli);
    } else {
      ASSIGN_OR_RETURN(up, Connect(ep, scope));
    }
    auto p =
        up->Put(target, httplib::Headers{}, data.data(), data.size(), "application/octet-stream");
    if (!p)
      return TransportError(where, "PUT (upload of " + std::to_string(data.size()) + " bytes)", *up,
                            p.error(), o_.trust);
    if (p->status != 201 && p->status != 204) {
      return AnswerError(where, "PUT (upload)", p->status, p->body);
    }
    std::string header_digest = p->get_header_value("Docker-Content-Digest");
    if (!header_digest.empty() && header_digest != digest) {
      return Internal(where + ": the registry stored the upload as " + header_digest);
    }
    return Status::Ok();
  }

  Result<std::string> GetBlob(const std::string& repository, const std::string& digest,
                              int64_t max_bytes) override {
    RETURN_IF_ERROR(CheckNames(repository, digest));
    const std::string where = Where(repository, "blob " + digest);
    ASSIGN_OR_RETURN(auto cli, Connect(ep_, RegistryScope(repository, false)));
    cli->set_follow_location(true);
    Sha256Digester hasher;
    std::string data, error_body, header_digest;
    int status = 0;
    Status refused;
    auto r = cli->Get(
        BlobPath(repository, digest), httplib::Headers{},
        [&](const httplib::Response& res) {
          status = res.status;
          if (status != 200) return true;
          header_digest = res.get_header_value("Docker-Content-Digest");
          if (res.has_header("Content-Length")) {
            auto len = ParseLength(res.get_header_value("Content-Length"));
            if (len && *len > max_bytes) {
              refused = TooLarge(where + ": the registry sends " + std::to_string(*len) +
                                 " bytes; at most " + std::to_string(max_bytes) + " expected");
              return false;
            }
            if (len) data.reserve(static_cast<size_t>(*len));
          }
          return true;
        },
        [&](const char* buf, size_t n) {
          if (status != 200) {
            if (error_body.size() < kMaxErrorBody) error_body.append(buf, n);
            return true;
          }
          if (static_cast<int64_t>(data.size() + n) > max_bytes) {
            refused = TooLarge(where + ": more than the " + std::to_string(max_bytes) +
                               " bytes expected");
            return false;
          }
          hasher.Update(std::string_view(buf, n));
          data.append(buf, n);
          return true;
        });
    if (!refused.ok()) return refused;
    if (!r) return TransportError(where, "GET", *cli, r.error(), o_.trust);
    if (r->status != 200) return AnswerError(where, "GET", r->status, error_body);
    std::string actual = hasher.Finish();
    if (actual != digest) {
      return Internal(where + ": content digest mismatch: asked for " + digest + ", received " +
                      std::to_string(data.size()) + " bytes with digest " + actual);
    }
    if (!header_digest.empty() && header_digest != digest) {
      return Internal(where + ": content digest mismatch: asked for " + digest +
                      ", the registry says it sent " + header_digest);
    }
    return data;
  }

  Result<std::string> PutManifest(const std::string& repository, const std::string& reference,
                                  const std::string& media_type, std::string_view bytes) override {
    RETURN_IF_ERROR(CheckNames(repository, reference));
    const std::string where = Where(repository, "manifest " + reference);
    std::string digest = DigestOf(bytes);
    if (IsDigestReference(reference) && reference != digest) {
      return InvalidArgument(where + ": the manifest's digest is " + digest);
    }
    ASSIGN_OR_RETURN(auto cli, Connect(ep_, RegistryScope(repository, true)));
    auto r = cli->Put(ManifestPath(repository, reference), httplib::Headers{}, bytes.data(),
                      bytes.size(), media_type.c_str());
    if (!r) return TransportError(where, "PUT", *cli, r.error(), o_.trust);
    if (r->status != 201 && r->status != 200) {
      return AnswerError(where, "PUT", r->status, r->body);
    }
    std::string header_digest = r->get_header_value("Docker-Content-Digest");
    if (!header_digest.empty() && header_digest != digest) {
      return Internal(where + ": the registry stored the manifest as " + header_digest + ", not " +
                      digest);
    }
    return digest;
  }

  Result<ManifestData> GetManifest(const std::string& repository,
                                   const std::string& reference) override {
    RETURN_IF_ERROR(CheckNames(repository, reference));
    const std::string where = Where(repository, "manifest " + reference);
    ASSIGN_OR_RETURN(auto cli, Connect(ep_, RegistryScope(repository, false)));
    cli->set_follow_location(true);
    std::string body;
    bool too_large = false;
    auto r = cli->Get(ManifestPath(repository, reference), {{"Accept", ManifestAccept()}},
                      [&](const char* buf, size_t n) {
                        if (static_cast<int64_t>(body.size() + n) > o_.max_manifest_bytes) {
                          too_large = true;
                          return false;
                        }
                        body.append(buf, n);
                        return true;
                      });
    if (too_large) {
      return TooLarge(where + ": larger than " + std::to_string(o_.max_manifest_bytes) + " bytes");
    }
    if (!r) return TransportError(where, "GET", *cli, r.error(), o_.trust);
    if (r->status != 200) return AnswerError(where, "GET", r->status, body);
    ManifestData m;
    m.media_type = r->get_header_value("Content-Type");
    if (size_t semi = m.media_type.find(';'); semi != std::string::npos) {
      m.media_type.resize(semi);
    }
    m.digest = DigestOf(body);
    m.bytes = std::move(body);
    if (IsDigestReference(reference) && m.digest != reference) {
      return Internal(where + ": content digest mismatch: asked for " + reference +
                      ", received a manifest with digest " + m.digest);
    }
    std::string header_digest = r->get_header_value("Docker-Content-Digest");
    if (!header_digest.empty() && header_digest != m.digest) {
      return Internal(where + ": content digest mismatch: the registry says " + header_digest +
                      ", the manifest it sent has digest " + m.digest);
    }
    return m;
  }

  Result<std::optional<std::string>> StatManifest(const std::string& repository,
                                                  const std::string& reference) override {
    RETURN_IF_ERROR(CheckNames(repository, reference));
    const std::string where = Where(repository, "manifest " + reference);
    ASSIGN_OR_RETURN(auto cli, Connect(ep_, RegistryScope(repository, false)));
    cli->set_follow_location(true);
    auto r = cli->Head(ManifestPath(repository, reference), {{"Accept", ManifestAccept()}});
    if (!r) return TransportError(where, "HEAD", *cli, r.error(), o_.trust);
    if (r->status == 404) return std::optional<std::string>();
    if (r->status != 200) return AnswerError(where, "HEAD", r->status, "");
    std::string digest = r->get_header_value("Docker-Content-Digest");
    if (digest.empty()) {
      // Optional in the spec: read the manifest and compute it.
      ASSIGN_OR_RETURN(ManifestData m, GetManifest(repository, reference));
      return std::optional<std::string>(m.digest);
    }
    if (!ValidateDigest(digest).ok()) {
      return Internal(where + ": HEAD answered an invalid digest " + Limit(digest, 100));
    }
    if (IsDigestReference(reference) && digest != reference) {
      return Internal(where + ": HEAD answered for another digest, " + digest);
    }
    return std::optional<std::string>(digest);
  }

 private:
  // A client for `ep`, carrying a token for `scope` when the registry wants tokens.
  Result<std::unique_ptr<httplib::Client>> Connect(const Endpoint& ep,
                                                   const std::string& scope) const {
    auto cli = tls::NewHttpClient(ep.https, ep.host, ep.port, o_.trust);
    if (o_.token) {
      ASSIGN_OR_RETURN(std::string token, TokenFor(scope));
      cli->set_bearer_token_auth(token);
    }
    auto split = [](Duration d) {
      auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
      return std::pair<time_t, time_t>(static_cast<time_t>(us / 1000000),
                                       static_cast<time_t>(us % 1000000));
    };
    auto [cs, cus] = split(o_.connect_timeout);
    auto [is, ius] = split(o_.io_timeout);
    cli->set_connection_timeout(cs, cus);
    cli->set_read_timeout(is, ius);
    cli->set_write_timeout(is, ius);
    cli->set_keep_alive(false);
    // Paths are built from validated names and the registry's own Location: sent as they are.
    cli->set_url_encode(false);
    cli->set_default_headers({{"User-Agent", "tandem"}});
    return cli;
  }

  Result<std::string> TokenFor(const std::string& scope) const {
    const MonoTime now = RealClock().Now();
    {
      std::lock_guard lock(tokens_mu_);
      auto it = tokens_.find(scope);
      if (it != tokens_.end() && now < it->second.second) return it->second.first;
    }
    auto token = o_.token(scope);
    if (!token.ok()) {
      return Status(token.status().code(), "registry " + o_.url + ": no token for " +
                                               (scope.empty() ? "the registry" : scope) + ": " +
                                               token.status().message());
    }
    std::lock_guard lock(tokens_mu_);
    tokens_[scope] = {*token, now + std::chrono::minutes(1)};
    return *token;
  }

  std::string Where(const std::string& repository, const std::string& what) const {
    return "registry " + o_.url + ", repository " + repository + ", " + what;
  }

  static Status CheckNames(const std::string& repository, const std::string& reference) {
    RETURN_IF_ERROR(ValidateRepository(repository));
    return ValidateReference(reference);
  }

  static std::string BlobPath(const std::string& repository, const std::string& digest) {
    return "/v2/" + repository + "/blobs/" + digest;
  }
  static std::string ManifestPath(const std::string& repository, const std::string& reference) {
    return "/v2/" + repository + "/manifests/" + reference;
  }

  RegistryClientOptions o_;  // constant after construction
  const Endpoint ep_;
  mutable std::mutex tokens_mu_;
  // scope -> (token, reused until)
  mutable std::map<std::string, std::pair<std::string, MonoTime>> tokens_;
};

}  // namespace

Result<RegistryPtr> NewRegistryClient(RegistryClientOptions options) {
  std::string rest;
  ASSIGN_OR_RETURN(Endpoint ep, ParseHttpUrl(options.url, &rest));
  if (!rest.empty() && rest != "/") {
    return InvalidArgument("registry URL must not have a path: \"" + options.url + "\"");
  }
  return RegistryPtr(new HttpRegistry(std::move(options), std::move(ep)));
}

}  // namespace tandem::images
