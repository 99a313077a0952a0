// Rules for names and values, shared by the API and the CLI so both say the same thing.
// Each returns InvalidArgument (or TooLarge) with a sentence naming the field.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"
#include "model/deployment.h"

namespace tandem::model {

// 8-4-4-4-12 hex digits: the shape of a deployment id (and of any UUID).
bool LooksLikeUuid(std::string_view s);

// Deployment names become DNS labels: 1-40 characters of a-z, 0-9 and '-', starting with a
// letter and not ending with '-'.
Status ValidateDeploymentName(std::string_view name);
// The namespace of a new deployment: "<name>-<first 6 hex digits of its id>".
std::string DeriveNamespace(std::string_view name, const DeploymentId& id);
Status ValidateConfig(const DeploymentConfig& c);
Status ValidateMetricsExport(const MetricsExport& m);

// Env var keys: POSIX shell names, 1-255 characters; the AIRFLOW_CONN_, AIRFLOW_VAR_ and
// TANDEM_ prefixes are reserved for what tandem derives itself.
Status ValidateEnvKey(std::string_view key);
// Airflow's rules: connection_id ^[\w.-]+$ up to 200; variable key up to 250; pool name up to
// 256 and not empty.
Status ValidateConnId(std::string_view id);
Status ValidateVariableKey(std::string_view key);
Status ValidatePoolName(std::string_view name);
Status ValidatePoolSlots(int64_t slots);
// `field` of `size` bytes against the region's limit.
Status ValidateSize(std::string_view field, size_t size, size_t limit);

// Airflow's list of words that mark a variable or an extra field as sensitive.
bool IsSensitiveName(std::string_view key);

}  // namespace tandem::model
