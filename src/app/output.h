// How the CLI speaks: tables for people, JSON for scripts, and the one mapping from errors to
// exit codes.
//
// Exit codes: 0 success; 1 a failure in tandem or PostgreSQL; 2 bad input (usage, invalid
// value, malformed request); 3 the platform or a dependency is unavailable; 4 not found;
// 5 conflict (the name or key exists already).
#pragma once

#include <string>
#include <vector>

#include "app/client.h"
#include "base/status.h"

namespace tandem::app {

enum class Format { kTable, kJson };

int ExitCodeFor(Code code);
int ExitCodeForHttp(int status);

// Prints "error: <message>" to stderr; returns the exit code.
int Fail(const Status& s);
// For an HTTP error answer: prints its detail; returns the exit code.
int FailHttp(const HttpResult& r);

// Prints rows as an aligned table with a header.
void PrintTable(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows);

}  // namespace tandem::app
