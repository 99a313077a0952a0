// One request from a CLI command to the region, with the shared handling: connect, send,
// print the error and choose the exit code, or print the answer as JSON or through `table`.
// For the command files only (it includes nlohmann/json).
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "app/commands.h"

namespace tandem::app {

using Json = nlohmann::json;

int Call(const Globals& g, const std::string& method, const std::string& path, const Json& body,
         const std::function<void(const Json&)>& table);

// Like Call, but returns the answer instead of printing it (for commands of several steps).
// On an error, prints it and sets *exit_code.
std::optional<Json> CallQuiet(const Globals& g, const std::string& method,
                              const std::string& path, const Json& body, int* exit_code,
                              int* http_status = nullptr, bool print_errors = true);

// "null" -> "", strings as they are, anything else as JSON text.
std::string Cell(const Json& v);

// The Airflow API root of a deployment: /deployments/<deployment>/api/v2
std::string AirflowRoot(const std::string& deployment);

}  // namespace tandem::app
