// A worker: claims task instances over the Execution API, runs each as a subprocess, streams
// its output to the task log, heartbeats, and reports how each try ended. It never touches the
// database, so it runs anywhere the API is reachable (api/execution.cc has the protocol).
//
// Two threads: a claimer that long-polls for work while slots are free, and the loop that owns
// the Runner — it starts what was claimed, pumps output into log batches (sent every
// `log_flush`), heartbeats every interval the region asks for with the tokens of what it runs
// (and kills what the region says is no longer its), and reports exits in batches. Reports that
// cannot be sent (the region restarting) are kept and sent again; a region that stays away
// longer than three heartbeats has already handed the tries to retries, and then tells the
// worker to stop them.
//
// Each task runs through `tandem-task-exec` (task_exec_main.cc) when `shim` is set, which ties
// the life of the task's whole process group to the worker's: a worker killed with SIGKILL
// leaves no task, nor anything a task started, behind.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "base/status.h"

namespace tandem::worker {

struct WorkerOptions {
  // https://host:port (or http://) for every deployment of a region, or
  // https://host:port/deployments/NAME for one deployment's tasks only.
  std::string api_url;
  // For https: the CA the region's certificate must chain to ("" for the system's CAs).
  std::string ca_file;
  int slots = 16;
  std::string hostname;  // default: this machine's
  // "ADDRESS:PORT" of the DNS server the API's host name is looked up at (the pair's: not the
  // system's resolver); empty: the system's resolver, as for any URL.
  std::string dns_server;
  std::string shim;  // the tandem-task-exec binary; "" runs tasks directly (tests only)
  // A directory of this worker's own for its tasks' directories: made (mode 0711) when the
  // worker starts, what a killed worker's tasks left in it moved aside and removed in the
  // background; removed when the worker stops. Empty: each task's directory is made in $TMPDIR (or /tmp), and
  // a SIGKILLed worker leaves its running tasks' behind.
  std::string task_dir;
  // Niceness of the tasks (0..19, through the shim): tasks yield the CPU to the worker and the
  // platform beside them.
  int task_nice = 10;
  // A worker credential (`tandem worker-credential create`; api/worker_auth.h).
  std::string credential;
  std::chrono::milliseconds claim_wait{5000};
  std::chrono::milliseconds log_flush{200};
  // On Stop(): how long running tasks may go on before they are killed (their tries are then
  // left to the region, which retries them).
  std::chrono::milliseconds grace{10000};
};

class Worker {
 public:
  static Result<std::unique_ptr<Worker>> Create(WorkerOptions options);
  ~Worker();

  // Runs until Stop(); returns when every task has ended or been killed.
  Status Run();
  // Stops claiming; lets running tasks finish within the grace. Safe from any thread.
  void Stop();

  const std::string& id() const;

 private:
  struct Impl;
  explicit Worker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::worker
