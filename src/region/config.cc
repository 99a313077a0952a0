// Parsing walks the YAML tree key by key instead of looking keys up with node["key"], so that
// every key written in the file is checked (unknown and duplicate keys are errors) and every
// error can point at the line of the key it is about. yaml-cpp reports problems by throwing;
// those exceptions are caught here and become Status values.
#include "region/config.h"

#include <arpa/inet.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <charconv>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <string_view>
#include <utility>

#include "base/fs.h"
#include "base/text.h"

namespace tandem::region {
namespace {

namespace fs = std::filesystem;

constexpr int kMaxPort = 65535;
constexpr int kMaxPgConnections = 262143;  // PostgreSQL's own upper bound
constexpr int64_t kMinValueBytes = 1024;
constexpr int64_t kMaxValueBytes = int64_t{64} * 1024 * 1024;
constexpr std::string_view kLogLevels[] = {"trace", "debug", "info", "warn", "error"};

// One key of a YAML map, as written in the file.
struct Entry {
  std::string name;     // the key itself: "port"
  std::string key;      // dotted from the top: "postgres.managed.port"
  YAML::Node key_node;  // errors about this entry point at its line
  YAML::Node value;
};

// The entries of one YAML map, in file order; every name is known and appears once.
struct Map {
  const Entry* Find(std::string_view name) const {
    for (const Entry& e : entries) {
      if (e.name == name) return &e;
    }
    return nullptr;
  }

  std::vector<Entry> entries;
};

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

// What was found, for the "got ..." end of a message.
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

// One parse of one file. Holds only what every message and path needs: the file's name as the
// caller gave it and the directory relative paths resolve against.
class Parser {
 public:
  explicit Parser(const std::string& path)
      : file_(path.empty() ? "<config>" : path),
        base_dir_(path.empty() ? AbsolutePath(".")
                               : fs::path(AbsolutePath(path)).parent_path().string()) {}

  // REQUIRES: `c` holds the defaults; fills in what the file says.
  Status Parse(const YAML::Node& root, RegionConfig& c) const;

  // "<file>:<line>: <text>", or "<file>: <text>" when `at` names no place in the file.
  Status Error(const YAML::Mark& at, const std::string& text) const {
    if (at.is_null() || at.line < 0) return InvalidArgument(file_ + ": " + text);
    return InvalidArgument(file_ + ":" + std::to_string(at.line + 1) + ": " + text);
  }

 private:
  Status Missing(const std::string& key) const {
    return InvalidArgument(file_ + ": " + key + " is required");
  }
  // "<file>:<line>: <key>: expected <expected>, got <what the entry holds>"
  Status Invalid(const Entry& e, const std::string& expected) const {
    return Error(e.key_node.Mark(),
                 e.key + ": expected " + expected + ", got " + Describe(e.value));
  }

  // The entries of `e`'s value, which must be a map whose keys are all in `allowed`. `e.key` is
  // "" for the top of the document.
  Result<Map> ReadMap(const Entry& e, std::initializer_list<std::string_view> allowed) const;
  Result<const Entry*> Required(const Map& m, const Entry& parent, std::string_view name) const;

  // The text of a scalar; anything else is an error that says `expected`.
  Result<std::string> Scalar(const Entry& e, const std::string& expected) const;
  Result<std::string> NonEmpty(const Entry& e) const;
  // A non-empty path, made absolute against the config file's directory.
  Result<std::string> Path(const Entry& e) const;
  Result<std::string> Ipv4(const Entry& e) const;
  template <typename T>
  Result<T> Integer(const Entry& e, T min, T max) const;

  Status ParseRegion(const Entry& section, RegionConfig& c) const;
  Status ParsePostgres(const Entry& section, RegionConfig& c) const;
  Result<ManagedPostgres> ParseManaged(const Entry& section) const;
  Result<std::string> ParseExternal(const Entry& section) const;
  Status ParseSecrets(const Entry& section, RegionConfig& c) const;
  Status ParseLimits(const Entry& section, RegionConfig& c) const;
  Status ParseLog(const Entry& section, RegionConfig& c) const;
  Status ParseHttp(const Entry& section, RegionConfig& c) const;
  Status ParseWorkers(const Entry& section, RegionConfig& c) const;
  Status ParsePlatform(const Entry& section, RegionConfig& c) const;

  const std::string file_;
  const std::string base_dir_;
};

Result<Map> Parser::ReadMap(const Entry& e, std::initializer_list<std::string_view> allowed) const {
  const bool top = e.key.empty();
  if (!e.value.IsMap()) {
    if (top) {
      return Error(
          e.value.Mark(),
          "expected a map of sections (region, postgres, secrets, ...), got " + Describe(e.value));
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

Result<const Entry*> Parser::Required(const Map& m, const Entry& parent,
                                      std::string_view name) const {
  const Entry* e = m.Find(name);
  if (e == nullptr) return Missing(parent.key + "." + std::string(name));
  return e;
}

Result<std::string> Parser::Scalar(const Entry& e, const std::string& expected) const {
  if (!e.value.IsScalar()) return Invalid(e, expected);
  return e.value.Scalar();
}

Result<std::string> Parser::NonEmpty(const Entry& e) const {
  ASSIGN_OR_RETURN(std::string s, Scalar(e, "a non-empty string"));
  if (s.empty()) return Invalid(e, "a non-empty string");
  return s;
}

Result<std::string> Parser::Path(const Entry& e) const {
  ASSIGN_OR_RETURN(std::string s, Scalar(e, "a non-empty path"));
  if (s.empty()) return Invalid(e, "a non-empty path");
  std::string abs = AbsolutePath(s[0] == '/' ? s : (fs::path(base_dir_) / s).string());
  while (abs.size() > 1 && abs.back() == '/') abs.pop_back();
  return abs;
}

Result<std::string> Parser::Ipv4(const Entry& e) const {
  ASSIGN_OR_RETURN(std::string s, Scalar(e, "a dotted IPv4 address"));
  if (!IsIpv4(s)) return Invalid(e, "a dotted IPv4 address");
  return s;
}

// Decimal digits with an optional '-'; no signs, spaces, separators, hex or exponents.
template <typename T>
Result<T> Parser::Integer(const Entry& e, T min, T max) const {
  if (e.value.IsScalar()) {
    const std::string& s = e.value.Scalar();
    int64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc() && end == s.data() + s.size() && v >= min && v <= max) {
      return static_cast<T>(v);
    }
  }
  if (max == std::numeric_limits<T>::max()) {
    return Invalid(e, "an integer of at least " + std::to_string(min));
  }
  return Invalid(e, "an integer from " + std::to_string(min) + " to " + std::to_string(max));
}

Status Parser::Parse(const YAML::Node& root, RegionConfig& c) const {
  Entry top{.name = "", .key = "", .key_node = root, .value = root};
  ASSIGN_OR_RETURN(Map m, ReadMap(top, {"region", "postgres", "secrets", "limits", "log", "http",
                                        "workers", "platform"}));
  // Sections in the order the file gives them, so errors come roughly in file order.
  for (const Entry& section : m.entries) {
    if (section.name == "region") {
      RETURN_IF_ERROR(ParseRegion(section, c));
    } else if (section.name == "postgres") {
      RETURN_IF_ERROR(ParsePostgres(section, c));
    } else if (section.name == "secrets") {
      RETURN_IF_ERROR(ParseSecrets(section, c));
    } else if (section.name == "limits") {
      RETURN_IF_ERROR(ParseLimits(section, c));
    } else if (section.name == "log") {
      RETURN_IF_ERROR(ParseLog(section, c));
    } else if (section.name == "http") {
      RETURN_IF_ERROR(ParseHttp(section, c));
    } else if (section.name == "workers") {
      RETURN_IF_ERROR(ParseWorkers(section, c));
    } else if (section.name == "platform") {
      RETURN_IF_ERROR(ParsePlatform(section, c));
    }
  }
  for (std::string_view required : {"region", "postgres", "secrets"}) {
    if (m.Find(required) == nullptr) return Missing(std::string(required));
  }
  return Status::Ok();
}

Status Parser::ParseRegion(const Entry& section, RegionConfig& c) const {
  ASSIGN_OR_RETURN(Map m, ReadMap(section, {"name", "address", "http_port", "state_dir", "peers"}));

  ASSIGN_OR_RETURN(const Entry* name, Required(m, section, "name"));
  static const std::string kNameRule =
      "a name of 1 to 31 characters: a lowercase letter, then lowercase letters, digits or '-'";
  ASSIGN_OR_RETURN(c.name, Scalar(*name, kNameRule));
  if (!IsRegionName(c.name)) return Invalid(*name, kNameRule);

  ASSIGN_OR_RETURN(const Entry* address, Required(m, section, "address"));
  ASSIGN_OR_RETURN(c.address, Ipv4(*address));

  ASSIGN_OR_RETURN(const Entry* http_port, Required(m, section, "http_port"));
  ASSIGN_OR_RETURN(c.http_port, Integer(*http_port, 1, kMaxPort));

  ASSIGN_OR_RETURN(const Entry* state_dir, Required(m, section, "state_dir"));
  ASSIGN_OR_RETURN(c.state_dir, Path(*state_dir));

  if (const Entry* peers = m.Find("peers")) {
    if (!peers->value.IsSequence()) return Invalid(*peers, "a list of dotted IPv4 addresses");
    c.peers.clear();
    for (size_t i = 0; i < peers->value.size(); ++i) {
      YAML::Node item = peers->value[i];
      Entry peer{.name = peers->name,
                 .key = peers->key + "[" + std::to_string(i) + "]",
                 .key_node = item,
                 .value = item};
      ASSIGN_OR_RETURN(std::string ip, Ipv4(peer));
      c.peers.push_back(std::move(ip));
    }
  }
  return Status::Ok();
}

Status Parser::ParsePostgres(const Entry& section, RegionConfig& c) const {
  ASSIGN_OR_RETURN(
      Map m, ReadMap(section, {"managed", "external", "connect_timeout_seconds", "pool_size"}));
  const Entry* managed = m.Find("managed");
  const Entry* external = m.Find("external");
  if ((managed == nullptr) == (external == nullptr)) {
    return Error(section.key_node.Mark(),
                 "postgres: exactly one of managed or external is required");
  }
  if (managed != nullptr) {
    ASSIGN_OR_RETURN(c.managed, ParseManaged(*managed));
  } else {
    ASSIGN_OR_RETURN(c.external_dsn, ParseExternal(*external));
  }
  if (const Entry* e = m.Find("connect_timeout_seconds")) {
    ASSIGN_OR_RETURN(c.connect_timeout_seconds, Integer(*e, 1, 3600));
  }
  if (const Entry* e = m.Find("pool_size")) {
    ASSIGN_OR_RETURN(c.pool_size, Integer(*e, 1, 64));
  }
  return Status::Ok();
}

Result<ManagedPostgres> Parser::ParseManaged(const Entry& section) const {
  ASSIGN_OR_RETURN(
      Map m, ReadMap(section, {"port", "bin_dir", "run_as", "shared_buffers", "max_connections"}));
  ManagedPostgres pg;
  pg.run_as = geteuid() == 0 ? "tandem" : "";

  ASSIGN_OR_RETURN(const Entry* port, Required(m, section, "port"));
  ASSIGN_OR_RETURN(pg.port, Integer(*port, 1, kMaxPort));
  if (const Entry* e = m.Find("bin_dir")) {
    ASSIGN_OR_RETURN(pg.bin_dir, Path(*e));
  }
  if (const Entry* e = m.Find("run_as")) {
    // "" is allowed: run PostgreSQL as this process's own user.
    ASSIGN_OR_RETURN(pg.run_as, Scalar(*e, "a system user name"));
  }
  if (const Entry* e = m.Find("shared_buffers")) {
    static const std::string kSizeRule = "a size such as 32MB (digits, then B, kB, MB, GB or TB)";
    ASSIGN_OR_RETURN(pg.shared_buffers, Scalar(*e, kSizeRule));
    if (!IsPgMemorySize(pg.shared_buffers)) return Invalid(*e, kSizeRule);
  }
  if (const Entry* e = m.Find("max_connections")) {
    ASSIGN_OR_RETURN(pg.max_connections, Integer(*e, 1, kMaxPgConnections));
  }
  return pg;
}

Result<std::string> Parser::ParseExternal(const Entry& section) const {
  ASSIGN_OR_RETURN(Map m, ReadMap(section, {"dsn"}));
  ASSIGN_OR_RETURN(const Entry* dsn, Required(m, section, "dsn"));
  return NonEmpty(*dsn);
}

Status Parser::ParseSecrets(const Entry& section, RegionConfig& c) const {
  ASSIGN_OR_RETURN(Map m, ReadMap(section, {"key_file", "key"}));
  const Entry* key_file = m.Find("key_file");
  const Entry* key = m.Find("key");
  if ((key_file == nullptr) == (key == nullptr)) {
    return Error(section.key_node.Mark(), "secrets: exactly one of key_file or key is required");
  }
  if (key_file != nullptr) {
    ASSIGN_OR_RETURN(c.secret_key_file, Path(*key_file));
    return Status::Ok();
  }
  // The key is never echoed back in a message.
  if (!key->value.IsScalar()) return Invalid(*key, "base64 text");
  std::string_view text = TrimSpace(key->value.Scalar());
  if (!IsBase64(text)) {
    const std::string what = ": expected base64 text, got something else (the value is not shown)";
    return Error(key->key_node.Mark(), key->key + what);
  }
  c.secret_key = std::string(text);
  return Status::Ok();
}

Status Parser::ParseLimits(const Entry& section, RegionConfig& c) const {
  ASSIGN_OR_RETURN(Map m, ReadMap(section, {"max_value_bytes", "max_body_bytes"}));
  const Entry* value = m.Find("max_value_bytes");
  const Entry* body = m.Find("max_body_bytes");
  if (value != nullptr) {
    ASSIGN_OR_RETURN(c.max_value_bytes, Integer(*value, kMinValueBytes, kMaxValueBytes));
  }
  if (body != nullptr) {
    ASSIGN_OR_RETURN(c.max_body_bytes,
                     Integer(*body, kMinValueBytes, std::numeric_limits<int64_t>::max()));
  }
  if (c.max_body_bytes < c.max_value_bytes) {
    // Point at the body limit when it was written, else at the value limit that outgrew the
    // default body limit.
    const Entry& at = body != nullptr ? *body : *value;
    std::string body_limit = "limits.max_body_bytes (" + std::to_string(c.max_body_bytes) + ")";
    std::string value_limit = "limits.max_value_bytes (" + std::to_string(c.max_value_bytes) + ")";
    return Error(at.key_node.Mark(), body_limit + " must be at least " + value_limit);
  }
  return Status::Ok();
}

Status Parser::ParseLog(const Entry& section, RegionConfig& c) const {
  ASSIGN_OR_RETURN(Map m, ReadMap(section, {"level"}));
  if (const Entry* e = m.Find("level")) {
    static const std::string kLevelRule = "one of trace, debug, info, warn, error";
    ASSIGN_OR_RETURN(std::string level, Scalar(*e, kLevelRule));
    bool known = false;
    for (std::string_view l : kLogLevels) known = known || l == level;
    if (!known) return Invalid(*e, kLevelRule);
    c.log_level = std::move(level);
  }
  return Status::Ok();
}

Status Parser::ParseHttp(const Entry& section, RegionConfig& c) const {
  ASSIGN_OR_RETURN(Map m, ReadMap(section, {"threads"}));
  if (const Entry* e = m.Find("threads")) {
    ASSIGN_OR_RETURN(c.http_threads, Integer(*e, 1, 1024));
  }
  return Status::Ok();
}

Status Parser::ParseWorkers(const Entry& section, RegionConfig& c) const {
  ASSIGN_OR_RETURN(Map m, ReadMap(section, {"local", "slots", "heartbeat_ms"}));
  if (const Entry* e = m.Find("local")) {
    ASSIGN_OR_RETURN(c.local_workers, Integer(*e, 0, 64));
  }
  if (const Entry* e = m.Find("slots")) {
    ASSIGN_OR_RETURN(c.worker_slots, Integer(*e, 1, 5000));
  }
  if (const Entry* e = m.Find("heartbeat_ms")) {
    ASSIGN_OR_RETURN(c.heartbeat_ms, Integer(*e, 100, 60000));
  }
  return Status::Ok();
}

Status Parser::ParsePlatform(const Entry& section, RegionConfig& c) const {
  ASSIGN_OR_RETURN(Map m, ReadMap(section, {"zone"}));
  if (const Entry* e = m.Find("zone")) {
    static const std::string kRule =
        "a DNS name of lowercase labels (letters, digits, '-') separated by dots";
    ASSIGN_OR_RETURN(std::string zone, Scalar(*e, kRule));
    bool ok = !zone.empty() && zone.size() <= 200 && zone.front() != '.' && zone.back() != '.';
    size_t label = 0;
    for (size_t i = 0; ok && i < zone.size(); ++i) {
      char ch = zone[i];
      if (ch == '.') {
        ok = label > 0 && zone[i - 1] != '-';
        label = 0;
        continue;
      }
      ok = (islower(static_cast<unsigned char>(ch)) || isdigit(static_cast<unsigned char>(ch)) ||
            (ch == '-' && label > 0)) &&
           ++label <= 63;
    }
    if (!ok || zone.back() == '-') return Invalid(*e, kRule);
    c.zone = std::move(zone);
  }
  return Status::Ok();
}

// Writes `key: "value"`; strings are always double-quoted so that values such as "null",
// "true" or "" come back as the same strings.
void EmitString(YAML::Emitter& out, std::string_view key, const std::string& value) {
  out << YAML::Key << std::string(key) << YAML::Value << YAML::DoubleQuoted << value;
}

template <typename T>
void EmitInt(YAML::Emitter& out, std::string_view key, T value) {
  out << YAML::Key << std::string(key) << YAML::Value << value;
}

}  // namespace

Result<RegionConfig> LoadRegionConfig(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  return ParseRegionConfig(text, path);
}

Result<RegionConfig> ParseRegionConfig(const std::string& yaml_text,
                                       const std::string& path_for_messages) {
  Parser parser(path_for_messages);
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(yaml_text);
  } catch (const YAML::Exception& e) {
    return parser.Error(e.mark, "YAML syntax error: " + e.msg);
  }
  if (docs.size() > 1) {
    return parser.Error(docs[1].Mark(),
                        "expected one YAML document, found " + std::to_string(docs.size()));
  }
  // An empty file is an empty map: the missing required sections are reported.
  YAML::Node root = YAML::Node(YAML::NodeType::Map);
  if (!docs.empty() && !docs[0].IsNull()) root = docs[0];

  RegionConfig c;
  c.path = path_for_messages.empty() ? "" : AbsolutePath(path_for_messages);
  try {
    RETURN_IF_ERROR(parser.Parse(root, c));
  } catch (const YAML::Exception& e) {
    // The walk only reads nodes it has checked the type of; this would be a bug here.
    return Internal(path_for_messages + ": reading the configuration failed: " + e.what());
  }
  return c;
}

std::string RenderRegionConfig(const RegionConfig& c) {
  YAML::Emitter out;
  out << YAML::Comment("tandem region configuration; see docs/configuration.md");
  out << YAML::BeginMap;

  out << YAML::Key << "region" << YAML::Value << YAML::BeginMap;
  EmitString(out, "name", c.name);
  EmitString(out, "address", c.address);
  EmitInt(out, "http_port", c.http_port);
  EmitString(out, "state_dir", c.state_dir);
  out << YAML::Key << "peers" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const std::string& peer : c.peers) out << YAML::DoubleQuoted << peer;
  out << YAML::EndSeq;
  out << YAML::EndMap;

  out << YAML::Key << "postgres" << YAML::Value << YAML::BeginMap;
  if (c.managed) {
    out << YAML::Key << "managed" << YAML::Value << YAML::BeginMap;
    EmitInt(out, "port", c.managed->port);
    EmitString(out, "bin_dir", c.managed->bin_dir);
    EmitString(out, "run_as", c.managed->run_as);
    EmitString(out, "shared_buffers", c.managed->shared_buffers);
    EmitInt(out, "max_connections", c.managed->max_connections);
    out << YAML::EndMap;
  }
  if (c.external_dsn) {
    out << YAML::Key << "external" << YAML::Value << YAML::BeginMap;
    EmitString(out, "dsn", *c.external_dsn);
    out << YAML::EndMap;
  }
  EmitInt(out, "connect_timeout_seconds", c.connect_timeout_seconds);
  EmitInt(out, "pool_size", c.pool_size);
  out << YAML::EndMap;

  out << YAML::Key << "secrets" << YAML::Value << YAML::BeginMap;
  if (!c.secret_key_file.empty()) EmitString(out, "key_file", c.secret_key_file);
  if (!c.secret_key.empty()) EmitString(out, "key", c.secret_key);
  out << YAML::EndMap;

  out << YAML::Key << "limits" << YAML::Value << YAML::BeginMap;
  EmitInt(out, "max_value_bytes", c.max_value_bytes);
  EmitInt(out, "max_body_bytes", c.max_body_bytes);
  out << YAML::EndMap;

  out << YAML::Key << "log" << YAML::Value << YAML::BeginMap;
  EmitString(out, "level", c.log_level);
  out << YAML::EndMap;

  out << YAML::Key << "http" << YAML::Value << YAML::BeginMap;
  EmitInt(out, "threads", c.http_threads);
  out << YAML::EndMap;

  out << YAML::Key << "workers" << YAML::Value << YAML::BeginMap;
  EmitInt(out, "local", c.local_workers);
  EmitInt(out, "slots", c.worker_slots);
  EmitInt(out, "heartbeat_ms", c.heartbeat_ms);
  out << YAML::EndMap;

  out << YAML::Key << "platform" << YAML::Value << YAML::BeginMap;
  EmitString(out, "zone", c.zone);
  out << YAML::EndMap;

  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace tandem::region
