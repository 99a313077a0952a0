// Internal to src/region: the YAML walk shared by the region file (config.cc) and the pair file
// (pair_config.cc), so that both read keys, report errors and resolve paths the same way.
//
// Parsing walks the YAML tree key by key instead of looking keys up with node["key"], so that
// every key written in the file is checked (unknown and duplicate keys are errors) and every
// error can point at the line of the key it is about. Every error is an InvalidArgument
//   "<file>:<line>: <dotted.key>: expected <what the key takes>, got <what was found>"
// or one of the other forms listed in config.h.
//
// yaml-cpp's types appear here, so this header is included only by .cc files of this module;
// none of them crosses config.h or pair_config.h. yaml-cpp reports problems by throwing: the
// Reader only reads nodes whose type it has checked, and ParseText catches YAML::Exception around
// the walk to turn a bug into an Internal status rather than a crash.
#pragma once

#include <yaml-cpp/yaml.h>

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "base/fs.h"
#include "base/status.h"
#include "region/config.h"

namespace tandem::region::yaml_util {

// One key of a YAML map (or one item of a list), as written in the file.
struct Entry {
  std::string name;     // the key itself: "port"
  std::string key;      // dotted from the top: "postgres.managed.port", "regions[1].name"
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

// What was found, for the "got ..." end of a message: a quoted scalar, "a map", "a list", ...
std::string Describe(const YAML::Node& n);

// ^[a-z][a-z0-9-]{0,30}$: region and pair names.
bool IsRegionName(std::string_view s);

// Reads one file's YAML. Holds only what every message and path needs: the file's name as the
// caller gave it and the directory relative paths resolve against. Immutable; cheap to create.
class Reader {
 public:
  // `path` starts every message ("<config>" when empty) and anchors relative paths: they
  // resolve against its directory (the current directory when it is empty).
  explicit Reader(const std::string& path);

  // The one document of `yaml_text`: an empty map for an empty file, an error for a syntax
  // error or more than one document.
  Result<YAML::Node> Load(const std::string& yaml_text) const;

  // "<file>:<line>: <text>", or "<file>: <text>" when `at` names no place in the file.
  Status Error(const YAML::Mark& at, const std::string& text) const;
  // "<file>: <key> is required"
  Status Missing(const std::string& key) const;
  // "<file>:<line>: <key>: expected <expected>, got <what the entry holds>"
  Status Invalid(const Entry& e, const std::string& expected) const;

  // The entries of `e`'s value, which must be a map whose keys are all in `allowed`. `e.key` is
  // "" for the top of the document, whose message names the first few sections of `allowed`.
  Result<Map> ReadMap(const Entry& e, std::initializer_list<std::string_view> allowed) const;
  Result<const Entry*> Required(const Map& m, const Entry& parent, std::string_view name) const;
  // Item `i` of list entry `list`, keyed "<list.key>[i]" and pointing at the item's line.
  // REQUIRES: list.value.IsSequence() and i < its size.
  static Entry Item(const Entry& list, size_t i);

  // The text of a scalar; anything else is an error that says `expected`.
  Result<std::string> Scalar(const Entry& e, const std::string& expected) const;
  Result<std::string> NonEmpty(const Entry& e) const;
  // A non-empty path, made absolute against the file's directory and normalised.
  Result<std::string> Path(const Entry& e) const;
  Result<std::string> Ipv4(const Entry& e) const;
  // A name matching IsRegionName.
  Result<std::string> Name(const Entry& e) const;
  // One of `values`, spelt exactly.
  Result<std::string> OneOf(const Entry& e, std::initializer_list<std::string_view> values) const;
  // `true` or `false`, spelt so.
  Result<bool> Bool(const Entry& e) const;
  // Decimal digits with an optional '-', within [min, max]; no signs, spaces, separators, hex or
  // exponents.
  Result<int> Int(const Entry& e, int min, int max) const;
  Result<int64_t> Int64(const Entry& e, int64_t min, int64_t max) const;

 private:
  const std::string file_;
  const std::string base_dir_;
};

// One whole parse: loads `yaml_text`'s one document, makes a C holding its defaults with `path`
// the absolute form of `path_for_messages`, and has walk(reader, root, c) fill it in. A
// YAML::Exception from the walk (a bug: it reads only nodes whose type it has checked) becomes
// Internal.
template <typename C, typename Walk>
Result<C> ParseText(const std::string& yaml_text, const std::string& path_for_messages, Walk walk) {
  Reader reader(path_for_messages);
  ASSIGN_OR_RETURN(YAML::Node root, reader.Load(yaml_text));
  C c;
  c.path = path_for_messages.empty() ? "" : AbsolutePath(path_for_messages);
  try {
    RETURN_IF_ERROR(walk(reader, root, c));
  } catch (const YAML::Exception& e) {
    return Internal(path_for_messages + ": reading the configuration failed: " + e.what());
  }
  return c;
}

// The TCP listeners a file declares, gathered while its keys are read and checked once they all
// have been, so that the order of the file's sections does not matter.
class Listeners {
 public:
  // The listener read from `port_entry` (errors point at its line) on `address`.
  void Add(const Entry& port_entry, const std::string& address, int port);

  // Ok when no two share a port on one address (or on any address, when either is the wildcard
  // 0.0.0.0); else, for the first in file order whose port an earlier one already takes,
  //   "<file>:<line>: <key>: <address>:<port> is already taken by <other key> (<address>:<port>)"
  Status Check(const Reader& r) const;

 private:
  struct Listener {
    std::string key;  // "regions[0].postgres.port"
    YAML::Mark mark;  // the line of that key
    std::string address;
    int port = 0;
  };

  std::vector<Listener> listeners_;
};

// Sections shared by the region file and the pair file. Each reads `section` (a map; unknown
// keys refused) into the members it is given, and leaves those of keys not written alone: they
// must hold the defaults. Keys in messages are dotted from `section.key`.

// secrets: exactly one of key_file (a path) or key (base64 text, never echoed in messages).
// Fills secret_key_file or secret_key.
// `owner_token_file`, optional: a file holding the API token made the platform's first owner
// when the platform has no principal yet (`tandem up` writes one).
Status ReadSecrets(const Reader& r, const Entry& section, std::string& key_file, std::string& key,
                   std::string& owner_token_file);
// limits: max_value_bytes, max_body_bytes (the body limit at least the value limit, written or
// default).
Status ReadLimits(const Reader& r, const Entry& section, int64_t& max_value_bytes,
                  int64_t& max_body_bytes);
Status ReadLog(const Reader& r, const Entry& section, std::string& level);  // log: level
// tls: cert_file and key_file (required), and ca_file when `with_ca` (optional).
Result<TlsSettings> ReadTls(const Reader& r, const Entry& section, bool with_ca);
Status ReadHttp(const Reader& r, const Entry& section, int& threads);  // http: threads
// workers: local, slots, heartbeat_ms, task_nice.
Status ReadWorkers(const Reader& r, const Entry& section, int& local, int& slots, int& heartbeat_ms,
                   int& task_nice, int& task_token_ttl_seconds, int64_t& task_uid_base);
Status ReadPlatform(const Reader& r, const Entry& section, std::string& zone);
// A DNS name of lowercase labels separated by dots (as platform.zone).
Result<std::string> DnsName(const Reader& r, const Entry& e);  // platform: zone
// A managed PostgreSQL server's keys (port required; bin_dir, run_as, shared_buffers,
// max_connections) from `m`, the already-read map of `section`, whose other keys are the
// caller's.
Result<ManagedPostgres> ReadManagedKeys(const Reader& r, const Map& m, const Entry& section);
// postgres.connect_timeout_seconds and postgres.pool_size from `m`.
Status ReadPoolKeys(const Reader& r, const Map& m, int& connect_timeout_seconds, int& pool_size);
// registry: port (required) and binary. `port_entry` is set to the port's entry, for the
// caller's Listeners (which know the region's address).
Result<RegistrySettings> ReadRegistry(const Reader& r, const Entry& section, Entry& port_entry);
// task_logs: backend, s3.{endpoint, bucket, region, prefix, access_key_id,
// secret_access_key_file, secret_access_key}, spool_bound_bytes, chunk_bytes. `logs` must hold
// the defaults; s3 is checked against the backend, written or default.
Status ReadTaskLogs(const Reader& r, const Entry& section, TaskLogSettings& logs);

// Writing. Strings are always double-quoted so that values such as "null", "true" or "" come
// back as the same strings.
void EmitString(YAML::Emitter& out, std::string_view key, const std::string& value);
void EmitInt(YAML::Emitter& out, std::string_view key, int64_t value);
void EmitBool(YAML::Emitter& out, std::string_view key, bool value);
// `section: {...}` blocks as the Read* functions above read them.
void EmitSecrets(YAML::Emitter& out, const std::string& key_file, const std::string& key,
                 const std::string& owner_token_file);
void EmitLimits(YAML::Emitter& out, int64_t max_value_bytes, int64_t max_body_bytes);
void EmitLog(YAML::Emitter& out, const std::string& level);
// tls: cert_file, key_file, and ca_file when `with_ca`.
void EmitTls(YAML::Emitter& out, const TlsSettings& tls, bool with_ca);
void EmitHttp(YAML::Emitter& out, int threads);
void EmitWorkers(YAML::Emitter& out, int local, int slots, int heartbeat_ms, int task_nice,
                 int task_token_ttl_seconds, int64_t task_uid_base);
void EmitPlatform(YAML::Emitter& out, const std::string& zone);
void EmitRegistry(YAML::Emitter& out, const RegistrySettings& registry);
void EmitTaskLogs(YAML::Emitter& out, const TaskLogSettings& logs);
// The keys ReadManagedKeys reads, into the map being written.
void EmitManagedKeys(YAML::Emitter& out, const ManagedPostgres& pg);

}  // namespace tandem::region::yaml_util
