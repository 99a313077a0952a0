#include "model/validate.h"

#include <algorithm>
#include <array>
#include <cctype>

namespace tandem::model {
namespace {

std::string Quoted(std::string_view s) {
  std::string q(s.substr(0, 80));
  if (s.size() > 80) q += "...";
  return "\"" + q + "\"";
}

// Characters, not bytes: names may hold any Unicode letter, and Airflow counts characters.
size_t Utf8Length(std::string_view s) {
  return static_cast<size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

bool IsWordChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;  // Python's \w also matches Unicode letters
}

}  // namespace

Status ValidateDeploymentName(std::string_view name) {
  if (name.empty() || name.size() > 40) {
    return InvalidArgument("deployment name must be 1 to 40 characters, got " +
                           std::to_string(name.size()));
  }
  if (!std::islower(static_cast<unsigned char>(name[0]))) {
    return InvalidArgument("deployment name " + Quoted(name) +
                           " must start with a lowercase letter");
  }
  for (char c : name) {
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '-')) {
      return InvalidArgument("deployment name " + Quoted(name) +
                             " may contain only lowercase letters, digits and '-'");
    }
  }
  if (name.back() == '-') {
    return InvalidArgument("deployment name " + Quoted(name) + " must not end with '-'");
  }
  if (LooksLikeUuid(name)) {
    // Deployments are addressed by name or id: a name shaped like an id would be ambiguous.
    return InvalidArgument("deployment name " + Quoted(name) +
                           " must not have the shape of a "
                           "deployment id (a UUID)");
  }
  return Status::Ok();
}

std::string DeriveNamespace(std::string_view name, const DeploymentId& id) {
  std::string hex;
  for (char c : id.value()) {
    if (std::isxdigit(static_cast<unsigned char>(c))) hex.push_back(c);
    if (hex.size() == 6) break;
  }
  return std::string(name) + "-" + hex;
}

Status ValidateConfig(const DeploymentConfig& c) {
  if (c.worker_slots < 1 || c.worker_slots > 4096) {
    return InvalidArgument("config.worker_slots must be from 1 to 4096");
  }
  if (c.default_pool_slots < -1 || c.default_pool_slots > 1000000) {
    return InvalidArgument("config.default_pool_slots must be from -1 (unlimited) to 1000000");
  }
  if (c.schedule.max_active_runs < 1 || c.schedule.max_active_runs > 10000) {
    return InvalidArgument("config.schedule.max_active_runs must be from 1 to 10000");
  }
  if (c.schedule.max_active_tasks < 1 || c.schedule.max_active_tasks > 100000) {
    return InvalidArgument("config.schedule.max_active_tasks must be from 1 to 100000");
  }
  return Status::Ok();
}

Status ValidateMetricsExport(const MetricsExport& m) {
  if (m.format != "prometheus" && m.format != "otlp" && m.format != "statsd") {
    return InvalidArgument("metrics_export.format must be one of prometheus, otlp, statsd; got " +
                           Quoted(m.format));
  }
  if (m.interval_seconds < 1 || m.interval_seconds > 3600) {
    return InvalidArgument("metrics_export.interval_seconds must be from 1 to 3600");
  }
  if (Utf8Length(m.endpoint) > 2048) {
    return InvalidArgument("metrics_export.endpoint is longer than 2048 characters");
  }
  if (m.enabled && m.endpoint.empty()) {
    return InvalidArgument("metrics_export.endpoint is required when metrics export is enabled");
  }
  return Status::Ok();
}

Status ValidateEnvKey(std::string_view key) {
  if (key.empty() || key.size() > 255) {
    return InvalidArgument("env var name must be 1 to 255 characters");
  }
  if (std::isdigit(static_cast<unsigned char>(key[0])) ||
      !std::all_of(key.begin(), key.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
      })) {
    return InvalidArgument("env var name " + Quoted(key) +
                           " must be letters, digits and '_', not starting with a digit");
  }
  for (std::string_view reserved : {"AIRFLOW_CONN_", "AIRFLOW_VAR_", "TANDEM_"}) {
    if (key.substr(0, reserved.size()) == reserved) {
      return InvalidArgument("env var name " + Quoted(key) + " uses the reserved prefix " +
                             std::string(reserved) + " (set connections and variables instead)");
    }
  }
  return Status::Ok();
}

Status ValidateConnId(std::string_view id) {
  if (id.empty() || Utf8Length(id) > 200) {
    return InvalidArgument("connection_id must be 1 to 200 characters");
  }
  for (char c : id) {
    if (!IsWordChar(c) && c != '.' && c != '-') {
      return InvalidArgument("connection_id " + Quoted(id) +
                             " may contain only letters, digits, '_', '.' and '-'");
    }
  }
  return Status::Ok();
}

Status ValidateVariableKey(std::string_view key) {
  if (key.empty() || Utf8Length(key) > 250) {
    return InvalidArgument("variable key must be 1 to 250 characters");
  }
  return Status::Ok();
}

Status ValidatePoolName(std::string_view name) {
  if (name.empty() || Utf8Length(name) > 256) {
    return InvalidArgument("pool name must be 1 to 256 characters");
  }
  return Status::Ok();
}

Status ValidatePoolSlots(int64_t slots) {
  // Airflow allows -1 for an unlimited pool.
  if (slots < -1 || slots > 1000000) {
    return InvalidArgument("slots must be from -1 (unlimited) to 1000000");
  }
  return Status::Ok();
}

Status ValidateSize(std::string_view field, size_t size, size_t limit) {
  if (size > limit) {
    return TooLarge(std::string(field) + " is " + std::to_string(size) +
                    " bytes, more than the limit of " + std::to_string(limit) + " bytes");
  }
  return Status::Ok();
}

bool IsSensitiveName(std::string_view key) {
  static constexpr std::array<std::string_view, 12> kWords = {
      "access_token", "api_key",     "apikey", "authorization", "passphrase",   "passwd",
      "password",     "private_key", "secret", "token",         "keyfile_dict", "service_account"};
  std::string lower(key);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return std::any_of(kWords.begin(), kWords.end(),
                     [&](std::string_view w) { return lower.find(w) != std::string::npos; });
}

bool LooksLikeUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

}  // namespace tandem::model
