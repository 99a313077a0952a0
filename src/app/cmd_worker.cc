// `tandem worker`: a task worker for a region's Execution API (see worker/worker.h).
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <thread>

#include "app/commands.h"
#include "base/fs.h"
#include "base/process.h"
#include "base/text.h"
#include "worker/worker.h"

namespace tandem::app {

void AddWorkerCommands(CLI::App& app, Globals& g, Run* run) {
  auto* cmd = app.add_subcommand(
      "worker", "Run tasks for a region: claims queued task instances over its Execution API");
  auto opts = std::make_shared<worker::WorkerOptions>();
  auto grace_ms = std::make_shared<int64_t>(10000);
  cmd->add_option("--api", opts->api_url,
                  "Execution API: https://HOST:PORT (every deployment of the region) or "
                  "https://HOST:PORT/deployments/NAME (one deployment); http:// for a region "
                  "without TLS. The region's certificate must chain to --ca-file's CA")
      ->required();
  cmd->add_option("--slots", opts->slots, "Tasks run at once (default 16)");
  cmd->add_option("--hostname", opts->hostname, "Name reported for this worker");
  cmd->add_option("--task-nice", opts->task_nice,
                  "Niceness of the tasks, 0..19 (default 10: tasks yield the CPU to the worker "
                  "and the platform)");
  auto token_file = std::make_shared<std::string>();
  cmd->add_option("--token-file", *token_file,
                  "File holding a worker credential (else env TANDEM_WORKER_TOKEN; "
                  "`tandem worker-credential create` makes one)");
  cmd->add_option("--task-dir", opts->task_dir,
                  "A directory of this worker's own (absolute) for its tasks' directories, "
                  "emptied when it starts: what the tasks of a killed worker left is removed "
                  "by the next (default: each task's directory in $TMPDIR, left behind by a "
                  "killed worker)");
  cmd->add_option("--grace-ms", *grace_ms,
                  "On SIGTERM/SIGINT, how long running tasks may finish before they are killed");
  cmd->callback([&g, opts, grace_ms, token_file, run] {
    *run = [&g, opts, grace_ms, token_file]() -> int {
      // --api's host name is looked up at the pair's DNS server (the global --dns).
      opts->dns_server = g.target.dns_server;
      Result<std::string> ca_file = ResolveCaFile(g.target);
      if (!ca_file.ok()) return Fail(ca_file.status());
      opts->ca_file = *ca_file;
      if (!token_file->empty()) {
        auto text = ReadFile(*token_file);
        if (!text.ok()) return Fail(text.status().WithContext("--token-file"));
        opts->credential = std::string(TrimSpace(*text));
      } else if (const char* env = getenv("TANDEM_WORKER_TOKEN")) {
        opts->credential = std::string(TrimSpace(env));
      }
      // tandem-task-exec is installed beside tandem.
      char exe[4096] = {};
      ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
      std::string self = n > 0 ? std::string(exe, static_cast<size_t>(n)) : "";
      opts->shim = self.substr(0, self.rfind('/') + 1) + "tandem-task-exec";
      if (access(opts->shim.c_str(), X_OK) != 0) {
        return Fail(FailedPrecondition("cannot run " + opts->shim +
                                       ": tandem-task-exec must be installed beside tandem"));
      }
      opts->grace = std::chrono::milliseconds(*grace_ms);
      spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [worker] %v");
      spdlog::flush_on(spdlog::level::info);  // its output is often a file
      auto w = worker::Worker::Create(*opts);
      if (!w.ok()) return Fail(w.status());
      RaiseFileLimit();
      // Signals are taken by a thread that waits for them, so stopping is ordinary code.
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGINT);
      sigaddset(&set, SIGTERM);
      pthread_sigmask(SIG_BLOCK, &set, nullptr);
      worker::Worker* worker = w->get();
      std::atomic<bool> done{false};
      std::thread waiter([set, worker, &done] {
        const timespec tick{0, 200000000L};  // 0.2 s
        while (!done) {
          int sig = sigtimedwait(&set, nullptr, &tick);
          if (sig > 0) {
            spdlog::info("signal {}: stopping the worker", sig);
            worker->Stop();
          }
        }
      });
      Status s = worker->Run();
      done = true;
      waiter.join();
      return s.ok() ? 0 : Fail(s);
    };
  });
}

}  // namespace tandem::app
