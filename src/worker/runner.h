// Runs task processes for a worker: starts each in its own session and process group with its
// stdout and stderr on pipes, collects their output as it comes, enforces execution timeouts,
// and reports exits. Knows nothing of HTTP or the Execution API.
//
// Owned and driven by one thread (the worker's loop); not thread-safe. Destroying a Runner
// kills every process group it still runs (SIGKILL) and reaps them.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

namespace tandem::worker {

struct ProcessSpec {
  std::string key;                // the caller's name for this process; unique among running
  std::vector<std::string> argv;  // argv[0] is looked up in PATH of `env`
  std::vector<std::string> env;   // the whole environment, "NAME=value"
  // Empty: a fresh directory of the task's own, removed after exit, which is also its TMPDIR.
  std::string cwd;
  std::chrono::milliseconds timeout{0};  // 0: none; past it: SIGTERM, then SIGKILL 5 s later
  // The user the process will switch to (the shim does): the fresh temporary directory is
  // given to it. Unset: the directory stays this process's.
  std::optional<uid_t> uid;
};

struct Output {
  std::string key;
  std::string data;  // what arrived on one stream; the Outputs of a Poll in arrival order
  int stream = 1;    // 1: stdout, 2: stderr
};

struct Exit {
  std::string key;
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  bool timed_out = false;
  std::string last_stdout_line;  // without its newline; at most 64 KiB kept
  std::chrono::milliseconds duration{0};
};

class Runner {
 public:
  // Fresh task directories are made in `task_root` ("": $TMPDIR or /tmp), which the task's user
  // must be able to search.
  explicit Runner(std::string task_root = "");
  ~Runner();
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  // Starts a process; InvalidArgument for a duplicate key or empty argv, NotFound when argv[0]
  // is not in PATH, Internal when the system refuses (the message says why).
  Status Start(const ProcessSpec& spec);
  // Sends SIGTERM to the process group of `key` now and SIGKILL 5 s later; no-op if unknown.
  void Kill(const std::string& key);
  // Waits up to `timeout` for something to happen, then appends what output arrived and which
  // processes exited (after their pipes are drained). An exit is reported once; whatever the
  // process left running in its group is killed (SIGKILL) when its exit is reported.
  void Poll(std::chrono::milliseconds timeout, std::vector<Output>* output,
            std::vector<Exit>* exits);
  size_t running() const;
  std::optional<pid_t> pid(const std::string& key) const;

 private:
  struct Proc;
  const std::string task_root_;
  std::map<std::string, std::unique_ptr<Proc>> procs_;
};

// Removes a task's directory even when the task left read-only directories in it (Go's module
// cache does), which a plain recursive remove cannot empty. Best effort.
void RemoveTaskDir(const std::string& dir);

}  // namespace tandem::worker
