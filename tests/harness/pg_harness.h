// A real PostgreSQL for tests: one server per test process, in a temporary directory on a free
// loopback port, run as the unprivileged `tandem` user when the tests run as root. Each test
// takes a fresh database from it. The server is stopped and its directory removed when the
// process exits (and, through its parent-death signal, even when the test process crashes).
#pragma once

#include <memory>
#include <string>

#include "pg/server.h"

namespace tandem::testing {

class PgHarness {
 public:
  // Starts the server on first use. Aborts the test process if it cannot.
  static PgHarness& Get();

  // A new, empty database; returns its connection string.
  std::string NewDatabase();
  pg::Server& server() { return *server_; }
  const std::string& dir() const { return dir_; }
  int port() const { return port_; }

  // Stops the server and removes its directory (called at exit).
  void Shutdown();

 private:
  PgHarness() = default;
  std::string dir_;
  int port_ = 0;
  pg::ServerPtr server_;
  int next_db_ = 0;
};

// The system user PostgreSQL runs as in tests ("" when not root).
std::string RunAsUser();

}  // namespace tandem::testing
