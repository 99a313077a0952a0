// What pipelines leave behind in the metadata database: DAGs as deployed, their runs, task
// instances with every try, XComs and import errors. Plain data, no I/O; times are RFC 3339 text
// as the database gives them ("" for none). The DAG definitions themselves are dag::DagSpec,
// parsed from the bundle version a run records.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tandem::model {

// Airflow's DAG-run states.
inline constexpr const char* kRunQueued = "queued";
inline constexpr const char* kRunRunning = "running";
inline constexpr const char* kRunSuccess = "success";
inline constexpr const char* kRunFailed = "failed";

// Airflow's task-instance states ("" is Airflow's None: not yet considered).
inline constexpr const char* kTiScheduled = "scheduled";
inline constexpr const char* kTiQueued = "queued";
inline constexpr const char* kTiRunning = "running";
inline constexpr const char* kTiSuccess = "success";
inline constexpr const char* kTiFailed = "failed";
inline constexpr const char* kTiUpForRetry = "up_for_retry";
inline constexpr const char* kTiUpstreamFailed = "upstream_failed";
inline constexpr const char* kTiSkipped = "skipped";
inline constexpr const char* kTiRemoved = "removed";

bool IsFinishedTiState(const std::string& state);  // success, failed, skipped, upstream_failed,
                                                    // removed

struct Dag {
  std::string dag_id;
  bool is_paused = true;
  bool is_stale = false;  // no longer in the deployed bundle
  std::string bundle_version;
  std::string fileloc;
  std::string description;
  std::vector<std::string> tags;
  std::vector<std::string> owners;
  std::optional<std::string> timetable_summary;  // none: manual only
  std::string timetable_description;
  int max_active_runs = 16;
  int max_active_tasks = 16;
  bool has_task_concurrency_limits = false;
  bool has_import_errors = false;
  std::string last_parsed_time;
  std::string next_dagrun_logical_date, next_dagrun_data_interval_start,
      next_dagrun_data_interval_end, next_dagrun_run_after;
};

struct DagVersion {
  std::string id;  // uuid
  int version_number = 0;
  std::string dag_id;
  std::string bundle_version;
  std::string created_at;
};

struct DagRun {
  int64_t pk = 0;
  std::string dag_id;
  std::string run_id;
  std::string logical_date, data_interval_start, data_interval_end, run_after;
  std::string queued_at, start_date, end_date, last_scheduling_decision;
  std::string run_type;      // scheduled | manual
  std::string triggered_by;  // timetable | rest_api | cli
  std::string state;
  std::string conf = "{}";  // JSON object text
  std::optional<std::string> note;
  std::string bundle_version;
  DagVersion dag_version;
};

// One try of a task instance (the current one, or one from history).
struct TaskInstance {
  std::string id;  // uuid, stable across tries
  std::string dag_id, run_id, task_id;
  std::string logical_date, run_after;
  std::string state;  // "" = none
  int try_number = 0;
  int max_tries = 0;
  std::string pool;
  int pool_slots = 1;
  int priority_weight = 1;
  std::string operator_name;
  std::string queued_when, scheduled_when, start_date, end_date;
  std::string hostname, unixname;
  std::optional<int> pid;
  std::optional<std::string> note;
  std::string dag_version_id;
  int dag_version_number = 0;
  std::string bundle_version;
  std::string dag_version_created_at;
};

struct XCom {
  std::string dag_id, run_id, task_id, key;
  std::string value;  // JSON text
  std::string timestamp, logical_date;
};

struct ImportErrorRow {
  int64_t id = 0;
  std::string filename;
  std::string message;  // "line N: ..." inside stack_trace
  int line = 0;
  std::string timestamp;
  std::string bundle_version;
};

}  // namespace tandem::model
