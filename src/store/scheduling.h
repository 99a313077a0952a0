// The scheduler's statements: set-based, over every live deployment of the region at once, so
// the cost of a scheduling pass grows with the work waiting, not with the number of
// deployments (see scheduler/README.md for the loop that calls these).
//
// Each method is one transaction of one or two statements. They are safe to run concurrently
// with each other, with the Execution API and with a second scheduler (every transition is
// guarded by the state it comes from), so a restart or a race can never duplicate a run or a
// try: runs are unique on (deployment, dag_id, logical_date) in the database.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "base/strong_id.h"
#include "dag/timetable.h"
#include "pg/conn.h"

namespace tandem::store {

// A scheduled DAG whose next run may be due.
struct DueDag {
  DeploymentId deployment;
  std::string dag_id;
  std::string timetable;  // its summary, to parse
  std::optional<dag::TimePoint> start_date, end_date;
  bool catchup = false;
  int room = 0;                       // runs it may still start: max_active_runs - active runs
  std::optional<dag::Interval> next;  // cached; nullopt: compute from `last`
  std::optional<dag::Interval> last;  // the latest scheduled run's interval
  std::string dag_version_id;
  std::string bundle_version;
};

struct ScheduledRun {
  DeploymentId deployment;
  std::string dag_id;
  dag::Interval interval;
  std::string dag_version_id;
  std::string bundle_version;
};

// A task instance waiting on its upstream tasks, with what they have come to.
struct PendingTask {
  std::string ti_id;
  std::string trigger_rule;
  std::string operator_name;  // EmptyOperator tasks succeed in the scheduler, as in Airflow
  int upstream = 0;           // upstream task instances, not counting removed ones
  int success = 0;
  int failed = 0;
  int upstream_failed = 0;
  int skipped = 0;
  int done = 0;  // in a finished state
};

struct Decision {
  std::string ti_id;
  std::string state;  // scheduled | skipped | upstream_failed | success (EmptyOperator)
};

class Scheduling {
 public:
  explicit Scheduling(pg::Pool* pool) : pool_(pool) {}

  // Unpaused, live, scheduled DAGs with room for a run whose next interval has ended by `now`
  // (or is not computed yet).
  Result<std::vector<DueDag>> DueDags(dag::TimePoint now);
  // Creates the runs (those that exist already are skipped) and records each DAG's next
  // interval (nullopt: none left); returns how many runs were created.
  Result<int> CreateRuns(const std::vector<ScheduledRun>& runs);
  Status SetNextInterval(const DeploymentId& d, const std::string& dag_id,
                         const std::optional<dag::Interval>& next);

  // Queued runs of unpaused DAGs start, oldest first, within max_active_runs.
  Result<int> StartRuns();
  // Task instances of running runs that have no state yet.
  Result<std::vector<PendingTask>> PendingTasks();
  // Applies decisions to task instances that still have no state; returns how many changed.
  Result<int> Decide(const std::vector<Decision>& decisions);
  // Tries whose retry delay has passed are scheduled again.
  Result<int> RetryDue();
  // Scheduled task instances are queued (their try number goes up) within their pool's open
  // slots, their DAG's max_active_tasks per run and their deployment's worker_slots, highest
  // priority weight first.
  Result<int> QueueTasks();
  // Running runs whose task instances have all finished become success or failed (failed when
  // a leaf task failed or was upstream_failed).
  Result<int> FinishRuns();
  // Running task instances whose worker has not heartbeat for three of its intervals, or that
  // outlived their execution timeout by `grace_seconds`, end their try as failed (up_for_retry
  // while retries remain); the try is recorded in the history.
  Result<int> ReapLost(int grace_seconds);

 private:
  pg::Pool* const pool_;
};

}  // namespace tandem::store
