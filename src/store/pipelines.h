// Pipelines in the metadata store: bundle versions, DAGs, DAG runs, task instances and their
// tries, XComs and import errors, as the Airflow API and the CLI read and change them.
//
// Like Store, every method is one transaction and a failed one changed nothing; deployments are
// passed as ids the caller has resolved. Scheduling and execution (the scheduler loop and the
// Execution API) have their own classes in scheduling.h and execution.h over the same tables.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "base/strong_id.h"
#include "dag/bundle.h"
#include "base/clock.h"
#include "model/deployment.h"
#include "model/pipeline.h"
#include "pg/conn.h"

namespace tandem::store {

struct DeployResult {
  std::string bundle_version;  // the digest
  bool unchanged = false;      // the deployment already ran this version
  int dags = 0;
  int new_dag_versions = 0;
  int stale_dags = 0;  // DAGs that left the bundle
  std::vector<dag::ImportError> import_errors;
};

// The OCI image a bundle version was deployed as, in the active region's registry.
struct BundleImage {
  std::string repository;   // "<namespace>/bundle"
  std::string digest;       // the manifest's digest, "sha256:<64 hex>"
  int64_t bytes = 0;        // manifest, config and layers together
  bool replicated = false;  // the standby's registry holds it too (or there is no standby)
};

// A bundle version whose image the standby's registry does not hold yet.
struct UnreplicatedImage {
  DeploymentId deployment;
  std::string bundle_version;
  BundleImage image;
  tandem::WallTime deployed_at;
};

struct DagFilter {
  model::PageRequest page;     // pattern: dag_id_pattern
  std::optional<bool> paused;  // only paused / only unpaused
  bool include_stale = false;
};

struct TriggerRequest {
  std::optional<std::string> run_id;        // generated ("manual__<logical date>") when absent
  std::optional<std::string> logical_date;  // RFC 3339; absent or null: none
  std::optional<std::string> data_interval_start, data_interval_end;
  std::string conf = "{}";  // JSON object text
  std::optional<std::string> note;
  std::string triggered_by = "rest_api";
};

struct RunFilter {
  model::PageRequest page;          // pattern: run_id_pattern
  std::vector<std::string> states;  // empty: any
};

struct ClearRequest {
  bool only_failed = false;
  bool dry_run = false;
  bool run_on_latest_version = false;
  std::vector<std::string> task_ids;  // empty: all
};

struct TiFilter {
  model::PageRequest page;
  std::vector<std::string> states;  // "none" for no state
};

class Pipelines {
 public:
  // `pool` must outlive this.
  explicit Pipelines(pg::Pool* pool) : pool_(pool) {}

  // ---- bundles
  // Records `files` as a bundle version (idempotent by digest), updates the deployment's DAGs
  // from `bundle` (new ones paused, as Airflow does; those that left become stale; a DAG whose
  // file changed gets a new DAG version) and replaces its import errors.
  // REQUIRES: bundle == dag::ParseBundle(files).
  // With `image`, the version records the image it was deployed as (a version deployed again
  // with an image gains one; `image->replicated` false leaves it to the image replicator).
  Result<DeployResult> Deploy(const DeploymentId& d,
                              const std::map<std::string, std::string>& files,
                              const dag::Bundle& bundle,
                              const std::optional<BundleImage>& image = std::nullopt);
  // The image of one bundle version; nullopt when it was deployed without one.
  Result<std::optional<BundleImage>> VersionImage(const DeploymentId& d, std::string_view version);
  // Images the standby lacks, oldest first, at most `limit`.
  Result<std::vector<UnreplicatedImage>> UnreplicatedImages(int limit);
  // Records that the standby's registry holds `digest` (a no-op when the version's image is
  // another by now).
  Status MarkImageReplicated(const DeploymentId& d, std::string_view version,
                             std::string_view digest);
  // The digest of the bundle the deployment runs now; NotFound when none was deployed.
  Result<std::string> CurrentBundleVersion(const DeploymentId& d);
  // The files of one bundle version; NotFound if it was never deployed here.
  Result<std::map<std::string, std::string>> BundleFiles(const DeploymentId& d,
                                                         std::string_view digest);

  // ---- DAGs
  Result<model::Page<model::Dag>> ListDags(const DeploymentId& d, const DagFilter& filter);
  Result<model::Dag> GetDag(const DeploymentId& d, std::string_view dag_id);
  Result<model::Dag> SetPaused(const DeploymentId& d, std::string_view dag_id, bool paused);

  // ---- import errors
  Result<model::Page<model::ImportErrorRow>> ListImportErrors(const DeploymentId& d,
                                                              const model::PageRequest& page);
  Result<model::ImportErrorRow> GetImportError(const DeploymentId& d, int64_t id);

  // ---- DAG runs
  // A manual run of the DAG's latest version, queued; its task instances are created with it.
  // AlreadyExists when the run id or the logical date is taken.
  Result<model::DagRun> Trigger(const DeploymentId& d, std::string_view dag_id,
                                const TriggerRequest& req);
  // dag_id "~" lists the runs of every DAG.
  Result<model::Page<model::DagRun>> ListRuns(const DeploymentId& d, std::string_view dag_id,
                                              const RunFilter& filter);
  Result<model::DagRun> GetRun(const DeploymentId& d, std::string_view dag_id,
                               std::string_view run_id);
  // Marks a run success or failed (its unfinished task instances follow, as in Airflow) and/or
  // sets its note.
  Result<model::DagRun> PatchRun(const DeploymentId& d, std::string_view dag_id,
                                 std::string_view run_id, std::optional<std::string> state,
                                 std::optional<std::optional<std::string>> note);
  Status DeleteRun(const DeploymentId& d, std::string_view dag_id, std::string_view run_id);
  // Resets the run's task instances (all, or the failed ones) so they run again, and queues the
  // run. Returns the task instances it cleared (or would clear, for a dry run).
  Result<std::vector<model::TaskInstance>> ClearRun(const DeploymentId& d, std::string_view dag_id,
                                                    std::string_view run_id,
                                                    const ClearRequest& req);

  // ---- task instances
  Result<model::Page<model::TaskInstance>> ListTaskInstances(const DeploymentId& d,
                                                             std::string_view dag_id,
                                                             std::string_view run_id,
                                                             const TiFilter& filter);
  Result<model::TaskInstance> GetTaskInstance(const DeploymentId& d, std::string_view dag_id,
                                              std::string_view run_id, std::string_view task_id);
  // Every try, oldest first (finished tries and the current one).
  Result<std::vector<model::TaskInstance>> ListTries(const DeploymentId& d, std::string_view dag_id,
                                                     std::string_view run_id,
                                                     std::string_view task_id);
  // One try; NotFound when the task instance never had it.
  Result<model::TaskInstance> GetTry(const DeploymentId& d, std::string_view dag_id,
                                     std::string_view run_id, std::string_view task_id,
                                     int try_number);

  // ---- XComs
  Result<model::Page<model::XCom>> ListXComs(const DeploymentId& d, std::string_view dag_id,
                                             std::string_view run_id, std::string_view task_id,
                                             const model::PageRequest& page);
  Result<model::XCom> GetXCom(const DeploymentId& d, std::string_view dag_id,
                              std::string_view run_id, std::string_view task_id,
                              std::string_view key);

 private:
  pg::Pool* const pool_;
};

}  // namespace tandem::store
