// The region's scheduler: one loop that serves every deployment of the region (each
// deployment's scheduling is independent — its own DAGs, runs, pools and limits — but they
// share one thread and one set of statements, so 80 deployments cost what their work costs,
// not 80 loops).
//
// A pass: create the runs whose schedule interval has ended (exactly once each: the database's
// unique key on (deployment, dag_id, logical_date) decides), start queued runs within
// max_active_runs, schedule retries whose delay has passed, decide the task instances whose
// upstream tasks allow it (repeated until nothing changes), queue scheduled ones within pools,
// max_active_tasks and worker slots, finish runs, and end the tries of lost workers. Passes run
// when woken (a deploy, a trigger, an unpause, a clear, a finished try) and at least every
// `idle_poll`. All state is in PostgreSQL: a scheduler that restarts, or a second one, picks up
// where the first stood.
//
// Thread-safety: Wake() from any thread; Start/Stop from the owner.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "base/clock.h"
#include "base/metrics.h"
#include "dag/timetable.h"
#include "store/scheduling.h"

namespace tandem::scheduler {

struct SchedulerOptions {
  Duration idle_poll = std::chrono::seconds(1);
  Duration reap_every = std::chrono::milliseconds(500);
  // Schedules are minute-grained and retry delays seconds-grained: checking them on every pass
  // (which under load is every few milliseconds) would only cost statements.
  Duration due_every = std::chrono::seconds(1);
  Duration retry_every = std::chrono::milliseconds(250);
  int timeout_grace_seconds = 30;      // past a task's execution timeout before the region ends it
  int max_runs_per_dag_per_pass = 64;  // bounds a long catchup's first pass
  // Workers whose heartbeats stopped are declared lost only when the region itself was able to
  // take heartbeats all along: after a pass that failed or took longer than `stall` (commits
  // that waited — a synchronous standby, a PostgreSQL restart), after the region was not
  // acting, no try is reaped for `reap_hold` (set it above the workers' silence threshold).
  Duration stall = std::chrono::seconds(1);
  Duration reap_hold = std::chrono::seconds(5);
  // Asked before every pass: in a region pair only the region that holds the lease for the
  // current epoch schedules anything (docs/disaster-recovery.md, "Fencing: epochs and leases").
  // Unset: always.
  std::function<bool()> may_act;
};

class Scheduler {
 public:
  // `scheduling`, `clock` and `metrics` must outlive the Scheduler. `on_queued` is called
  // (from the scheduler thread) after a pass queued task instances.
  Scheduler(store::Scheduling* scheduling, Clock* clock, MetricsRegistry* metrics,
            SchedulerOptions options, std::function<void()> on_queued);
  ~Scheduler();

  void Start();
  void Stop();
  void Wake();
  // When the last pass completed (wall clock), for /monitor/health.
  std::optional<WallTime> last_pass() const;

  // One pass, synchronously (tests, and the loop). Returns whether anything changed.
  Result<bool> RunPass();

 private:
  void Loop();
  Result<int> CreateDueRuns();
  const dag::Timetable* TimetableFor(const std::string& summary);

  store::Scheduling* const scheduling_;
  Clock* const clock_;
  MetricsRegistry* const metrics_;
  const SchedulerOptions options_;
  const std::function<void()> on_queued_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool woken_ = false;                 // guarded by mu_
  bool stopping_ = false;              // guarded by mu_
  std::optional<WallTime> last_pass_;  // guarded by mu_
  std::thread thread_;

  // Owned by whichever thread runs passes (one at a time).
  std::map<std::string, std::optional<dag::Timetable>> timetables_;
  MonoTime last_reap_{};
  MonoTime reap_hold_until_{};  // no try is reaped before (thread: the scheduler's)
  MonoTime pass_started_{};
  bool acted_ = false;  // the previous pass acted
  std::optional<MonoTime> last_due_, last_retry_;
};

}  // namespace tandem::scheduler
