// Control of one PostgreSQL server, behind one interface.
//
// The region agent owns a Server: it initialises it, starts it, keeps it running and stops it
// on shutdown. Failover (issue #4) adds promote, rewind and base backup here; the control plane
// never reaches into a region's database, it asks the region agent, which calls this.
//
// Implementations:
//   LocalServer    - a server this process manages: initdb into a directory, `postgres` as a
//                    child process (as an unprivileged user when we run as root).
//   ExternalServer - a server someone else runs, reached by a connection string.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"

namespace tandem::pg {

struct ServerState {
  bool running = false;  // accepting connections
  int restarts = 0;      // times the supervisor restarted it after it died
  std::string detail;    // a sentence for /readyz and logs
};

class Server {
 public:
  virtual ~Server() = default;

  // Idempotent: creates the cluster when there is none yet.
  virtual Status Init() = 0;
  // Starts the server and waits until it accepts connections (or `timeout`).
  virtual Status Start(std::chrono::milliseconds timeout) = 0;
  // Stops it cleanly (fast shutdown); idempotent.
  virtual Status Stop() = 0;
  // Called periodically by the owner: restarts the server if it died. OK if running.
  virtual Status Supervise() = 0;
  virtual ServerState State() = 0;
  // A libpq connection string for `database`.
  virtual std::string Dsn(const std::string& database) const = 0;
};

using ServerPtr = std::unique_ptr<Server>;

struct LocalServerOptions {
  std::string data_dir;  // PGDATA; its parent holds the log and the password file
  std::string bin_dir = "/usr/lib/postgresql/15/bin";
  std::string host = "127.0.0.1";
  int port = 5432;
  std::string superuser = "tandem";
  std::string run_as;                       // system user; required when running as root
  std::vector<std::string> replication_from;  // peer addresses allowed to stream from us
  std::string shared_buffers = "32MB";
  int max_connections = 100;
};

// The server manages its own password: generated at Init into <parent of data_dir>/pg.password
// (mode 0600) and used in Dsn().
Result<ServerPtr> NewLocalServer(LocalServerOptions opts);
Result<ServerPtr> NewExternalServer(std::string dsn);

}  // namespace tandem::pg
