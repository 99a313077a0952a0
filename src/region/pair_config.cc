// The pair file: its sections, read with the walk shared with the region file (yaml_util.h), and
// the checks that span sections (two regions, one primary, no shared listener, the lease's
// timing), made once every section has been read so that the file's order does not matter.
#include "region/pair_config.h"

#include <yaml-cpp/yaml.h>

#include <initializer_list>
#include <string_view>
#include <utility>

#include "base/fs.h"
#include "region/yaml_util.h"

namespace tandem::region {
namespace {

using yaml_util::Entry;
using yaml_util::Map;
using yaml_util::Reader;

constexpr int kMaxPort = 65535;
constexpr int kMaxLeaseMs = 600000;  // ten minutes
constexpr int kMaxTimeoutSeconds = 86400;
constexpr std::string_view kPrimary = "primary";
constexpr std::string_view kStandby = "standby";

// Where the keys of one region item were, for the checks that compare the two regions.
struct RegionMarks {
  YAML::Mark name;
  YAML::Mark role;
};

// One parse of one pair file. Collects the listeners it reads along the way.
class Parser {
 public:
  explicit Parser(const Reader& r) : r_(r) {}

  // REQUIRES: `p` holds the defaults; fills in what the file says.
  Status Parse(const YAML::Node& root, PairConfig& p);

 private:
  Status ParsePair(const Entry& section, PairConfig& p) const;
  Status ParseControl(const Entry& section, PairControl& control);
  Status ParseRegions(const Entry& section, PairConfig& p);
  Result<RegionMarks> ParseRegion(const Entry& item, PairRegion& region);
  Status ParsePostgres(const Entry& section, const std::string& address, PairRegion& region);
  Status ParseDns(const Entry& section, PairDns& dns);
  // Every part has tls files exactly when the pair has a tls section.
  Status CheckTls(const Map& top, const PairConfig& p) const;

  // Integer `name` of `m`, when written, into `out`.
  Status OptionalInt(const Map& m, std::string_view name, int min, int max, int& out) const;

  const Reader& r_;
  yaml_util::Listeners listeners_;
};

Status Parser::Parse(const YAML::Node& root, PairConfig& p) {
  Entry top{.name = "", .key = "", .key_node = root, .value = root};
  ASSIGN_OR_RETURN(
      Map m, r_.ReadMap(top, {"pair", "control", "regions", "secrets", "platform", "dns", "tls"}));
  // Sections in the order the file gives them, so errors come roughly in file order.
  for (const Entry& section : m.entries) {
    if (section.name == "pair") {
      RETURN_IF_ERROR(ParsePair(section, p));
    } else if (section.name == "control") {
      RETURN_IF_ERROR(ParseControl(section, p.control));
    } else if (section.name == "regions") {
      RETURN_IF_ERROR(ParseRegions(section, p));
    } else if (section.name == "secrets") {
      RETURN_IF_ERROR(
          yaml_util::ReadSecrets(r_, section, p.secret_key_file, p.secret_key, p.owner_token_file));
    } else if (section.name == "platform") {
      RETURN_IF_ERROR(yaml_util::ReadPlatform(r_, section, p.zone));
    } else if (section.name == "dns") {
      RETURN_IF_ERROR(ParseDns(section, p.dns.emplace()));
    } else if (section.name == "tls") {
      ASSIGN_OR_RETURN(Map t, r_.ReadMap(section, {"ca_file"}));
      p.tls_ca_file.emplace();
      if (const Entry* e = t.Find("ca_file")) {
        ASSIGN_OR_RETURN(*p.tls_ca_file, r_.Path(*e));
      }
    }
  }
  for (std::string_view required : {"pair", "control", "regions", "secrets"}) {
    if (m.Find(required) == nullptr) return r_.Missing(std::string(required));
  }
  RETURN_IF_ERROR(CheckTls(m, p));
  if (p.dns && p.regions[0].http_port != p.regions[1].http_port) {
    return r_.Error(m.Find("dns")->key_node.Mark(),
                    "dns: the regions serve HTTP on different ports (" +
                        std::to_string(p.regions[0].http_port) + ", " +
                        std::to_string(p.regions[1].http_port) +
                        "); host names carry no port, so both must listen on the same one");
  }
  return listeners_.Check(r_);
}

Status Parser::CheckTls(const Map& top, const PairConfig& p) const {
  const std::pair<std::string, const std::optional<TlsSettings>*> parts[] = {
      {"control", &p.control.tls},
      {"regions[0]", &p.regions[0].tls},
      {"regions[1]", &p.regions[1].tls}};
  for (const auto& [part, tls] : parts) {
    if (p.tls_ca_file && !*tls) return r_.Missing(part + ".tls");
    if (!p.tls_ca_file && *tls) {
      return r_.Error(top.Find(part == "control" ? "control" : "regions")->key_node.Mark(),
                      part + ".tls: given, but the pair has no tls section");
    }
  }
  return Status::Ok();
}

Status Parser::OptionalInt(const Map& m, std::string_view name, int min, int max, int& out) const {
  if (const Entry* e = m.Find(name)) {
    ASSIGN_OR_RETURN(out, r_.Int(*e, min, max));
  }
  return Status::Ok();
}

Status Parser::ParsePair(const Entry& section, PairConfig& p) const {
  ASSIGN_OR_RETURN(
      Map m,
      r_.ReadMap(section, {"name", "mode", "synchronous_degrade_after_ms", "automatic_failover",
                           "health_interval_ms", "detection_misses", "lease_ms", "lease_renew_ms",
                           "lease_margin_ms", "drain_timeout_seconds", "planned_timeout_seconds",
                           "image_replication_timeout_seconds"}));
  ASSIGN_OR_RETURN(const Entry* name, r_.Required(m, section, "name"));
  ASSIGN_OR_RETURN(p.name, r_.Name(*name));
  if (const Entry* e = m.Find("mode")) {
    ASSIGN_OR_RETURN(p.mode, r_.OneOf(*e, {"asynchronous", "synchronous"}));
  }
  RETURN_IF_ERROR(
      OptionalInt(m, "synchronous_degrade_after_ms", 100, 600000, p.synchronous_degrade_after_ms));
  if (const Entry* e = m.Find("automatic_failover")) {
    ASSIGN_OR_RETURN(p.automatic_failover, r_.Bool(*e));
  }
  RETURN_IF_ERROR(OptionalInt(m, "health_interval_ms", 50, 60000, p.health_interval_ms));
  RETURN_IF_ERROR(OptionalInt(m, "detection_misses", 1, 1000, p.detection_misses));
  RETURN_IF_ERROR(OptionalInt(m, "lease_ms", 500, kMaxLeaseMs, p.lease_ms));
  RETURN_IF_ERROR(OptionalInt(m, "lease_renew_ms", 50, kMaxLeaseMs, p.lease_renew_ms));
  RETURN_IF_ERROR(OptionalInt(m, "lease_margin_ms", 0, kMaxLeaseMs, p.lease_margin_ms));
  RETURN_IF_ERROR(
      OptionalInt(m, "drain_timeout_seconds", 0, kMaxTimeoutSeconds, p.drain_timeout_seconds));
  RETURN_IF_ERROR(
      OptionalInt(m, "planned_timeout_seconds", 1, kMaxTimeoutSeconds, p.planned_timeout_seconds));
  RETURN_IF_ERROR(OptionalInt(m, "image_replication_timeout_seconds", 1, 3600,
                              p.image_replication_timeout_seconds));

  // Relations between keys, written or default. An error points at the last key of `keys` that
  // was written (the one that depends on the others); one was, or the defaults would have passed.
  auto at = [&m](std::initializer_list<std::string_view> keys) {
    YAML::Mark mark = YAML::Mark::null_mark();
    for (std::string_view k : keys) {
      if (const Entry* e = m.Find(k); e != nullptr) mark = e->key_node.Mark();
    }
    return mark;
  };
  auto n = [](int v) { return " (" + std::to_string(v) + ")"; };
  // Renewing at least twice per lease leaves one renewal to be lost without losing the lease.
  if (p.lease_renew_ms * 2 >= p.lease_ms) {
    return r_.Error(at({"lease_ms", "lease_renew_ms"}),
                    "pair.lease_renew_ms" + n(p.lease_renew_ms) +
                        " must be less than half of pair.lease_ms" + n(p.lease_ms));
  }
  // The holder must still hold a lease it has just renewed when the next renewal is due.
  if (p.lease_margin_ms >= p.lease_ms - p.lease_renew_ms) {
    return r_.Error(at({"lease_ms", "lease_renew_ms", "lease_margin_ms"}),
                    "pair.lease_margin_ms" + n(p.lease_margin_ms) +
                        " must be less than pair.lease_ms - pair.lease_renew_ms" +
                        n(p.lease_ms - p.lease_renew_ms));
  }
  if (p.planned_timeout_seconds <= p.drain_timeout_seconds) {
    return r_.Error(at({"drain_timeout_seconds", "planned_timeout_seconds"}),
                    "pair.planned_timeout_seconds" + n(p.planned_timeout_seconds) +
                        " must be more than pair.drain_timeout_seconds" +
                        n(p.drain_timeout_seconds));
  }
  return Status::Ok();
}

Status Parser::ParseControl(const Entry& section, PairControl& control) {
  ASSIGN_OR_RETURN(Map m, r_.ReadMap(section, {"address", "http_port", "state_dir", "tls"}));
  ASSIGN_OR_RETURN(const Entry* address, r_.Required(m, section, "address"));
  ASSIGN_OR_RETURN(control.address, r_.Ipv4(*address));
  ASSIGN_OR_RETURN(const Entry* http_port, r_.Required(m, section, "http_port"));
  ASSIGN_OR_RETURN(control.http_port, r_.Int(*http_port, 1, kMaxPort));
  ASSIGN_OR_RETURN(const Entry* state_dir, r_.Required(m, section, "state_dir"));
  ASSIGN_OR_RETURN(control.state_dir, r_.Path(*state_dir));
  listeners_.Add(*http_port, control.address, control.http_port);
  if (const Entry* e = m.Find("tls")) {
    ASSIGN_OR_RETURN(control.tls, yaml_util::ReadTls(r_, *e, /*with_ca=*/false));
  }
  return Status::Ok();
}

Status Parser::ParseDns(const Entry& section, PairDns& dns) {
  ASSIGN_OR_RETURN(
      Map m, r_.ReadMap(section, {"address", "port", "managed", "ttl_seconds", "run_as", "tsig"}));
  ASSIGN_OR_RETURN(const Entry* address, r_.Required(m, section, "address"));
  ASSIGN_OR_RETURN(dns.address, r_.Ipv4(*address));
  ASSIGN_OR_RETURN(const Entry* port, r_.Required(m, section, "port"));
  ASSIGN_OR_RETURN(dns.port, r_.Int(*port, 1, kMaxPort));
  if (const Entry* e = m.Find("managed")) {
    ASSIGN_OR_RETURN(dns.managed, r_.Bool(*e));
  }
  RETURN_IF_ERROR(OptionalInt(m, "ttl_seconds", 1, 86400, dns.ttl_seconds));
  if (const Entry* e = m.Find("run_as")) {
    ASSIGN_OR_RETURN(dns.run_as, r_.NonEmpty(*e));
  }
  if (const Entry* e = m.Find("tsig")) {
    ASSIGN_OR_RETURN(Map t, r_.ReadMap(*e, {"name", "algorithm", "secret_file"}));
    if (const Entry* n = t.Find("name")) {
      ASSIGN_OR_RETURN(dns.tsig_name, yaml_util::DnsName(r_, *n));
    }
    if (const Entry* a = t.Find("algorithm")) {
      ASSIGN_OR_RETURN(dns.tsig_algorithm,
                       r_.OneOf(*a, {"hmac-sha256", "hmac-sha384", "hmac-sha512"}));
    }
    ASSIGN_OR_RETURN(const Entry* secret, r_.Required(t, *e, "secret_file"));
    ASSIGN_OR_RETURN(dns.tsig_secret_file, r_.Path(*secret));
  } else if (!dns.managed) {
    return r_.Error(section.key_node.Mark(), "dns.tsig: required when dns.managed is false");
  }
  // A managed server listens there; an external one is someone else's (it may share a host).
  if (dns.managed) listeners_.Add(*port, dns.address, dns.port);
  return Status::Ok();
}

Status Parser::ParseRegions(const Entry& section, PairConfig& p) {
  if (!section.value.IsSequence()) return r_.Invalid(section, "a list of two regions");
  if (section.value.size() != p.regions.size()) {
    return r_.Error(section.key_node.Mark(), "regions: expected exactly two regions, got " +
                                                 std::to_string(section.value.size()));
  }
  std::array<RegionMarks, 2> marks;
  for (size_t i = 0; i < p.regions.size(); ++i) {
    ASSIGN_OR_RETURN(marks[i], ParseRegion(Reader::Item(section, i), p.regions[i]));
  }
  if (p.regions[0].name == p.regions[1].name) {
    return r_.Error(marks[1].name,
                    "regions[1].name: expected a name other than regions[0]'s, "
                    "got \"" +
                        p.regions[1].name + "\"");
  }
  const bool first = p.regions[0].role == kPrimary;
  const bool second = p.regions[1].role == kPrimary;
  if (first && second) {
    return r_.Error(marks[1].role,
                    "regions[1].role: exactly one region must be the primary, and regions[0] is");
  }
  if (!first && !second) {
    return r_.Error(section.key_node.Mark(),
                    "regions: exactly one region must be the primary, got none");
  }
  return Status::Ok();
}

Result<RegionMarks> Parser::ParseRegion(const Entry& item, PairRegion& region) {
  ASSIGN_OR_RETURN(Map m, r_.ReadMap(item, {"name", "address", "http_port", "state_dir", "role",
                                            "postgres", "workers", "http", "limits", "log",
                                            "registry", "task_logs", "tls"}));
  RegionMarks marks;
  ASSIGN_OR_RETURN(const Entry* name, r_.Required(m, item, "name"));
  ASSIGN_OR_RETURN(region.name, r_.Name(*name));
  marks.name = name->key_node.Mark();

  ASSIGN_OR_RETURN(const Entry* address, r_.Required(m, item, "address"));
  ASSIGN_OR_RETURN(region.address, r_.Ipv4(*address));

  ASSIGN_OR_RETURN(const Entry* http_port, r_.Required(m, item, "http_port"));
  ASSIGN_OR_RETURN(region.http_port, r_.Int(*http_port, 1, kMaxPort));
  listeners_.Add(*http_port, region.address, region.http_port);

  ASSIGN_OR_RETURN(const Entry* state_dir, r_.Required(m, item, "state_dir"));
  ASSIGN_OR_RETURN(region.state_dir, r_.Path(*state_dir));

  ASSIGN_OR_RETURN(const Entry* role, r_.Required(m, item, "role"));
  ASSIGN_OR_RETURN(region.role, r_.OneOf(*role, {kPrimary, kStandby}));
  marks.role = role->key_node.Mark();

  ASSIGN_OR_RETURN(const Entry* postgres, r_.Required(m, item, "postgres"));
  RETURN_IF_ERROR(ParsePostgres(*postgres, region.address, region));

  if (const Entry* e = m.Find("workers")) {
    RETURN_IF_ERROR(yaml_util::ReadWorkers(r_, *e, region.local_workers, region.worker_slots,
                                           region.heartbeat_ms, region.task_nice,
                                           region.task_token_ttl_seconds, region.task_uid_base));
  }
  if (const Entry* e = m.Find("http")) {
    RETURN_IF_ERROR(yaml_util::ReadHttp(r_, *e, region.http_threads));
  }
  if (const Entry* e = m.Find("limits")) {
    RETURN_IF_ERROR(yaml_util::ReadLimits(r_, *e, region.max_value_bytes, region.max_body_bytes));
  }
  if (const Entry* e = m.Find("log")) {
    RETURN_IF_ERROR(yaml_util::ReadLog(r_, *e, region.log_level));
  }
  if (const Entry* e = m.Find("registry")) {
    Entry port;
    ASSIGN_OR_RETURN(region.registry, yaml_util::ReadRegistry(r_, *e, port));
    listeners_.Add(port, region.address, region.registry->port);
  }
  if (const Entry* e = m.Find("task_logs")) {
    RETURN_IF_ERROR(yaml_util::ReadTaskLogs(r_, *e, region.task_logs));
  }
  if (const Entry* e = m.Find("tls")) {
    ASSIGN_OR_RETURN(region.tls, yaml_util::ReadTls(r_, *e, /*with_ca=*/false));
  }
  return marks;
}

Status Parser::ParsePostgres(const Entry& section, const std::string& address, PairRegion& region) {
  ASSIGN_OR_RETURN(
      Map m, r_.ReadMap(section, {"port", "bin_dir", "run_as", "shared_buffers", "max_connections",
                                  "connect_timeout_seconds", "pool_size"}));
  ASSIGN_OR_RETURN(region.postgres, yaml_util::ReadManagedKeys(r_, m, section));
  // Found: ReadManagedKeys needs it.
  listeners_.Add(*m.Find("port"), address, region.postgres.port);
  return yaml_util::ReadPoolKeys(r_, m, region.connect_timeout_seconds, region.pool_size);
}

}  // namespace

Result<PairConfig> LoadPairConfig(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  return ParsePairConfig(text, path);
}

Result<PairConfig> ParsePairConfig(const std::string& yaml_text,
                                   const std::string& path_for_messages) {
  return yaml_util::ParseText<PairConfig>(
      yaml_text, path_for_messages, [](const Reader& r, const YAML::Node& root, PairConfig& p) {
        return Parser(r).Parse(root, p);
      });
}

std::string RenderPairConfig(const PairConfig& p) {
  using yaml_util::EmitInt;
  using yaml_util::EmitString;
  YAML::Emitter out;
  out << YAML::Comment("tandem pair configuration; see docs/configuration.md");
  out << YAML::BeginMap;

  out << YAML::Key << "pair" << YAML::Value << YAML::BeginMap;
  EmitString(out, "name", p.name);
  EmitString(out, "mode", p.mode);
  EmitInt(out, "synchronous_degrade_after_ms", p.synchronous_degrade_after_ms);
  yaml_util::EmitBool(out, "automatic_failover", p.automatic_failover);
  EmitInt(out, "health_interval_ms", p.health_interval_ms);
  EmitInt(out, "detection_misses", p.detection_misses);
  EmitInt(out, "lease_ms", p.lease_ms);
  EmitInt(out, "lease_renew_ms", p.lease_renew_ms);
  EmitInt(out, "lease_margin_ms", p.lease_margin_ms);
  EmitInt(out, "drain_timeout_seconds", p.drain_timeout_seconds);
  EmitInt(out, "planned_timeout_seconds", p.planned_timeout_seconds);
  EmitInt(out, "image_replication_timeout_seconds", p.image_replication_timeout_seconds);
  out << YAML::EndMap;

  out << YAML::Key << "control" << YAML::Value << YAML::BeginMap;
  EmitString(out, "address", p.control.address);
  EmitInt(out, "http_port", p.control.http_port);
  EmitString(out, "state_dir", p.control.state_dir);
  if (p.control.tls) yaml_util::EmitTls(out, *p.control.tls, /*with_ca=*/false);
  out << YAML::EndMap;

  yaml_util::EmitSecrets(out, p.secret_key_file, p.secret_key, p.owner_token_file);
  yaml_util::EmitPlatform(out, p.zone);
  if (p.dns) {
    out << YAML::Key << "dns" << YAML::Value << YAML::BeginMap;
    EmitString(out, "address", p.dns->address);
    EmitInt(out, "port", p.dns->port);
    yaml_util::EmitBool(out, "managed", p.dns->managed);
    EmitInt(out, "ttl_seconds", p.dns->ttl_seconds);
    if (!p.dns->run_as.empty()) EmitString(out, "run_as", p.dns->run_as);
    if (!p.dns->tsig_secret_file.empty()) {
      out << YAML::Key << "tsig" << YAML::Value << YAML::BeginMap;
      EmitString(out, "name", p.dns->tsig_name);
      EmitString(out, "algorithm", p.dns->tsig_algorithm);
      EmitString(out, "secret_file", p.dns->tsig_secret_file);
      out << YAML::EndMap;
    }
    out << YAML::EndMap;
  }
  if (p.tls_ca_file) {
    out << YAML::Key << "tls" << YAML::Value << YAML::BeginMap;
    if (!p.tls_ca_file->empty()) EmitString(out, "ca_file", *p.tls_ca_file);
    out << YAML::EndMap;
  }

  out << YAML::Key << "regions" << YAML::Value << YAML::BeginSeq;
  for (const PairRegion& r : p.regions) {
    out << YAML::BeginMap;
    EmitString(out, "name", r.name);
    EmitString(out, "address", r.address);
    EmitInt(out, "http_port", r.http_port);
    EmitString(out, "state_dir", r.state_dir);
    EmitString(out, "role", r.role);
    out << YAML::Key << "postgres" << YAML::Value << YAML::BeginMap;
    yaml_util::EmitManagedKeys(out, r.postgres);
    EmitInt(out, "connect_timeout_seconds", r.connect_timeout_seconds);
    EmitInt(out, "pool_size", r.pool_size);
    out << YAML::EndMap;
    yaml_util::EmitWorkers(out, r.local_workers, r.worker_slots, r.heartbeat_ms, r.task_nice,
                           r.task_token_ttl_seconds, r.task_uid_base);
    yaml_util::EmitHttp(out, r.http_threads);
    yaml_util::EmitLimits(out, r.max_value_bytes, r.max_body_bytes);
    yaml_util::EmitLog(out, r.log_level);
    if (r.registry) yaml_util::EmitRegistry(out, *r.registry);
    yaml_util::EmitTaskLogs(out, r.task_logs);
    if (r.tls) yaml_util::EmitTls(out, *r.tls, /*with_ca=*/false);
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;

  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

Result<RegionConfig> RegionConfigFor(const PairConfig& p, const std::string& region_name) {
  size_t i = 0;
  while (i < p.regions.size() && p.regions[i].name != region_name) ++i;
  if (i == p.regions.size()) {
    return NotFound((p.path.empty() ? "" : p.path + ": ") + "the pair " + p.name +
                    " has no region named \"" + region_name + "\"; its regions are " +
                    p.regions[0].name + " and " + p.regions[1].name);
  }
  const PairRegion& r = p.regions[i];
  const PairRegion& other = p.regions[1 - i];

  RegionConfig c;
  c.path = p.path;
  c.name = r.name;
  c.address = r.address;
  c.http_port = r.http_port;
  c.state_dir = r.state_dir;
  c.peers = {other.address};
  c.managed = r.postgres;
  c.connect_timeout_seconds = r.connect_timeout_seconds;
  c.pool_size = r.pool_size;
  c.secret_key_file = p.secret_key_file;
  c.secret_key = p.secret_key;
  c.owner_token_file = p.owner_token_file;
  c.max_value_bytes = r.max_value_bytes;
  c.max_body_bytes = r.max_body_bytes;
  c.log_level = r.log_level;
  c.http_threads = r.http_threads;
  c.local_workers = r.local_workers;
  c.worker_slots = r.worker_slots;
  c.heartbeat_ms = r.heartbeat_ms;
  c.task_nice = r.task_nice;
  c.task_token_ttl_seconds = r.task_token_ttl_seconds;
  c.task_uid_base = r.task_uid_base;
  c.zone = p.zone;
  c.registry = r.registry;
  c.task_logs = r.task_logs;
  if (r.tls) {
    c.tls = *r.tls;
    c.tls->ca_file = p.tls_ca_file.value_or("");
  }
  const std::string scheme = p.tls_ca_file ? "https://" : "http://";
  c.dr = DrSettings{
      .pair = p.name,
      .control_url = scheme + p.control.address + ":" + std::to_string(p.control.http_port),
      .peer = DrPeer{.name = other.name,
                     .address = other.address,
                     .http_port = other.http_port,
                     .pg_port = other.postgres.port,
                     .registry_port = other.registry ? other.registry->port : 0,
                     .tls = p.tls_ca_file.has_value()},
      .initial_role = r.role,
      .lease_ms = p.lease_ms,
      .lease_renew_ms = p.lease_renew_ms,
      .lease_margin_ms = p.lease_margin_ms,
      .mode = p.mode,
      .synchronous_degrade_after_ms = p.synchronous_degrade_after_ms,
      .image_replication_timeout_seconds = p.image_replication_timeout_seconds,
  };
  return c;
}

}  // namespace tandem::region
