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

// Sends one request. Returns the transport error, or the answer whatever its status.
Result<HttpResult> Send(const Globals& g, const std::string& method, const std::string& path,
                        const Json& body);
// Prints a successful answer (JSON, or through `table`), or the error; returns the exit code.
int Print(const Globals& g, const Result<HttpResult>& answer,
          const std::function<void(const Json&)>& table);

// "-" means: read the value from standard input (one trailing newline dropped), so secrets
// need not appear on a command line, where every local user can see them.
std::string ValueOrStdin(const std::string& v);

// "null" -> "", strings as they are, anything else as JSON text.
std::string Cell(const Json& v);

// The Airflow API root of a deployment: /deployments/<deployment>/api/v2
std::string AirflowRoot(const std::string& deployment);

}  // namespace tandem::app
