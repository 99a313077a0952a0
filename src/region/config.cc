// The region file: its sections, read with the walk shared with the pair file (yaml_util.h).
#include "region/config.h"

#include <yaml-cpp/yaml.h>

#include <optional>
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

// One parse of one region file. Notes where the ports were written along the way: they all
// listen on region.address, which the file may give after them.
class Parser {
 public:
  explicit Parser(const Reader& r) : r_(r) {}

  // REQUIRES: `c` holds the defaults; fills in what the file says.
  Status Parse(const YAML::Node& root, RegionConfig& c);

 private:
  Status ParseRegion(const Entry& section, RegionConfig& c);
  Status ParsePostgres(const Entry& section, RegionConfig& c);
  Result<ManagedPostgres> ParseManaged(const Entry& section);
  Result<std::string> ParseExternal(const Entry& section) const;
  // No two of the region's listeners on one port.
  Status CheckListeners(const RegionConfig& c) const;

  const Reader& r_;
  std::optional<Entry> http_port_;      // region.http_port
  std::optional<Entry> postgres_port_;  // postgres.managed.port
  std::optional<Entry> registry_port_;  // registry.port
};

Status Parser::Parse(const YAML::Node& root, RegionConfig& c) {
  Entry top{.name = "", .key = "", .key_node = root, .value = root};
  ASSIGN_OR_RETURN(Map m, r_.ReadMap(top, {"region", "postgres", "secrets", "limits", "log", "http",
                                           "workers", "platform", "registry", "task_logs", "tls"}));
  // Sections in the order the file gives them, so errors come roughly in file order.
  for (const Entry& section : m.entries) {
    if (section.name == "region") {
      RETURN_IF_ERROR(ParseRegion(section, c));
    } else if (section.name == "postgres") {
      RETURN_IF_ERROR(ParsePostgres(section, c));
    } else if (section.name == "secrets") {
      RETURN_IF_ERROR(
          yaml_util::ReadSecrets(r_, section, c.secret_key_file, c.secret_key, c.owner_token_file));
    } else if (section.name == "limits") {
      RETURN_IF_ERROR(yaml_util::ReadLimits(r_, section, c.max_value_bytes, c.max_body_bytes));
    } else if (section.name == "log") {
      RETURN_IF_ERROR(yaml_util::ReadLog(r_, section, c.log_level));
    } else if (section.name == "http") {
      RETURN_IF_ERROR(yaml_util::ReadHttp(r_, section, c.http_threads));
    } else if (section.name == "workers") {
      RETURN_IF_ERROR(yaml_util::ReadWorkers(r_, section, c.local_workers, c.worker_slots,
                                             c.heartbeat_ms, c.task_nice, c.task_token_ttl_seconds,
                                             c.task_uid_base));
    } else if (section.name == "platform") {
      RETURN_IF_ERROR(yaml_util::ReadPlatform(r_, section, c.zone));
    } else if (section.name == "registry") {
      registry_port_.emplace();
      ASSIGN_OR_RETURN(c.registry, yaml_util::ReadRegistry(r_, section, *registry_port_));
    } else if (section.name == "task_logs") {
      RETURN_IF_ERROR(yaml_util::ReadTaskLogs(r_, section, c.task_logs));
    } else if (section.name == "tls") {
      ASSIGN_OR_RETURN(c.tls, yaml_util::ReadTls(r_, section, /*with_ca=*/true));
    }
  }
  for (std::string_view required : {"region", "postgres", "secrets"}) {
    if (m.Find(required) == nullptr) return r_.Missing(std::string(required));
  }
  return CheckListeners(c);
}

Status Parser::CheckListeners(const RegionConfig& c) const {
  yaml_util::Listeners listeners;
  listeners.Add(*http_port_, c.address, c.http_port);  // set: region.http_port is required
  if (postgres_port_ && c.managed) listeners.Add(*postgres_port_, c.address, c.managed->port);
  if (registry_port_ && c.registry) listeners.Add(*registry_port_, c.address, c.registry->port);
  return listeners.Check(r_);
}

Status Parser::ParseRegion(const Entry& section, RegionConfig& c) {
  ASSIGN_OR_RETURN(Map m,
                   r_.ReadMap(section, {"name", "address", "http_port", "state_dir", "peers"}));

  ASSIGN_OR_RETURN(const Entry* name, r_.Required(m, section, "name"));
  ASSIGN_OR_RETURN(c.name, r_.Name(*name));

  ASSIGN_OR_RETURN(const Entry* address, r_.Required(m, section, "address"));
  ASSIGN_OR_RETURN(c.address, r_.Ipv4(*address));

  ASSIGN_OR_RETURN(const Entry* http_port, r_.Required(m, section, "http_port"));
  ASSIGN_OR_RETURN(c.http_port, r_.Int(*http_port, 1, kMaxPort));
  http_port_ = *http_port;

  ASSIGN_OR_RETURN(const Entry* state_dir, r_.Required(m, section, "state_dir"));
  ASSIGN_OR_RETURN(c.state_dir, r_.Path(*state_dir));

  if (const Entry* peers = m.Find("peers")) {
    if (!peers->value.IsSequence()) return r_.Invalid(*peers, "a list of dotted IPv4 addresses");
    c.peers.clear();
    for (size_t i = 0; i < peers->value.size(); ++i) {
      ASSIGN_OR_RETURN(std::string ip, r_.Ipv4(Reader::Item(*peers, i)));
      c.peers.push_back(std::move(ip));
    }
  }
  return Status::Ok();
}

Status Parser::ParsePostgres(const Entry& section, RegionConfig& c) {
  ASSIGN_OR_RETURN(
      Map m, r_.ReadMap(section, {"managed", "external", "connect_timeout_seconds", "pool_size"}));
  const Entry* managed = m.Find("managed");
  const Entry* external = m.Find("external");
  if ((managed == nullptr) == (external == nullptr)) {
    return r_.Error(section.key_node.Mark(),
                    "postgres: exactly one of managed or external is required");
  }
  if (managed != nullptr) {
    ASSIGN_OR_RETURN(c.managed, ParseManaged(*managed));
  } else {
    ASSIGN_OR_RETURN(c.external_dsn, ParseExternal(*external));
  }
  return yaml_util::ReadPoolKeys(r_, m, c.connect_timeout_seconds, c.pool_size);
}

Result<ManagedPostgres> Parser::ParseManaged(const Entry& section) {
  ASSIGN_OR_RETURN(Map m, r_.ReadMap(section, {"port", "bin_dir", "run_as", "shared_buffers",
                                               "max_connections"}));
  ASSIGN_OR_RETURN(ManagedPostgres pg, yaml_util::ReadManagedKeys(r_, m, section));
  postgres_port_ = *m.Find("port");  // found: ReadManagedKeys needs it
  return pg;
}

Result<std::string> Parser::ParseExternal(const Entry& section) const {
  ASSIGN_OR_RETURN(Map m, r_.ReadMap(section, {"dsn"}));
  ASSIGN_OR_RETURN(const Entry* dsn, r_.Required(m, section, "dsn"));
  return r_.NonEmpty(*dsn);
}

}  // namespace

std::string RegionConfig::url() const {
  return (tls ? "https://" : "http://") + address + ":" + std::to_string(http_port);
}

std::string DrPeer::url() const {
  return (tls ? "https://" : "http://") + address + ":" + std::to_string(http_port);
}

std::string DrPeer::registry_url() const {
  return (tls ? "https://" : "http://") + address + ":" + std::to_string(registry_port);
}

Result<RegionConfig> LoadRegionConfig(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  return ParseRegionConfig(text, path);
}

Result<RegionConfig> ParseRegionConfig(const std::string& yaml_text,
                                       const std::string& path_for_messages) {
  return yaml_util::ParseText<RegionConfig>(
      yaml_text, path_for_messages, [](const Reader& r, const YAML::Node& root, RegionConfig& c) {
        return Parser(r).Parse(root, c);
      });
}

std::string RenderRegionConfig(const RegionConfig& c) {
  using yaml_util::EmitInt;
  using yaml_util::EmitString;
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
    yaml_util::EmitManagedKeys(out, *c.managed);
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

  yaml_util::EmitSecrets(out, c.secret_key_file, c.secret_key, c.owner_token_file);
  yaml_util::EmitLimits(out, c.max_value_bytes, c.max_body_bytes);
  yaml_util::EmitLog(out, c.log_level);
  yaml_util::EmitHttp(out, c.http_threads);
  yaml_util::EmitWorkers(out, c.local_workers, c.worker_slots, c.heartbeat_ms, c.task_nice,
                         c.task_token_ttl_seconds, c.task_uid_base);
  yaml_util::EmitPlatform(out, c.zone);
  if (c.registry) yaml_util::EmitRegistry(out, *c.registry);
  yaml_util::EmitTaskLogs(out, c.task_logs);
  if (c.tls) yaml_util::EmitTls(out, *c.tls, /*with_ca=*/true);

  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace tandem::region
