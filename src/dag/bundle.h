// DAG bundles: a directory of YAML files in dag-factory's shape, parsed into DAG definitions.
//
//   default:                      # optional; merged under every DAG of the file
//     default_args: {owner: data, retries: 1, retry_delay: 5m}
//   etl_daily:                    # a dag_id
//     schedule: "0 6 * * *"       # cron, @once, @hourly, ... ; absent or null = manual only
//     start_date: 2024-01-01
//     catchup: false
//     tasks:                      # a map keyed by task_id, or a list of {task_id: ...}
//       extract: {operator: bash, bash_command: "echo {{ ds }}"}
//       load: {operator: bash, bash_command: "...", dependencies: [extract]}
//
// One file's errors never stop another file: each broken file becomes an ImportError (file,
// line, message) and its DAGs are left out. Parsing is pure and deterministic: the same files
// give the same bundle and digest.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "dag/template.h"
#include "dag/timetable.h"

namespace tandem::dag {

enum class TriggerRule {
  kAllSuccess,
  kAllFailed,
  kAllDone,
  kOneSuccess,
  kOneFailed,
  kNoneFailed,
  kNoneSkipped,
  kAlways
};
std::string_view TriggerRuleName(TriggerRule rule);
std::optional<TriggerRule> ParseTriggerRule(std::string_view name);

enum class Operator { kBash, kEmpty };
// Airflow's class name ("BashOperator", "EmptyOperator").
std::string_view OperatorName(Operator op);

struct TaskSpec {
  std::string task_id;
  Operator op = Operator::kEmpty;
  std::vector<std::string> upstream;  // task ids, as written under `dependencies`
  TriggerRule trigger_rule = TriggerRule::kAllSuccess;
  int retries = 0;
  std::chrono::seconds retry_delay{300};                  // Airflow's default, 5 minutes
  std::optional<std::chrono::seconds> execution_timeout;  // none = no limit
  std::string pool = "default_pool";
  std::string owner = "airflow";
  // bash
  Template bash_command;
  std::vector<std::pair<std::string, Template>> env;  // in file order
  std::string cwd;                                    // empty = a fresh temporary directory
  int line = 0;                                       // where the task is defined, 1-based
};

struct DagSpec {
  std::string dag_id;
  std::string file;  // relative path inside the bundle
  int line = 0;      // of the dag_id key, 1-based
  std::string description;
  std::vector<std::string> tags;
  std::optional<Timetable> timetable;   // nullopt: manual triggers only
  std::optional<TimePoint> start_date;  // REQUIRED when timetable is set
  std::optional<TimePoint> end_date;
  // Unset when the bundle does not say: the deployment's schedule defaults apply (at deploy).
  std::optional<bool> catchup;
  std::optional<int> max_active_runs;
  std::optional<int> max_active_tasks;
  std::map<std::string, std::string> params;  // NAME -> default value as JSON text
  std::vector<TaskSpec> tasks;                // topologically ordered, ties in file order
  std::vector<std::string> owners;            // distinct task owners, sorted

  // REQUIRES: task_id names a task of this DAG.
  const TaskSpec& task(std::string_view task_id) const;
  const TaskSpec* find_task(std::string_view task_id) const;
  std::vector<std::string> downstream(std::string_view task_id) const;
};

struct ImportError {
  std::string file;
  int line = 0;  // 1-based; 0 when the error is about the whole file
  std::string message;
};

struct Bundle {
  std::string digest;         // "sha256:<hex>" over the sorted (file name, content) pairs
  std::vector<DagSpec> dags;  // sorted by dag_id
  std::vector<ImportError> errors;
  const DagSpec* find_dag(std::string_view dag_id) const;
};

// `files` maps a relative path to its content. Files not ending in .yaml or .yml are part of
// the digest but not parsed. A dag_id defined in two files is an error in the later one (by
// path order).
Bundle ParseBundle(const std::map<std::string, std::string>& files);

// The digest alone, as ParseBundle computes it.
std::string BundleDigest(const std::map<std::string, std::string>& files);

// A dag_id, task_id or run_id: 1..250 characters of letters, digits, '_', '-', '.', and for
// run ids also ':', '+', '~' — never "..", never '/'. What it checks is in the error.
Status ValidateDagId(std::string_view id);
Status ValidateTaskId(std::string_view id);
Status ValidateRunId(std::string_view id);

}  // namespace tandem::dag
