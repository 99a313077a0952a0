// Child processes: started by PID, stopped by PID, never left behind.
//
// A Child owns one child process. Its destructor does not kill the process (a server is
// stopped by its owner, on purpose, with the signal it needs); call Stop() for that.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

namespace tandem {

struct SpawnOptions {
  std::vector<std::string> argv;                 // argv[0] is the program path
  std::map<std::string, std::string> env_extra;  // added to (or replacing in) this environment
  std::optional<std::string> user;               // run as this user (requires root)
  std::string output_path;      // stdout and stderr appended here; empty = /dev/null
  std::string input_path;       // read as stdin; empty = /dev/null
  std::string cwd;              // working directory; empty = inherit
  int death_signal = 0;         // sent to the child when the spawning thread exits (0 = none)
};

struct ExitInfo {
  bool exited = false;  // normal exit (else killed by signal)
  int code = 0;         // exit code or signal number
  std::string Describe() const;
};

class Child {
 public:
  static Result<std::unique_ptr<Child>> Spawn(const SpawnOptions& opts);
  ~Child() = default;

  pid_t pid() const { return pid_; }
  // Non-blocking: the exit, if the child has exited (it is then reaped).
  std::optional<ExitInfo> Poll();
  // Waits up to `timeout` for exit.
  std::optional<ExitInfo> Wait(std::chrono::milliseconds timeout);
  bool Signal(int sig);
  // Sends `sig`, waits up to `grace`, then SIGKILLs and reaps.
  ExitInfo Stop(int sig, std::chrono::milliseconds grace);

 private:
  explicit Child(pid_t pid) : pid_(pid) {}
  pid_t pid_;
  std::optional<ExitInfo> exit_;
};

using ChildPtr = std::unique_ptr<Child>;

// Runs a command to completion, capturing stdout+stderr. Kills it after `timeout`.
struct RunOutput {
  ExitInfo exit;
  std::string output;
};
Result<RunOutput> RunCommand(const SpawnOptions& opts, std::chrono::milliseconds timeout);

struct UserIds {
  uid_t uid;
  gid_t gid;
};
Result<UserIds> LookupUser(const std::string& name);
bool RunningAsRoot();

// The user a server this process runs (a registry, a DNS server) runs as: `run_as` looked up,
// or none — this process's own user — when `run_as` is empty, which is refused as root. Errors
// are FailedPrecondition naming `what` ("the registry").
Result<std::optional<UserIds>> ServerUser(const std::string& what, const std::string& run_as);

// Lifts this process's soft limit on open files to its hard limit (a worker's tasks each hold
// pipes; a region keeps task logs open).
void RaiseFileLimit();

// True if a process with this pid exists (signal 0).
bool ProcessAlive(pid_t pid);

}  // namespace tandem
