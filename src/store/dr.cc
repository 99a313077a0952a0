#include "store/dr.h"

#include "store/pipeline_sql.h"

namespace tandem::store {

Status DrStore::RecordEpoch(int64_t epoch, const std::string& region) {
  ASSIGN_OR_RETURN(auto c, pool_->Acquire());
  ASSIGN_OR_RETURN(pg::Rows r,
                   c->Exec("INSERT INTO dr_state AS s (id, epoch, region) VALUES (1, $1, $2) "
                           "ON CONFLICT (id) DO UPDATE SET epoch = $1, region = $2, "
                           "changed_at = now() WHERE s.epoch <= $1 RETURNING epoch",
                           {std::to_string(epoch), region}));
  if (r.size() == 0) {
    return FailedPrecondition("the metadata database already holds an epoch above " +
                              std::to_string(epoch));
  }
  return Status::Ok();
}

Result<int64_t> DrStore::Epoch() {
  ASSIGN_OR_RETURN(auto c, pool_->Acquire());
  ASSIGN_OR_RETURN(pg::Rows r, c->Exec("SELECT coalesce(max(epoch), 0) FROM dr_state"));
  return r.Int(0, 0);
}

Status DrStore::Heartbeat() {
  ASSIGN_OR_RETURN(auto c, pool_->Acquire());
  return c->Exec("UPDATE dr_state SET heartbeat_at = now() WHERE id = 1").status();
}

Result<int64_t> DrStore::Reconcile(bool forced) {
  ASSIGN_OR_RETURN(auto c, pool_->Acquire());
  const std::string states = forced ? "('running', 'queued')" : "('running')";
  ASSIGN_OR_RETURN(pg::Rows r, c->Exec(std::string("WITH lost AS (UPDATE task_instances ti SET ") +
                                       sql::kFailTry + sql::kMarkRecovered + " WHERE ti.state IN " +
                                       states + " RETURNING ti.*), rec AS (" +
                                       sql::RecordTries("lost") + ") SELECT count(*) FROM lost"));
  return r.Int(0, 0);
}

Result<int64_t> DrStore::CountActiveTasks() {
  ASSIGN_OR_RETURN(auto c, pool_->Acquire());
  ASSIGN_OR_RETURN(pg::Rows r, c->Exec("SELECT count(*) FROM task_instances WHERE state IN "
                                       "('running', 'queued')"));
  return r.Int(0, 0);
}

Result<int64_t> DrStore::CountRunningTasks() {
  ASSIGN_OR_RETURN(auto c, pool_->Acquire());
  ASSIGN_OR_RETURN(pg::Rows r,
                   c->Exec("SELECT count(*) FROM task_instances WHERE state = 'running'"));
  return r.Int(0, 0);
}

Result<std::vector<std::string>> DrStore::Namespaces() {
  ASSIGN_OR_RETURN(auto c, pool_->Acquire());
  ASSIGN_OR_RETURN(pg::Rows r, c->Exec("SELECT namespace FROM deployments WHERE deleted_at IS "
                                       "NULL ORDER BY namespace"));
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(r.size()));
  for (int i = 0; i < r.size(); ++i) out.push_back(r.Text(i, 0));
  return out;
}

}  // namespace tandem::store
