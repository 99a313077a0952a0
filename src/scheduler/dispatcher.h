// The region's side of the Execution API: hands queued task instances to workers, fully
// rendered, and takes back how they ended.
//
// Workers never read the database or the bundle: a claim answers with what to run (argv,
// environment, working directory, timeout) and a task token per task instance. Templates are
// rendered here, at claim time, from the run, the deployment's variables, connections and the
// run's XComs; a template that cannot render (a missing variable) fails the try with the reason
// in its log, and the worker never sees it. The process environment is the deployment's env
// vars, `AIRFLOW_CONN_<ID>` URIs, `AIRFLOW_VAR_<KEY>` values, Airflow's `AIRFLOW_CTX_*`, then
// the task's own `env` (added on top, as BashOperator's append_env does).
//
// Thread-safety: every method may be called from any thread (HTTP handler threads).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "crypto/token.h"
#include "logs/log_store.h"
#include "scheduler/bundle_cache.h"
#include "store/execution.h"
#include "store/store.h"

namespace tandem::scheduler {

struct TaskToRun {
  std::string token;
  TaskClaims claims;
  std::vector<std::string> argv;
  std::vector<std::pair<std::string, std::string>> env;
  std::string cwd;         // "" for a fresh temporary directory
  int64_t timeout_ms = 0;  // 0: none
  // The secret values in `env` (connection passwords — as given and as the URI encodes them —
  // sensitive extra fields, secret variables and env vars), which the worker masks in the
  // task's output.
  std::vector<std::string> mask;
  // The user the task runs as on a worker started as root: a uid of the deployment's own.
  std::optional<int64_t> run_as_uid;
};

struct DispatcherOptions {
  int heartbeat_ms = 1000;
  // How long a task token lasts (Airflow 3's default). A heartbeat that lists a try still
  // running on its worker renews its token once half of this has passed, so a long task keeps
  // a valid token while a leaked one — or one of a try that ended — is good for minutes.
  std::chrono::seconds token_ttl{std::chrono::minutes(10)};
  // A deployment's tasks run as uid task_uid_base + its number (store::ClaimedTask::task_uid)
  // on workers started as root; 0: as the worker's own user.
  int64_t task_uid_base = 0;
  // Asked before every claim: a region that does not hold the lease starts no task (its
  // claims answer empty). Unset: always.
  std::function<bool()> may_start;
};

class Dispatcher {
 public:
  // Everything passed must outlive the Dispatcher. `wake_scheduler` is called when tries end.
  Dispatcher(store::Execution* execution, store::Store* store, BundleCache* bundles,
             logs::LogStore* logs, const TokenSigner* tokens, Clock* clock,
             DispatcherOptions options, std::function<void()> wake_scheduler);

  const DispatcherOptions& options() const { return options_; }

  struct ClaimAnswer {
    std::vector<TaskToRun> tasks;
    // The database's clock (µs since the epoch) once every try of this answer — and of the
    // worker's earlier claims — had been claimed: a heartbeat that says it has seen the claims
    // through this time lists each of those it still runs (see Heartbeat). Unset when the
    // region handed out nothing because it may not start tasks, or could not read the clock.
    std::optional<int64_t> claims_through_us;
  };
  // Claims up to `n` task instances for worker `w`. When none are queued, waits up to `wait`
  // for the scheduler to queue some and answers empty, for the worker to claim again at once.
  Result<ClaimAnswer> Claim(const store::WorkerInfo& w, int n, std::chrono::milliseconds wait);
  // Called by the scheduler when it queued task instances.
  void NotifyWork();

  // Checks a token: Unauthenticated when it is forged, malformed or expired.
  Result<TaskClaims> Verify(std::string_view token) const;

  struct HeartbeatAnswer {
    std::vector<std::string> stop;  // ti ids
    // Fresh tokens for tries the worker still runs whose tokens are past half their life.
    std::vector<std::pair<std::string, std::string>> renewed;  // (ti id, token)
  };
  // The tries of `held` the worker must stop, and renewed tokens; running tries of the worker's it left out are
  // failed as lost once claimed over two heartbeats ago and, when the worker sends
  // `claims_through_us` (a ClaimAnswer's, the latest it had started from), only those claimed
  // by then: a claim answer that took long to reach the worker loses none of its tries.
  Result<HeartbeatAnswer> Heartbeat(const store::WorkerInfo& w,
                                             const std::vector<TaskClaims>& held,
                                             std::optional<int64_t> claims_through_us);
  Status AppendLog(const TaskClaims& claims, std::string_view data);
  // Per token's claims, whether its try is still running (its log still open).
  Result<std::vector<bool>> AreRunning(const std::vector<TaskClaims>& claims);
  Result<std::vector<bool>> Finish(const std::string& worker_id,
                                   const std::vector<store::TryOutcome>& outcomes);

 private:
  // Renders one claimed task, or says why it cannot run.
  Result<TaskToRun> Render(const store::ClaimedTask& t, struct DeploymentData& data);

  store::Execution* const execution_;
  store::Store* const store_;
  BundleCache* const bundles_;
  logs::LogStore* const logs_;
  const TokenSigner* const tokens_;
  Clock* const clock_;
  const DispatcherOptions options_;
  const std::function<void()> wake_scheduler_;

  std::mutex mu_;
  std::condition_variable work_cv_;
  uint64_t work_generation_ = 0;  // guarded by mu_; bumped by NotifyWork
};

// The values of a connection that are secret: its password (and the password as
// ConnectionUri percent-encodes it) and the string values of its extra's sensitive fields
// (password, secret, token, api_key, private_key, … as Airflow's masker names them).
std::vector<std::string> SecretsOf(const model::Connection& c);

// Airflow's connection URI: conn-type://login:password@host:port/schema?extra, each part
// percent-encoded; an extra that is not a flat JSON object travels as __extra__=<json>.
std::string ConnectionUri(const model::Connection& c);

}  // namespace tandem::scheduler
