#include "region/yaml_util.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <limits>
#include <utility>

#include "base/fs.h"
#include "base/text.h"

namespace tandem::region::yaml_util {
namespace {

namespace fs = std::filesystem;

constexpr int kMaxPort = 65535;
constexpr int kMaxPgConnections = 262143;  // PostgreSQL's own upper bound
constexpr int64_t kMinValueBytes = 1024;
constexpr int64_t kMaxValueBytes = int64_t{64} * 1024 * 1024;
constexpr std::string_view kLogLevels[] = {"trace", "debug", "info", "warn", "error"};
constexpr std::string_view kDirectoryBackend = "directory";
constexpr std::string_view kS3Backend = "s3";
constexpr int64_t kMinSpoolBytes = int64_t{1} << 20;  // 1 MiB
constexpr int64_t kMaxSpoolBytes = int64_t{1} << 40;  // 1 TiB
constexpr int64_t kMinChunkBytes = 1024;
constexpr int64_t kMaxChunkBytes = int64_t{16} << 20;  // 16 MiB

// `s` in double quotes for a message, escaped and cut short when long.
std::string Quote(std::string_view s) {
  constexpr size_t kMaxShown = 80;
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < kMaxShown; ++i) {
    char ch = s[i];
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (ch == '\n') {
      out += "\\n";
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      out += '?';
    } else {
      out += ch;
    }
  }
  if (s.size() > kMaxShown) out += "...";
  return out + "\"";
}

bool IsIpv4(const std::string& s) {
  in_addr addr;
  return inet_pton(AF_INET, s.c_str(), &addr) == 1;
}

// A PostgreSQL memory size as written to postgresql.conf: digits, then an optional unit. Kept
// strict because the value is written into a quoted setting.
bool IsPgMemorySize(std::string_view s) {
  size_t digits = 0;
  while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
  if (digits == 0) return false;
  std::string_view unit = s.substr(digits);
  return unit.empty() || unit == "B" || unit == "kB" || unit == "MB" || unit == "GB" ||
         unit == "TB";
}

// Standard base64 alphabet, with at most two '=' of padding at the end.
bool IsBase64(std::string_view s) {
  if (s.empty()) return false;
  size_t pad = 0;
  while (pad < 2 && pad < s.size() && s[s.size() - 1 - pad] == '=') ++pad;
  for (char ch : s.substr(0, s.size() - pad)) {
    bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '+' || ch == '/';
    if (!ok) return false;
  }
  return s.size() > pad;
}

// Lowercase labels of letters, digits and '-' (not at either end of a label, at most 63 each)
// separated by dots, at most 200 characters.
bool IsDnsName(std::string_view name) {
  bool ok = !name.empty() && name.size() <= 200 && name.front() != '.' && name.back() != '.';
  size_t label = 0;
  for (size_t i = 0; ok && i < name.size(); ++i) {
    char ch = name[i];
    if (ch == '.') {
      ok = label > 0 && name[i - 1] != '-';
      label = 0;
      continue;
    }
    ok = (islower(static_cast<unsigned char>(ch)) || isdigit(static_cast<unsigned char>(ch)) ||
          (ch == '-' && label > 0)) &&
         ++label <= 63;
  }
  return ok && name.back() != '-';
}

bool IsLowerOrDigit(char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'); }

// 1 to 65535 in decimal digits.
bool IsPortNumber(std::string_view s) {
  if (s.empty() || s.size() > 5) return false;
  unsigned port = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), port);
  return ec == std::errc() && end == s.data() + s.size() && port >= 1 &&
         port <= static_cast<unsigned>(kMaxPort);
}

// "http://" or "https://", then a DNS name (as IsDnsName, in either case) or dotted IPv4 address
// or a bracketed IPv6 address, then an optional ":port"; nothing else (no user, path, query or
// fragment).
bool IsEndpoint(std::string_view s) {
  std::string_view rest;
  if (s.starts_with("http://")) {
    rest = s.substr(7);
  } else if (s.starts_with("https://")) {
    rest = s.substr(8);
  } else {
    return false;
  }
  std::string_view host = rest;
  std::string_view after_host;
  if (rest.starts_with('[')) {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) return false;
    host = rest.substr(1, close - 1);
    after_host = rest.substr(close + 1);
    in6_addr addr;
    if (inet_pton(AF_INET6, std::string(host).c_str(), &addr) != 1) return false;
  } else {
    size_t colon = rest.find(':');
    host = rest.substr(0, colon);
    after_host = colon == std::string_view::npos ? "" : rest.substr(colon);
    std::string lower(host);
    for (char& ch : lower) ch = static_cast<char>(tolower(static_cast<unsigned char>(ch)));
    if (!IsDnsName(lower)) return false;
  }
  if (after_host.empty()) return true;
  return after_host[0] == ':' && IsPortNumber(after_host.substr(1));
}

// S3's bucket naming rules: 3 to 63 lowercase letters, digits, '.' or '-', starting and ending
// with a letter or digit.
bool IsBucketName(std::string_view s) {
  if (s.size() < 3 || s.size() > 63) return false;
  for (char ch : s) {
    if (!IsLowerOrDigit(ch) && ch != '.' && ch != '-') return false;
  }
  return IsLowerOrDigit(s.front()) && IsLowerOrDigit(s.back());
}

// An S3 region as it appears in a SigV4 credential scope: 1 to 63 lowercase letters, digits or
// '-'.
bool IsS3Region(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  return std::all_of(s.begin(), s.end(), [](char ch) { return IsLowerOrDigit(ch) || ch == '-'; });
}

// "" or a key prefix that does not start with '/' and ends with '/'.
bool IsKeyPrefix(std::string_view s) { return s.empty() || (s.front() != '/' && s.back() == '/'); }

// Printable ASCII other than space: an access key id goes into an Authorization header as is.
bool IsAccessKeyId(std::string_view s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](char ch) { return ch > ' ' && ch < 127; });
}

// The text of scalar `e` when `valid` accepts it; else an error saying `rule`.
Result<std::string> Checked(const Reader& r, const Entry& e, const std::string& rule,
                            bool (*valid)(std::string_view)) {
  ASSIGN_OR_RETURN(std::string s, r.Scalar(e, rule));
  if (!valid(s)) return r.Invalid(e, rule);
  return s;
}

Result<S3Settings> ReadS3(const Reader& r, const Entry& section) {
  ASSIGN_OR_RETURN(Map m,
                   r.ReadMap(section, {"endpoint", "bucket", "region", "prefix", "access_key_id",
                                       "secret_access_key_file", "secret_access_key"}));
  S3Settings s3;
  ASSIGN_OR_RETURN(const Entry* endpoint, r.Required(m, section, "endpoint"));
  ASSIGN_OR_RETURN(s3.endpoint,
                   Checked(r, *endpoint,
                           "an http:// or https:// URL of a host and an optional port, with no "
                           "path, query or user (such as http://127.0.0.1:9000)",
                           IsEndpoint));
  ASSIGN_OR_RETURN(const Entry* bucket, r.Required(m, section, "bucket"));
  ASSIGN_OR_RETURN(s3.bucket, Checked(r, *bucket,
                                      "a bucket name of 3 to 63 lowercase letters, digits, '.' or "
                                      "'-', starting and ending with a letter or digit",
                                      IsBucketName));
  if (const Entry* e = m.Find("region")) {
    ASSIGN_OR_RETURN(
        s3.region,
        Checked(r, *e, "a region name of 1 to 63 lowercase letters, digits or '-'", IsS3Region));
  }
  if (const Entry* e = m.Find("prefix")) {
    ASSIGN_OR_RETURN(s3.prefix,
                     Checked(r, *e, "\"\" or a key prefix ending in '/' and not starting with '/'",
                             IsKeyPrefix));
  }
  ASSIGN_OR_RETURN(const Entry* key_id, r.Required(m, section, "access_key_id"));
  ASSIGN_OR_RETURN(s3.access_key_id,
                   Checked(r, *key_id, "a non-empty string of printable characters without spaces",
                           IsAccessKeyId));

  const Entry* file_entry = m.Find("secret_access_key_file");
  const Entry* key_entry = m.Find("secret_access_key");
  if ((file_entry == nullptr) == (key_entry == nullptr)) {
    return r.Error(
        section.key_node.Mark(),
        section.key + ": exactly one of secret_access_key_file or secret_access_key is required");
  }
  if (file_entry != nullptr) {
    ASSIGN_OR_RETURN(s3.secret_access_key_file, r.Path(*file_entry));
  } else {
    // Only an empty or non-scalar value is ever described, so the key is never echoed.
    ASSIGN_OR_RETURN(s3.secret_access_key, r.NonEmpty(*key_entry));
  }
  return s3;
}

}  // namespace

std::string Describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Scalar:
      return Quote(n.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Null:
      return "an empty value";
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

bool IsRegionName(std::string_view s) {
  if (s.empty() || s.size() > 31 || s[0] < 'a' || s[0] > 'z') return false;
  for (char ch : s) {
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-')) return false;
  }
  return true;
}

Reader::Reader(const std::string& path)
    : file_(path.empty() ? "<config>" : path),
      base_dir_(path.empty() ? AbsolutePath(".")
                             : fs::path(AbsolutePath(path)).parent_path().string()) {}

Result<YAML::Node> Reader::Load(const std::string& yaml_text) const {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(yaml_text);
  } catch (const YAML::Exception& e) {
    return Error(e.mark, "YAML syntax error: " + e.msg);
  }
  if (docs.size() > 1) {
    return Error(docs[1].Mark(),
                 "expected one YAML document, found " + std::to_string(docs.size()));
  }
  // An empty file is an empty map: the missing required sections are reported.
  if (docs.empty() || docs[0].IsNull()) return YAML::Node(YAML::NodeType::Map);
  return docs[0];
}

Status Reader::Error(const YAML::Mark& at, const std::string& text) const {
  if (at.is_null() || at.line < 0) return InvalidArgument(file_ + ": " + text);
  return InvalidArgument(file_ + ":" + std::to_string(at.line + 1) + ": " + text);
}

Status Reader::Missing(const std::string& key) const {
  return InvalidArgument(file_ + ": " + key + " is required");
}

Status Reader::Invalid(const Entry& e, const std::string& expected) const {
  return Error(e.key_node.Mark(), e.key + ": expected " + expected + ", got " + Describe(e.value));
}

Result<Map> Reader::ReadMap(const Entry& e, std::initializer_list<std::string_view> allowed) const {
  const bool top = e.key.empty();
  if (!e.value.IsMap()) {
    if (top) {
      std::string sections;
      size_t shown = 0;
      for (std::string_view a : allowed) {
        if (shown == 3) {
          sections += ", ...";
          break;
        }
        sections += (shown++ == 0 ? "" : ", ") + std::string(a);
      }
      return Error(e.value.Mark(),
                   "expected a map of sections (" + sections + "), got " + Describe(e.value));
    }
    return Invalid(e, "a map");
  }
  Map m;
  for (auto it = e.value.begin(); it != e.value.end(); ++it) {
    const YAML::Node k = it->first;  // a copy: `it->` yields a temporary proxy
    if (!k.IsScalar()) {
      return Error(k.Mark(), (top ? "" : e.key + ": ") + "expected a key name, got " + Describe(k));
    }
    Entry child{.name = k.Scalar(),
                .key = top ? k.Scalar() : e.key + "." + k.Scalar(),
                .key_node = k,
                .value = it->second};
    bool known = false;
    for (std::string_view a : allowed) known = known || a == child.name;
    if (!known) return Error(k.Mark(), "unknown key " + child.key);
    if (m.Find(child.name) != nullptr) return Error(k.Mark(), "duplicate key " + child.key);
    m.entries.push_back(std::move(child));
  }
  return m;
}

Result<const Entry*> Reader::Required(const Map& m, const Entry& parent,
                                      std::string_view name) const {
  const Entry* e = m.Find(name);
  if (e == nullptr) {
    return Missing(parent.key.empty() ? std::string(name) : parent.key + "." + std::string(name));
  }
  return e;
}

Entry Reader::Item(const Entry& list, size_t i) {
  YAML::Node item = list.value[i];
  return Entry{.name = list.name,
               .key = list.key + "[" + std::to_string(i) + "]",
               .key_node = item,
               .value = item};
}

Result<std::string> Reader::Scalar(const Entry& e, const std::string& expected) const {
  if (!e.value.IsScalar()) return Invalid(e, expected);
  return e.value.Scalar();
}

Result<std::string> Reader::NonEmpty(const Entry& e) const {
  ASSIGN_OR_RETURN(std::string s, Scalar(e, "a non-empty string"));
  if (s.empty()) return Invalid(e, "a non-empty string");
  return s;
}

Result<std::string> Reader::Path(const Entry& e) const {
  ASSIGN_OR_RETURN(std::string s, Scalar(e, "a non-empty path"));
  if (s.empty()) return Invalid(e, "a non-empty path");
  std::string abs = AbsolutePath(s[0] == '/' ? s : (fs::path(base_dir_) / s).string());
  while (abs.size() > 1 && abs.back() == '/') abs.pop_back();
  return abs;
}

Result<std::string> Reader::Ipv4(const Entry& e) const {
  ASSIGN_OR_RETURN(std::string s, Scalar(e, "a dotted IPv4 address"));
  if (!IsIpv4(s)) return Invalid(e, "a dotted IPv4 address");
  return s;
}

Result<std::string> Reader::Name(const Entry& e) const {
  static const std::string kNameRule =
      "a name of 1 to 31 characters: a lowercase letter, then lowercase letters, digits or '-'";
  ASSIGN_OR_RETURN(std::string s, Scalar(e, kNameRule));
  if (!IsRegionName(s)) return Invalid(e, kNameRule);
  return s;
}

Result<std::string> Reader::OneOf(const Entry& e,
                                  std::initializer_list<std::string_view> values) const {
  // "one of a, b, c", or "a or b" for two.
  std::string rule = values.size() == 2 ? "" : "one of ";
  size_t i = 0;
  for (std::string_view v : values) {
    if (i > 0) rule += values.size() == 2 ? " or " : ", ";
    rule += v;
    ++i;
  }
  ASSIGN_OR_RETURN(std::string s, Scalar(e, rule));
  for (std::string_view v : values) {
    if (v == s) return s;
  }
  return Invalid(e, rule);
}

Result<bool> Reader::Bool(const Entry& e) const {
  ASSIGN_OR_RETURN(std::string s, Scalar(e, "true or false"));
  if (s == "true") return true;
  if (s == "false") return false;
  return Invalid(e, "true or false");
}

Result<int64_t> Reader::Int64(const Entry& e, int64_t min, int64_t max) const {
  if (e.value.IsScalar()) {
    const std::string& s = e.value.Scalar();
    int64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc() && end == s.data() + s.size() && v >= min && v <= max) return v;
  }
  if (max == std::numeric_limits<int64_t>::max() || max == std::numeric_limits<int>::max()) {
    return Invalid(e, "an integer of at least " + std::to_string(min));
  }
  return Invalid(e, "an integer from " + std::to_string(min) + " to " + std::to_string(max));
}

Result<int> Reader::Int(const Entry& e, int min, int max) const {
  ASSIGN_OR_RETURN(int64_t v, Int64(e, min, max));
  return static_cast<int>(v);
}

Status ReadSecrets(const Reader& r, const Entry& section, std::string& key_file, std::string& key,
                   std::string& owner_token_file) {
  ASSIGN_OR_RETURN(Map m, r.ReadMap(section, {"key_file", "key", "owner_token_file"}));
  if (const Entry* owner = m.Find("owner_token_file"); owner != nullptr) {
    ASSIGN_OR_RETURN(owner_token_file, r.Path(*owner));
  }
  const Entry* file_entry = m.Find("key_file");
  const Entry* key_entry = m.Find("key");
  if ((file_entry == nullptr) == (key_entry == nullptr)) {
    return r.Error(section.key_node.Mark(),
                   section.key + ": exactly one of key_file or key is required");
  }
  if (file_entry != nullptr) {
    ASSIGN_OR_RETURN(key_file, r.Path(*file_entry));
    key.clear();
    return Status::Ok();
  }
  // The key is never echoed back in a message.
  if (!key_entry->value.IsScalar()) return r.Invalid(*key_entry, "base64 text");
  std::string_view text = TrimSpace(key_entry->value.Scalar());
  if (!IsBase64(text)) {
    const std::string what = ": expected base64 text, got something else (the value is not shown)";
    return r.Error(key_entry->key_node.Mark(), key_entry->key + what);
  }
  key = std::string(text);
  key_file.clear();
  return Status::Ok();
}

Status ReadLimits(const Reader& r, const Entry& section, int64_t& max_value_bytes,
                  int64_t& max_body_bytes) {
  ASSIGN_OR_RETURN(Map m, r.ReadMap(section, {"max_value_bytes", "max_body_bytes"}));
  const Entry* value = m.Find("max_value_bytes");
  const Entry* body = m.Find("max_body_bytes");
  if (value != nullptr) {
    ASSIGN_OR_RETURN(max_value_bytes, r.Int64(*value, kMinValueBytes, kMaxValueBytes));
  }
  if (body != nullptr) {
    ASSIGN_OR_RETURN(max_body_bytes,
                     r.Int64(*body, kMinValueBytes, std::numeric_limits<int64_t>::max()));
  }
  if (max_body_bytes < max_value_bytes) {
    // Point at the body limit when it was written, else at the value limit that outgrew the
    // default body limit.
    const Entry& at = body != nullptr ? *body : *value;
    std::string body_limit =
        section.key + ".max_body_bytes (" + std::to_string(max_body_bytes) + ")";
    std::string value_limit =
        section.key + ".max_value_bytes (" + std::to_string(max_value_bytes) + ")";
    return r.Error(at.key_node.Mark(), body_limit + " must be at least " + value_limit);
  }
  return Status::Ok();
}

Result<TlsSettings> ReadTls(const Reader& r, const Entry& section, bool with_ca) {
  ASSIGN_OR_RETURN(Map m, with_ca ? r.ReadMap(section, {"cert_file", "key_file", "ca_file"})
                                  : r.ReadMap(section, {"cert_file", "key_file"}));
  TlsSettings tls;
  ASSIGN_OR_RETURN(const Entry* cert, r.Required(m, section, "cert_file"));
  ASSIGN_OR_RETURN(tls.cert_file, r.Path(*cert));
  ASSIGN_OR_RETURN(const Entry* key, r.Required(m, section, "key_file"));
  ASSIGN_OR_RETURN(tls.key_file, r.Path(*key));
  if (const Entry* e = m.Find("ca_file")) {
    ASSIGN_OR_RETURN(tls.ca_file, r.Path(*e));
  }
  return tls;
}

Status ReadLog(const Reader& r, const Entry& section, std::string& level) {
  ASSIGN_OR_RETURN(Map m, r.ReadMap(section, {"level"}));
  if (const Entry* e = m.Find("level")) {
    static const std::string kLevelRule = "one of trace, debug, info, warn, error";
    ASSIGN_OR_RETURN(std::string written, r.Scalar(*e, kLevelRule));
    bool known = false;
    for (std::string_view l : kLogLevels) known = known || l == written;
    if (!known) return r.Invalid(*e, kLevelRule);
    level = std::move(written);
  }
  return Status::Ok();
}

Status ReadHttp(const Reader& r, const Entry& section, int& threads) {
  ASSIGN_OR_RETURN(Map m, r.ReadMap(section, {"threads"}));
  if (const Entry* e = m.Find("threads")) {
    ASSIGN_OR_RETURN(threads, r.Int(*e, 1, 1024));
  }
  return Status::Ok();
}

Status ReadWorkers(const Reader& r, const Entry& section, int& local, int& slots, int& heartbeat_ms,
                   int& task_nice, int& task_token_ttl_seconds, int64_t& task_uid_base) {
  ASSIGN_OR_RETURN(Map m, r.ReadMap(section, {"local", "slots", "heartbeat_ms", "task_nice",
                                              "task_token_ttl_seconds", "task_uid_base"}));
  if (const Entry* e = m.Find("local")) {
    ASSIGN_OR_RETURN(local, r.Int(*e, 0, 64));
  }
  if (const Entry* e = m.Find("slots")) {
    ASSIGN_OR_RETURN(slots, r.Int(*e, 1, 5000));
  }
  if (const Entry* e = m.Find("heartbeat_ms")) {
    ASSIGN_OR_RETURN(heartbeat_ms, r.Int(*e, 100, 60000));
  }
  if (const Entry* e = m.Find("task_nice")) {
    ASSIGN_OR_RETURN(task_nice, r.Int(*e, 0, 19));
  }
  if (const Entry* e = m.Find("task_token_ttl_seconds")) {
    ASSIGN_OR_RETURN(task_token_ttl_seconds, r.Int(*e, 4, 86400));
  }
  if (const Entry* e = m.Find("task_uid_base")) {
    ASSIGN_OR_RETURN(task_uid_base, r.Int64(*e, 0, 2100000000));
    if (task_uid_base > 0 && task_uid_base < 1000) {
      return r.Error(e->key_node.Mark(),
                     e->key +
                         ": expected 0 (tasks run as the worker's user) or 1000 to "
                         "2100000000, above the machine's own users; got " +
                         std::to_string(task_uid_base));
    }
  }
  return Status::Ok();
}

Result<std::string> DnsName(const Reader& r, const Entry& e) {
  static const std::string kRule =
      "a DNS name of lowercase labels (letters, digits, '-') separated by dots";
  return Checked(r, e, kRule, IsDnsName);
}

Status ReadPlatform(const Reader& r, const Entry& section, std::string& zone) {
  ASSIGN_OR_RETURN(Map m, r.ReadMap(section, {"zone"}));
  if (const Entry* e = m.Find("zone")) {
    ASSIGN_OR_RETURN(zone, DnsName(r, *e));
  }
  return Status::Ok();
}

Result<ManagedPostgres> ReadManagedKeys(const Reader& r, const Map& m, const Entry& section) {
  ManagedPostgres pg;
  pg.run_as = geteuid() == 0 ? "tandem" : "";

  ASSIGN_OR_RETURN(const Entry* port, r.Required(m, section, "port"));
  ASSIGN_OR_RETURN(pg.port, r.Int(*port, 1, kMaxPort));
  if (const Entry* e = m.Find("bin_dir")) {
    ASSIGN_OR_RETURN(pg.bin_dir, r.Path(*e));
  }
  if (const Entry* e = m.Find("run_as")) {
    // "" is allowed: run PostgreSQL as this process's own user.
    ASSIGN_OR_RETURN(pg.run_as, r.Scalar(*e, "a system user name"));
  }
  if (const Entry* e = m.Find("shared_buffers")) {
    static const std::string kSizeRule = "a size such as 32MB (digits, then B, kB, MB, GB or TB)";
    ASSIGN_OR_RETURN(pg.shared_buffers, r.Scalar(*e, kSizeRule));
    if (!IsPgMemorySize(pg.shared_buffers)) return r.Invalid(*e, kSizeRule);
  }
  if (const Entry* e = m.Find("max_connections")) {
    ASSIGN_OR_RETURN(pg.max_connections, r.Int(*e, 1, kMaxPgConnections));
  }
  return pg;
}

Status ReadPoolKeys(const Reader& r, const Map& m, int& connect_timeout_seconds, int& pool_size) {
  if (const Entry* e = m.Find("connect_timeout_seconds")) {
    ASSIGN_OR_RETURN(connect_timeout_seconds, r.Int(*e, 1, 3600));
  }
  if (const Entry* e = m.Find("pool_size")) {
    ASSIGN_OR_RETURN(pool_size, r.Int(*e, 1, 64));
  }
  return Status::Ok();
}

Result<RegistrySettings> ReadRegistry(const Reader& r, const Entry& section, Entry& port_entry) {
  ASSIGN_OR_RETURN(Map m, r.ReadMap(section, {"port", "binary"}));
  RegistrySettings registry;
  ASSIGN_OR_RETURN(const Entry* port, r.Required(m, section, "port"));
  ASSIGN_OR_RETURN(registry.port, r.Int(*port, 1, kMaxPort));
  port_entry = *port;
  if (const Entry* e = m.Find("binary")) {
    ASSIGN_OR_RETURN(registry.binary, r.Path(*e));
  }
  return registry;
}

Status ReadTaskLogs(const Reader& r, const Entry& section, TaskLogSettings& logs) {
  ASSIGN_OR_RETURN(Map m,
                   r.ReadMap(section, {"backend", "s3", "spool_bound_bytes", "chunk_bytes"}));
  const Entry* backend = m.Find("backend");
  if (backend != nullptr) {
    ASSIGN_OR_RETURN(logs.backend, r.OneOf(*backend, {kDirectoryBackend, kS3Backend}));
  }
  const std::string backend_key = section.key + ".backend";
  if (const Entry* s3 = m.Find("s3")) {
    if (logs.backend != kS3Backend) {
      return r.Error(s3->key_node.Mark(),
                     s3->key + ": given, but " + backend_key + " is " + logs.backend + ", not s3");
    }
    ASSIGN_OR_RETURN(logs.s3, ReadS3(r, *s3));
  } else if (logs.backend == kS3Backend) {
    const Entry& at = backend != nullptr ? *backend : section;
    return r.Error(at.key_node.Mark(),
                   section.key + ".s3 is required when " + backend_key + " is s3");
  }

  const Entry* spool = m.Find("spool_bound_bytes");
  const Entry* chunk = m.Find("chunk_bytes");
  if (spool != nullptr) {
    ASSIGN_OR_RETURN(logs.spool_bound_bytes, r.Int64(*spool, kMinSpoolBytes, kMaxSpoolBytes));
  }
  if (chunk != nullptr) {
    ASSIGN_OR_RETURN(logs.chunk_bytes, r.Int64(*chunk, kMinChunkBytes, kMaxChunkBytes));
  }
  if (logs.spool_bound_bytes < logs.chunk_bytes) {
    // Point at the bound when it was written, else at the chunk size that outgrew the default.
    const Entry& at = spool != nullptr ? *spool : *chunk;
    return r.Error(at.key_node.Mark(), section.key + ".spool_bound_bytes (" +
                                           std::to_string(logs.spool_bound_bytes) +
                                           ") must be at least " + section.key + ".chunk_bytes (" +
                                           std::to_string(logs.chunk_bytes) + ")");
  }
  return Status::Ok();
}

void Listeners::Add(const Entry& port_entry, const std::string& address, int port) {
  listeners_.push_back(Listener{
      .key = port_entry.key, .mark = port_entry.key_node.Mark(), .address = address, .port = port});
}

Status Listeners::Check(const Reader& r) const {
  // In file order, so that the second of two colliding keys is the one reported.
  std::vector<Listener> sorted = listeners_;
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const Listener& a, const Listener& b) { return a.mark.pos < b.mark.pos; });
  for (size_t i = 0; i < sorted.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      const Listener& a = sorted[j];
      const Listener& b = sorted[i];
      const bool collide = a.port == b.port && (a.address == b.address || a.address == "0.0.0.0" ||
                                                b.address == "0.0.0.0");
      if (!collide) continue;
      return r.Error(b.mark, b.key + ": " + b.address + ":" + std::to_string(b.port) +
                                 " is already taken by " + a.key + " (" + a.address + ":" +
                                 std::to_string(a.port) + ")");
    }
  }
  return Status::Ok();
}

void EmitString(YAML::Emitter& out, std::string_view key, const std::string& value) {
  out << YAML::Key << std::string(key) << YAML::Value << YAML::DoubleQuoted << value;
}

void EmitInt(YAML::Emitter& out, std::string_view key, int64_t value) {
  out << YAML::Key << std::string(key) << YAML::Value << value;
}

void EmitBool(YAML::Emitter& out, std::string_view key, bool value) {
  out << YAML::Key << std::string(key) << YAML::Value << YAML::TrueFalseBool << value;
}

void EmitSecrets(YAML::Emitter& out, const std::string& key_file, const std::string& key,
                 const std::string& owner_token_file) {
  out << YAML::Key << "secrets" << YAML::Value << YAML::BeginMap;
  if (!key_file.empty()) EmitString(out, "key_file", key_file);
  if (!key.empty()) EmitString(out, "key", key);
  if (!owner_token_file.empty()) EmitString(out, "owner_token_file", owner_token_file);
  out << YAML::EndMap;
}

void EmitLimits(YAML::Emitter& out, int64_t max_value_bytes, int64_t max_body_bytes) {
  out << YAML::Key << "limits" << YAML::Value << YAML::BeginMap;
  EmitInt(out, "max_value_bytes", max_value_bytes);
  EmitInt(out, "max_body_bytes", max_body_bytes);
  out << YAML::EndMap;
}

void EmitTls(YAML::Emitter& out, const TlsSettings& tls, bool with_ca) {
  out << YAML::Key << "tls" << YAML::Value << YAML::BeginMap;
  EmitString(out, "cert_file", tls.cert_file);
  EmitString(out, "key_file", tls.key_file);
  if (with_ca && !tls.ca_file.empty()) EmitString(out, "ca_file", tls.ca_file);
  out << YAML::EndMap;
}

void EmitLog(YAML::Emitter& out, const std::string& level) {
  out << YAML::Key << "log" << YAML::Value << YAML::BeginMap;
  EmitString(out, "level", level);
  out << YAML::EndMap;
}

void EmitHttp(YAML::Emitter& out, int threads) {
  out << YAML::Key << "http" << YAML::Value << YAML::BeginMap;
  EmitInt(out, "threads", threads);
  out << YAML::EndMap;
}

void EmitWorkers(YAML::Emitter& out, int local, int slots, int heartbeat_ms, int task_nice,
                 int task_token_ttl_seconds, int64_t task_uid_base) {
  out << YAML::Key << "workers" << YAML::Value << YAML::BeginMap;
  EmitInt(out, "local", local);
  EmitInt(out, "slots", slots);
  EmitInt(out, "heartbeat_ms", heartbeat_ms);
  EmitInt(out, "task_nice", task_nice);
  EmitInt(out, "task_token_ttl_seconds", task_token_ttl_seconds);
  out << YAML::Key << "task_uid_base" << YAML::Value << task_uid_base;
  out << YAML::EndMap;
}

void EmitPlatform(YAML::Emitter& out, const std::string& zone) {
  out << YAML::Key << "platform" << YAML::Value << YAML::BeginMap;
  EmitString(out, "zone", zone);
  out << YAML::EndMap;
}

void EmitRegistry(YAML::Emitter& out, const RegistrySettings& registry) {
  out << YAML::Key << "registry" << YAML::Value << YAML::BeginMap;
  EmitInt(out, "port", registry.port);
  EmitString(out, "binary", registry.binary);
  out << YAML::EndMap;
}

void EmitTaskLogs(YAML::Emitter& out, const TaskLogSettings& logs) {
  out << YAML::Key << "task_logs" << YAML::Value << YAML::BeginMap;
  EmitString(out, "backend", logs.backend);
  if (logs.s3) {
    const S3Settings& s3 = *logs.s3;
    out << YAML::Key << "s3" << YAML::Value << YAML::BeginMap;
    EmitString(out, "endpoint", s3.endpoint);
    EmitString(out, "bucket", s3.bucket);
    EmitString(out, "region", s3.region);
    EmitString(out, "prefix", s3.prefix);
    EmitString(out, "access_key_id", s3.access_key_id);
    if (!s3.secret_access_key_file.empty()) {
      EmitString(out, "secret_access_key_file", s3.secret_access_key_file);
    }
    if (!s3.secret_access_key.empty()) EmitString(out, "secret_access_key", s3.secret_access_key);
    out << YAML::EndMap;
  }
  EmitInt(out, "spool_bound_bytes", logs.spool_bound_bytes);
  EmitInt(out, "chunk_bytes", logs.chunk_bytes);
  out << YAML::EndMap;
}

void EmitManagedKeys(YAML::Emitter& out, const ManagedPostgres& pg) {
  EmitInt(out, "port", pg.port);
  EmitString(out, "bin_dir", pg.bin_dir);
  EmitString(out, "run_as", pg.run_as);
  EmitString(out, "shared_buffers", pg.shared_buffers);
  EmitInt(out, "max_connections", pg.max_connections);
}

}  // namespace tandem::region::yaml_util
