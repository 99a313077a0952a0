// Pipelines' reads, marks and clears over fixture rows written with plain SQL, so these tests
// do not depend on Deploy or Trigger.
#include <gtest/gtest.h>

#include "harness/pg_harness.h"
#include "store/migrations.h"
#include "store/pipelines.h"
#include "store/store.h"

namespace tandem::store {
namespace {

using model::PageRequest;
using model::TaskInstance;
using tandem::testing::PgHarness;

constexpr const char* kV1 = "00000000-0000-0000-0000-000000000001";  // alpha, version 1
constexpr const char* kV2 = "00000000-0000-0000-0000-000000000002";  // alpha, version 2
constexpr const char* kGammaV1 = "00000000-0000-0000-0000-000000000003";

// One string field of each element.
template <typename T>
std::vector<std::string> Field(const std::vector<T>& xs, std::string T::*f) {
  std::vector<std::string> out;
  out.reserve(xs.size());
  for (const auto& x : xs) out.push_back(x.*f);
  return out;
}

std::vector<std::string> TaskIds(const std::vector<TaskInstance>& tis) {
  return Field(tis, &TaskInstance::task_id);
}

class PipelinesReadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pool_ = std::make_unique<pg::Pool>(PgHarness::Get().NewDatabase(), 4);
    auto c = pool_->Acquire();
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(Migrate(**c).ok());
    auto s = Store::Open(pool_.get(), *SecretBox::FromBase64(NewSecretKeyBase64()));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    p_ = std::make_unique<Pipelines>(pool_.get());
    d_ = Deployment("etl");
    other_ = Deployment("other");
    Fixture();
  }

  DeploymentId Deployment(const std::string& name) {
    model::Deployment d;
    d.name = name;
    auto r = store_->CreateDeployment(d);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->id : DeploymentId();
  }

  pg::Rows Exec(const std::string& sql, const pg::Params& params = {}) {
    auto c = pool_->Acquire();
    EXPECT_TRUE(c.ok());
    auto r = (*c)->Exec(sql, params);
    EXPECT_TRUE(r.ok()) << sql << ": " << r.status().ToString();
    return r.ok() ? std::move(r).value() : pg::Rows();
  }
  std::string Raw(const std::string& sql, const pg::Params& params = {}) {
    pg::Rows r = Exec(sql, params);
    return r.size() ? r.Text(0, 0) : "";
  }

  void Task(const char* version, const char* task_id, int ord, int retries,
            const char* pool = "default_pool") {
    Exec(
        "INSERT INTO dag_version_tasks (dag_version_id, task_id, ord, operator, trigger_rule, "
        "upstream, is_leaf, pool, retries, retry_delay_s, timeout_s, priority_weight, owner) "
        "VALUES ($1, $2, $3, 'BashOperator', 'all_success', '{}', false, $4, $5, 60, NULL, 1, "
        "'data')",
        {version, task_id, std::to_string(ord), pool, std::to_string(retries)});
  }

  std::string Run(const std::string& run_id, const char* logical_date, const char* run_after,
                  const char* state) {
    return Raw(
        "INSERT INTO dag_runs (deployment_id, dag_id, run_id, logical_date, run_after, "
        "run_type, triggered_by, state, queued_at, start_date, end_date, conf, "
        "bundle_version, dag_version_id) VALUES ($1, 'alpha', $2, $3, $4, 'scheduled', "
        "'timetable', $5, $4, $4, CASE WHEN $5 IN ('success', 'failed') THEN "
        "$4::timestamptz + interval '1 hour' END, '{\"a\": 1}', 'sha256:b1', $6) "
        "RETURNING id",
        {d_.value(), run_id, logical_date ? pg::Param(logical_date) : std::nullopt, run_after,
         state, kV1});
  }

  // A current task instance; returns its id.
  std::string Ti(const std::string& run_pk, const std::string& run_id, const char* task_id,
                 const char* state, int try_number, int max_tries) {
    bool started = state != nullptr && std::string(state) != "queued" &&
                   std::string(state) != "upstream_failed";
    return Raw(
        "INSERT INTO task_instances (id, deployment_id, run_pk, dag_id, run_id, task_id, "
        "state, try_number, max_tries, pool, operator, dag_version_id, hostname, "
        "unixname, pid, start_date, queued_when) VALUES (gen_random_uuid(), $1, $2, "
        "'alpha', $3, $4, $5, $6, $7, 'default_pool', 'BashOperator', $8, $9, 'tandem', "
        "$10, CASE WHEN $11 THEN now() END, CASE WHEN $6 > 0 THEN now() END) RETURNING id",
        {d_.value(), run_pk, run_id, task_id, state ? pg::Param(state) : std::nullopt,
         std::to_string(try_number), std::to_string(max_tries), kV1, started ? "w1" : "",
         started ? pg::Param("4242") : std::nullopt, started ? "true" : "false"});
  }

  void History(const std::string& ti_id, int try_number, const char* state) {
    Exec(
        "INSERT INTO task_instance_history (ti_id, deployment_id, run_pk, dag_id, run_id, "
        "task_id, state, try_number, max_tries, pool, pool_slots, priority_weight, operator, "
        "start_date, end_date, hostname, unixname, pid, dag_version_id) "
        "SELECT id, deployment_id, run_pk, dag_id, run_id, task_id, $2, $3, max_tries, pool, "
        "pool_slots, priority_weight, operator, now(), now(), 'w0', unixname, 17, "
        "dag_version_id FROM task_instances WHERE id = $1",
        {ti_id, state, std::to_string(try_number)});
  }

  void XCom(const std::string& run_pk, const std::string& run_id, const char* task_id,
            const char* key, const char* value) {
    Exec(
        "INSERT INTO xcoms (deployment_id, run_pk, dag_id, run_id, task_id, key, value) "
        "VALUES ($1, $2, 'alpha', $3, $4, $5, $6::jsonb)",
        {d_.value(), run_pk, run_id, task_id, key, value});
  }

  // alpha (scheduled, unpaused; versions 1 and 2), beta (manual, paused, its file broken),
  // gamma (stale). Runs of alpha, all on version 1:
  //   failed:  extract success (try 1), transform failed (tries 1, 2), load upstream_failed
  //   running: extract running (try 1), transform queued (try 1), load none
  //   success: extract success
  void Fixture() {
    Exec(
        "INSERT INTO dags (deployment_id, dag_id, is_paused, is_stale, bundle_version, fileloc, "
        "description, tags, owners, timetable_summary, timetable_description, max_active_runs, "
        "max_active_tasks, next_interval_start, next_interval_end) VALUES "
        "($1, 'alpha', false, false, 'sha256:b2', 'alpha.yaml', 'the first', "
        "'[\"etl\", \"daily\"]', '[\"data\"]', '0 6 * * *', 'At 06:00', 3, 8, "
        "'2024-01-02T06:00:00Z', '2024-01-03T06:00:00Z'), "
        "($1, 'beta', true, false, 'sha256:b2', 'beta.yaml', '', '[]', '[\"ops\"]', NULL, '', "
        "16, 16, NULL, NULL), "
        "($1, 'gamma', false, true, 'sha256:b1', 'gamma.yaml', '', '[]', '[]', '@daily', '', "
        "16, 16, '2024-01-02T00:00:00Z', '2024-01-03T00:00:00Z')",
        {d_.value()});
    Exec(
        "INSERT INTO dags (deployment_id, dag_id, bundle_version, fileloc, max_active_runs, "
        "max_active_tasks) VALUES ($1, 'alpha', 'sha256:x', 'alpha.yaml', 1, 1)",
        {other_.value()});
    Exec(
        "INSERT INTO dag_versions (id, deployment_id, dag_id, version_number, file_digest, "
        "bundle_version) VALUES ($2, $1, 'alpha', 1, 'f1', 'sha256:b1'), "
        "($3, $1, 'alpha', 2, 'f2', 'sha256:b2'), ($4, $1, 'gamma', 1, 'g1', 'sha256:b1')",
        {d_.value(), kV1, kV2, kGammaV1});
    Task(kV1, "extract", 0, 0);
    Task(kV1, "transform", 1, 1);
    Task(kV1, "load", 2, 0);
    Task(kV2, "extract", 0, 0);
    Task(kV2, "load", 1, 2, "loaders");
    Task(kV2, "report", 2, 0);
    Exec(
        "INSERT INTO import_errors (deployment_id, bundle_version, filename, line, message) "
        "VALUES ($1, 'sha256:b2', 'beta.yaml', 3, 'mapping values are not allowed'), "
        "($1, 'sha256:b2', 'broken.yaml', 0, 'not YAML'), "
        "($2, 'sha256:x', 'elsewhere.yaml', 1, 'not here')",
        {d_.value(), other_.value()});

    failed_ =
        Run("scheduled__2024-01-01", "2024-01-01T06:00:00Z", "2024-01-02T06:00:00Z", "failed");
    running_ = Run("manual__1", nullptr, "2024-01-05T00:00:00Z", "running");
    success_ =
        Run("scheduled__2024-01-02", "2024-01-02T06:00:00Z", "2024-01-03T06:00:00Z", "success");
    const std::string f = "scheduled__2024-01-01";
    std::string extract = Ti(failed_, f, "extract", "success", 1, 0);
    History(extract, 1, "success");
    transform_ = Ti(failed_, f, "transform", "failed", 2, 1);
    History(transform_, 1, "failed");
    History(transform_, 2, "failed");
    Ti(failed_, f, "load", "upstream_failed", 0, 0);
    XCom(failed_, f, "extract", "return_value", "{\"rows\": 3}");
    XCom(failed_, f, "transform", "log", "\"partial\"");
    running_extract_ = Ti(running_, "manual__1", "extract", "running", 1, 0);
    Ti(running_, "manual__1", "transform", "queued", 1, 1);
    Ti(running_, "manual__1", "load", nullptr, 0, 0);
    Ti(success_, "scheduled__2024-01-02", "extract", "success", 1, 0);
  }

  std::unique_ptr<pg::Pool> pool_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Pipelines> p_;
  DeploymentId d_, other_;
  std::string failed_, running_, success_;   // run primary keys
  std::string transform_, running_extract_;  // task instance ids
};

// ---- DAGs

TEST_F(PipelinesReadTest, ListDagsPagesOrdersAndFilters) {
  auto all = p_->ListDags(d_, {});
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(all->total, 2);  // gamma is stale
  EXPECT_EQ(Field(all->items, &model::Dag::dag_id), (std::vector<std::string>{"alpha", "beta"}));

  DagFilter f;
  f.include_stale = true;
  EXPECT_EQ(p_->ListDags(d_, f)->total, 3);
  f.page.order_by = "-dag_id";
  f.page.limit = 1;
  f.page.offset = 1;
  auto page = p_->ListDags(d_, f);
  EXPECT_EQ(page->total, 3);
  EXPECT_EQ(Field(page->items, &model::Dag::dag_id), (std::vector<std::string>{"beta"}));

  DagFilter paused;
  paused.paused = true;
  EXPECT_EQ(Field(p_->ListDags(d_, paused)->items, &model::Dag::dag_id),
            (std::vector<std::string>{"beta"}));
  paused.paused = false;
  EXPECT_EQ(Field(p_->ListDags(d_, paused)->items, &model::Dag::dag_id),
            (std::vector<std::string>{"alpha"}));

  DagFilter pattern;
  pattern.page.pattern = "ET";
  EXPECT_EQ(Field(p_->ListDags(d_, pattern)->items, &model::Dag::dag_id),
            (std::vector<std::string>{"beta"}));

  DagFilter by_paused;
  by_paused.page.order_by = "is_paused";
  EXPECT_EQ(Field(p_->ListDags(d_, by_paused)->items, &model::Dag::dag_id),
            (std::vector<std::string>{"alpha", "beta"}));

  DagFilter bad;
  bad.page.order_by = "owner";
  EXPECT_EQ(p_->ListDags(d_, bad).status().code(), Code::kInvalidArgument);

  EXPECT_EQ(p_->ListDags(other_, {})->total, 1);
}

TEST_F(PipelinesReadTest, GetDagAndSetPaused) {
  auto alpha = p_->GetDag(d_, "alpha");
  ASSERT_TRUE(alpha.ok()) << alpha.status().ToString();
  EXPECT_FALSE(alpha->is_paused);
  EXPECT_EQ(alpha->fileloc, "alpha.yaml");
  EXPECT_EQ(alpha->description, "the first");
  EXPECT_EQ(alpha->tags, (std::vector<std::string>{"etl", "daily"}));
  EXPECT_EQ(alpha->owners, (std::vector<std::string>{"data"}));
  EXPECT_EQ(alpha->timetable_summary, "0 6 * * *");
  EXPECT_EQ(alpha->max_active_runs, 3);
  EXPECT_EQ(alpha->max_active_tasks, 8);
  EXPECT_FALSE(alpha->has_import_errors);
  EXPECT_FALSE(alpha->last_parsed_time.empty());
  EXPECT_EQ(alpha->next_dagrun_logical_date, "2024-01-02T06:00:00.000000Z");
  EXPECT_EQ(alpha->next_dagrun_data_interval_start, "2024-01-02T06:00:00.000000Z");
  EXPECT_EQ(alpha->next_dagrun_data_interval_end, "2024-01-03T06:00:00.000000Z");
  EXPECT_EQ(alpha->next_dagrun_run_after, "2024-01-03T06:00:00.000000Z");

  auto beta = p_->GetDag(d_, "beta");
  EXPECT_TRUE(beta->has_import_errors);
  EXPECT_TRUE(beta->is_paused);
  EXPECT_EQ(beta->timetable_summary, std::nullopt);
  EXPECT_EQ(beta->next_dagrun_run_after, "");
  EXPECT_TRUE(beta->tags.empty());

  auto gamma = p_->GetDag(d_, "gamma");  // stale, still there
  ASSERT_TRUE(gamma.ok());
  EXPECT_TRUE(gamma->is_stale);

  auto missing = p_->GetDag(d_, "nope");
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_EQ(missing.status().message(), "The DAG with dag_id: `nope` was not found");

  auto paused = p_->SetPaused(d_, "alpha", true);
  ASSERT_TRUE(paused.ok()) << paused.status().ToString();
  EXPECT_TRUE(paused->is_paused);
  EXPECT_EQ(paused->next_dagrun_logical_date, "");  // a paused DAG has no next run
  EXPECT_TRUE(p_->GetDag(d_, "alpha")->is_paused);
  EXPECT_FALSE(p_->SetPaused(d_, "alpha", false)->is_paused);
  EXPECT_EQ(p_->SetPaused(d_, "nope", true).status().code(), Code::kNotFound);
  EXPECT_EQ(p_->GetDag(other_, "alpha")->is_paused, true);  // the other deployment's alpha
}

// ---- import errors

TEST_F(PipelinesReadTest, ImportErrors) {
  auto list = p_->ListImportErrors(d_, {});
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  EXPECT_EQ(list->total, 2);
  EXPECT_EQ(Field(list->items, &model::ImportErrorRow::filename),
            (std::vector<std::string>{"beta.yaml", "broken.yaml"}));
  const model::ImportErrorRow& e = list->items[0];
  EXPECT_EQ(e.line, 3);
  EXPECT_EQ(e.message, "mapping values are not allowed");
  EXPECT_EQ(e.bundle_version, "sha256:b2");
  EXPECT_FALSE(e.timestamp.empty());

  PageRequest desc;
  desc.order_by = "-filename";
  EXPECT_EQ(p_->ListImportErrors(d_, desc)->items[0].filename, "broken.yaml");
  PageRequest pattern;
  pattern.pattern = "brok";
  EXPECT_EQ(p_->ListImportErrors(d_, pattern)->total, 1);

  auto got = p_->GetImportError(d_, e.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->filename, "beta.yaml");
  int64_t elsewhere =
      std::stoll(Raw("SELECT id FROM import_errors WHERE filename = "
                     "'elsewhere.yaml'"));
  auto hidden = p_->GetImportError(d_, elsewhere);
  EXPECT_EQ(hidden.status().code(), Code::kNotFound);
  EXPECT_EQ(hidden.status().message(), "The ImportError with import_error_id: `" +
                                           std::to_string(elsewhere) + "` was not found");
}

// ---- runs

TEST_F(PipelinesReadTest, ListAndGetRuns) {
  auto all = p_->ListRuns(d_, "alpha", {});
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(all->total, 3);
  EXPECT_EQ(
      Field(all->items, &model::DagRun::run_id),
      (std::vector<std::string>{"scheduled__2024-01-01", "manual__1", "scheduled__2024-01-02"}));
  EXPECT_EQ(p_->ListRuns(d_, "~", {})->total, 3);
  EXPECT_EQ(p_->ListRuns(d_, "beta", {})->total, 0);

  RunFilter states;
  states.states = {"failed", "success"};
  EXPECT_EQ(p_->ListRuns(d_, "alpha", states)->total, 2);
  RunFilter pattern;
  pattern.page.pattern = "manual";
  EXPECT_EQ(Field(p_->ListRuns(d_, "alpha", pattern)->items, &model::DagRun::run_id),
            (std::vector<std::string>{"manual__1"}));
  RunFilter by_run_after;
  by_run_after.page.order_by = "-run_after";
  by_run_after.page.limit = 2;
  auto page = p_->ListRuns(d_, "alpha", by_run_after);
  EXPECT_EQ(page->total, 3);
  EXPECT_EQ(Field(page->items, &model::DagRun::run_id),
            (std::vector<std::string>{"manual__1", "scheduled__2024-01-02"}));
  RunFilter bad;
  bad.page.order_by = "conf";
  EXPECT_EQ(p_->ListRuns(d_, "alpha", bad).status().code(), Code::kInvalidArgument);

  auto missing_dag = p_->ListRuns(d_, "nope", {});
  EXPECT_EQ(missing_dag.status().code(), Code::kNotFound);
  EXPECT_EQ(missing_dag.status().message(), "The DAG with dag_id: `nope` was not found");

  auto run = p_->GetRun(d_, "alpha", "scheduled__2024-01-01");
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  EXPECT_EQ(std::to_string(run->pk), failed_);
  EXPECT_EQ(run->state, "failed");
  EXPECT_EQ(run->logical_date, "2024-01-01T06:00:00.000000Z");
  EXPECT_EQ(run->run_after, "2024-01-02T06:00:00.000000Z");
  EXPECT_EQ(run->end_date, "2024-01-02T07:00:00.000000Z");
  EXPECT_EQ(run->data_interval_start, "");
  EXPECT_EQ(run->run_type, "scheduled");
  EXPECT_EQ(run->triggered_by, "timetable");
  EXPECT_EQ(run->conf, "{\"a\": 1}");
  EXPECT_EQ(run->note, std::nullopt);
  EXPECT_EQ(run->bundle_version, "sha256:b1");
  EXPECT_EQ(run->dag_version.id, kV1);
  EXPECT_EQ(run->dag_version.version_number, 1);
  EXPECT_EQ(run->dag_version.dag_id, "alpha");
  EXPECT_EQ(p_->GetRun(d_, "alpha", "manual__1")->logical_date, "");

  auto missing = p_->GetRun(d_, "alpha", "nope");
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_EQ(missing.status().message(),
            "The DagRun with dag_id: `alpha` and run_id: `nope` was not found");
  EXPECT_EQ(p_->GetRun(other_, "alpha", "manual__1").status().code(), Code::kNotFound);
}

TEST_F(PipelinesReadTest, MarkRunSuccess) {
  auto run = p_->PatchRun(d_, "alpha", "manual__1", "success", std::nullopt);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  EXPECT_EQ(run->state, "success");
  EXPECT_FALSE(run->end_date.empty());
  auto tis = p_->ListTaskInstances(d_, "alpha", "manual__1", {});
  ASSERT_TRUE(tis.ok());
  for (const TaskInstance& ti : tis->items) {
    EXPECT_EQ(ti.state, "success") << ti.task_id;
    EXPECT_FALSE(ti.end_date.empty()) << ti.task_id;
  }
  // Finished task instances keep their state.
  auto failed = p_->PatchRun(d_, "alpha", "scheduled__2024-01-01", "success", std::nullopt);
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(p_->GetTaskInstance(d_, "alpha", "scheduled__2024-01-01", "transform")->state,
            "failed");
}

TEST_F(PipelinesReadTest, MarkRunFailedNoteAndQueued) {
  auto run = p_->PatchRun(d_, "alpha", "manual__1", "failed", std::string("looked at it"));
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  EXPECT_EQ(run->state, "failed");
  EXPECT_EQ(run->note, "looked at it");
  auto tis = p_->ListTaskInstances(d_, "alpha", "manual__1", {});
  std::vector<std::string> states = Field(tis->items, &TaskInstance::state);
  EXPECT_EQ(states, (std::vector<std::string>{"failed", "failed", "skipped"}));

  // The note alone; then cleared.
  auto noted = p_->PatchRun(d_, "alpha", "manual__1", std::nullopt, std::string("again"));
  EXPECT_EQ(noted->state, "failed");
  EXPECT_EQ(noted->note, "again");
  auto cleared = p_->PatchRun(d_, "alpha", "manual__1", std::nullopt, std::optional<std::string>());
  EXPECT_EQ(cleared->note, std::nullopt);

  auto queued = p_->PatchRun(d_, "alpha", "manual__1", "queued", std::nullopt);
  ASSERT_TRUE(queued.ok());
  EXPECT_EQ(queued->state, "queued");
  EXPECT_EQ(queued->start_date, "");
  EXPECT_EQ(queued->end_date, "");

  auto bad = p_->PatchRun(d_, "alpha", "manual__1", "running", std::nullopt);
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(p_->PatchRun(d_, "alpha", "nope", "failed", std::nullopt).status().code(),
            Code::kNotFound);
}

TEST_F(PipelinesReadTest, DeleteRunTakesItsTaskInstancesHistoryAndXComs) {
  ASSERT_TRUE(p_->DeleteRun(d_, "alpha", "scheduled__2024-01-01").ok());
  EXPECT_EQ(p_->GetRun(d_, "alpha", "scheduled__2024-01-01").status().code(), Code::kNotFound);
  for (const char* table : {"task_instances", "task_instance_history", "xcoms"}) {
    EXPECT_EQ(Raw(std::string("SELECT count(*) FROM ") + table + " WHERE run_pk = $1", {failed_}),
              "0")
        << table;
  }
  EXPECT_EQ(Raw("SELECT count(*) FROM task_instances"), "4");
  auto again = p_->DeleteRun(d_, "alpha", "scheduled__2024-01-01");
  EXPECT_EQ(again.code(), Code::kNotFound);
  EXPECT_EQ(p_->DeleteRun(other_, "alpha", "manual__1").code(), Code::kNotFound);
}

// ---- task instances and tries

TEST_F(PipelinesReadTest, ListAndGetTaskInstances) {
  auto tis = p_->ListTaskInstances(d_, "alpha", "scheduled__2024-01-01", {});
  ASSERT_TRUE(tis.ok()) << tis.status().ToString();
  EXPECT_EQ(tis->total, 3);
  EXPECT_EQ(TaskIds(tis->items), (std::vector<std::string>{"extract", "transform", "load"}));

  TiFilter by_id;
  by_id.page.order_by = "-task_id";
  EXPECT_EQ(TaskIds(p_->ListTaskInstances(d_, "alpha", "scheduled__2024-01-01", by_id)->items),
            (std::vector<std::string>{"transform", "load", "extract"}));
  TiFilter none;
  none.states = {"none", "queued"};
  EXPECT_EQ(TaskIds(p_->ListTaskInstances(d_, "alpha", "manual__1", none)->items),
            (std::vector<std::string>{"transform", "load"}));
  TiFilter pattern;
  pattern.page.pattern = "xtr";
  EXPECT_EQ(p_->ListTaskInstances(d_, "~", "~", pattern)->total, 3);
  TiFilter page;
  page.page.limit = 1;
  page.page.offset = 2;
  auto last = p_->ListTaskInstances(d_, "alpha", "manual__1", page);
  EXPECT_EQ(last->total, 3);
  EXPECT_EQ(TaskIds(last->items), (std::vector<std::string>{"load"}));

  auto missing_run = p_->ListTaskInstances(d_, "alpha", "nope", {});
  EXPECT_EQ(missing_run.status().code(), Code::kNotFound);
  EXPECT_EQ(missing_run.status().message(),
            "The DagRun with dag_id: `alpha` and run_id: `nope` was not found");
  EXPECT_EQ(p_->ListTaskInstances(d_, "nope", "~", {}).status().code(), Code::kNotFound);

  auto ti = p_->GetTaskInstance(d_, "alpha", "manual__1", "extract");
  ASSERT_TRUE(ti.ok()) << ti.status().ToString();
  EXPECT_EQ(ti->id, running_extract_);
  EXPECT_EQ(ti->state, "running");
  EXPECT_EQ(ti->try_number, 1);
  EXPECT_EQ(ti->hostname, "w1");
  EXPECT_EQ(ti->unixname, "tandem");
  EXPECT_EQ(ti->pid, 4242);
  EXPECT_EQ(ti->operator_name, "BashOperator");
  EXPECT_EQ(ti->pool, "default_pool");
  EXPECT_EQ(ti->run_after, "2024-01-05T00:00:00.000000Z");
  EXPECT_EQ(ti->logical_date, "");
  EXPECT_FALSE(ti->start_date.empty());
  EXPECT_EQ(ti->end_date, "");
  EXPECT_EQ(ti->dag_version_id, kV1);
  EXPECT_EQ(ti->dag_version_number, 1);
  EXPECT_EQ(ti->bundle_version, "sha256:b1");
  auto load = p_->GetTaskInstance(d_, "alpha", "manual__1", "load");
  EXPECT_EQ(load->state, "");
  EXPECT_EQ(load->pid, std::nullopt);

  auto missing = p_->GetTaskInstance(d_, "alpha", "manual__1", "nope");
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_EQ(missing.status().message(),
            "The Task Instance with dag_id: `alpha`, run_id: `manual__1` and task_id: `nope` was "
            "not found");
}

TEST_F(PipelinesReadTest, TriesFromHistoryAndTheCurrentRow) {
  // Both tries of transform are in history; the current row is try 2 and is not repeated.
  auto tries = p_->ListTries(d_, "alpha", "scheduled__2024-01-01", "transform");
  ASSERT_TRUE(tries.ok()) << tries.status().ToString();
  ASSERT_EQ(tries->size(), 2u);
  EXPECT_EQ((*tries)[0].try_number, 1);
  EXPECT_EQ((*tries)[1].try_number, 2);
  EXPECT_EQ((*tries)[0].id, transform_);
  EXPECT_EQ((*tries)[0].hostname, "w0");
  EXPECT_EQ((*tries)[0].pid, 17);

  // A running try is not in history yet: it is the current row.
  auto running = p_->ListTries(d_, "alpha", "manual__1", "extract");
  ASSERT_EQ(running->size(), 1u);
  EXPECT_EQ((*running)[0].state, "running");
  EXPECT_EQ((*running)[0].hostname, "w1");
  // A task instance never queued has no tries.
  EXPECT_TRUE(p_->ListTries(d_, "alpha", "manual__1", "load")->empty());
  EXPECT_EQ(p_->ListTries(d_, "alpha", "manual__1", "nope").status().code(), Code::kNotFound);

  auto first = p_->GetTry(d_, "alpha", "scheduled__2024-01-01", "transform", 1);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->state, "failed");
  EXPECT_EQ(first->try_number, 1);
  auto current = p_->GetTry(d_, "alpha", "manual__1", "extract", 1);
  ASSERT_TRUE(current.ok());
  EXPECT_EQ(current->state, "running");
  auto never = p_->GetTry(d_, "alpha", "manual__1", "extract", 2);
  EXPECT_EQ(never.status().code(), Code::kNotFound);
  EXPECT_NE(never.status().message().find("try_number: `2`"), std::string::npos);
  EXPECT_EQ(p_->GetTry(d_, "alpha", "manual__1", "load", 0).status().code(), Code::kNotFound);
}

// ---- XComs

TEST_F(PipelinesReadTest, XComs) {
  auto one = p_->ListXComs(d_, "alpha", "scheduled__2024-01-01", "extract", {});
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  ASSERT_EQ(one->total, 1);
  EXPECT_EQ(one->items[0].key, "return_value");
  EXPECT_EQ(one->items[0].value, "{\"rows\": 3}");
  EXPECT_EQ(one->items[0].logical_date, "2024-01-01T06:00:00.000000Z");
  EXPECT_FALSE(one->items[0].timestamp.empty());

  auto all = p_->ListXComs(d_, "alpha", "scheduled__2024-01-01", "~", {});
  EXPECT_EQ(Field(all->items, &model::XCom::key),
            (std::vector<std::string>{"log", "return_value"}));
  PageRequest desc;
  desc.order_by = "-key";
  EXPECT_EQ(p_->ListXComs(d_, "~", "~", "~", desc)->items[0].key, "return_value");
  EXPECT_EQ(p_->ListXComs(d_, "alpha", "manual__1", "~", {})->total, 0);
  EXPECT_EQ(p_->ListXComs(d_, "alpha", "nope", "~", {}).status().code(), Code::kNotFound);

  auto x = p_->GetXCom(d_, "alpha", "scheduled__2024-01-01", "transform", "log");
  ASSERT_TRUE(x.ok());
  EXPECT_EQ(x->value, "\"partial\"");
  EXPECT_EQ(x->task_id, "transform");
  auto missing = p_->GetXCom(d_, "alpha", "scheduled__2024-01-01", "transform", "nope");
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_EQ(missing.status().message(), "XCom entry with key: `nope` not found");
}

// ---- clearing

TEST_F(PipelinesReadTest, ClearDryRunChangesNothing) {
  ClearRequest req;
  req.only_failed = true;
  req.dry_run = true;
  auto tis = p_->ClearRun(d_, "alpha", "scheduled__2024-01-01", req);
  ASSERT_TRUE(tis.ok()) << tis.status().ToString();
  EXPECT_EQ(TaskIds(*tis), (std::vector<std::string>{"transform", "load"}));
  EXPECT_EQ((*tis)[0].state, "failed");
  EXPECT_EQ(p_->GetRun(d_, "alpha", "scheduled__2024-01-01")->state, "failed");
  EXPECT_EQ(Raw("SELECT count(*) FROM xcoms"), "2");
  EXPECT_EQ(Raw("SELECT count(*) FROM task_instances WHERE state IS NULL"), "1");
  EXPECT_EQ(p_->ClearRun(d_, "alpha", "nope", req).status().code(), Code::kNotFound);
}

TEST_F(PipelinesReadTest, ClearOnlyFailed) {
  ClearRequest req;
  req.only_failed = true;
  auto tis = p_->ClearRun(d_, "alpha", "scheduled__2024-01-01", req);
  ASSERT_TRUE(tis.ok()) << tis.status().ToString();
  EXPECT_EQ(TaskIds(*tis), (std::vector<std::string>{"transform", "load"}));
  const TaskInstance& transform = (*tis)[0];
  EXPECT_EQ(transform.state, "");
  EXPECT_EQ(transform.try_number, 2);  // the next queueing makes it try 3
  EXPECT_EQ(transform.max_tries, 3);   // try_number + retries: its retry comes back
  EXPECT_EQ(transform.start_date, "");
  EXPECT_EQ(transform.end_date, "");
  EXPECT_EQ(transform.hostname, "");
  EXPECT_EQ(transform.pid, std::nullopt);

  auto run = p_->GetRun(d_, "alpha", "scheduled__2024-01-01");
  EXPECT_EQ(run->state, "queued");
  EXPECT_EQ(run->start_date, "");
  EXPECT_EQ(run->end_date, "");
  EXPECT_FALSE(run->queued_at.empty());
  EXPECT_EQ(p_->GetTaskInstance(d_, "alpha", "scheduled__2024-01-01", "extract")->state, "success");
  // The cleared task's XComs are gone, the others stay.
  auto xcoms = p_->ListXComs(d_, "alpha", "scheduled__2024-01-01", "~", {});
  EXPECT_EQ(Field(xcoms->items, &model::XCom::task_id), (std::vector<std::string>{"extract"}));
  // History keeps the finished tries.
  EXPECT_EQ(p_->ListTries(d_, "alpha", "scheduled__2024-01-01", "transform")->size(), 2u);

  // Nothing failed any more: a second clear selects nothing and leaves the run alone.
  ASSERT_TRUE(p_->PatchRun(d_, "alpha", "scheduled__2024-01-01", "success", std::nullopt).ok());
  auto none = p_->ClearRun(d_, "alpha", "scheduled__2024-01-01", req);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(p_->GetRun(d_, "alpha", "scheduled__2024-01-01")->state, "success");
}

TEST_F(PipelinesReadTest, ClearAllInterruptsRunningTries) {
  auto tis = p_->ClearRun(d_, "alpha", "manual__1", {});
  ASSERT_TRUE(tis.ok()) << tis.status().ToString();
  EXPECT_EQ(TaskIds(*tis), (std::vector<std::string>{"extract", "transform", "load"}));
  for (const TaskInstance& ti : *tis) {
    EXPECT_EQ(ti.state, "") << ti.task_id;
    EXPECT_EQ(ti.queued_when, "") << ti.task_id;
  }
  EXPECT_EQ(Raw("SELECT count(*) FROM task_instances WHERE run_pk = $1 AND (worker_id IS NOT "
                "NULL OR next_retry_at IS NOT NULL)",
                {running_}),
            "0");
  // The running and the queued try each ended as failed in history.
  auto tries = p_->ListTries(d_, "alpha", "manual__1", "extract");
  ASSERT_EQ(tries->size(), 1u);
  EXPECT_EQ((*tries)[0].state, "failed");
  EXPECT_EQ((*tries)[0].hostname, "w1");
  EXPECT_EQ((*tries)[0].pid, 4242);
  EXPECT_FALSE((*tries)[0].end_date.empty());
  EXPECT_EQ(Raw("SELECT state FROM task_instance_history WHERE run_pk = $1 AND "
                "task_id = 'transform'",
                {running_}),
            "failed");
  EXPECT_EQ(Raw("SELECT count(*) FROM task_instance_history WHERE run_pk = $1", {running_}), "2");
  EXPECT_EQ(p_->GetRun(d_, "alpha", "manual__1")->state, "queued");
}

TEST_F(PipelinesReadTest, ClearSomeTasks) {
  ClearRequest req;
  req.task_ids = {"extract", "nope"};
  auto tis = p_->ClearRun(d_, "alpha", "scheduled__2024-01-01", req);
  ASSERT_TRUE(tis.ok()) << tis.status().ToString();
  EXPECT_EQ(TaskIds(*tis), (std::vector<std::string>{"extract"}));
  EXPECT_EQ(p_->GetTaskInstance(d_, "alpha", "scheduled__2024-01-01", "transform")->state,
            "failed");
  EXPECT_EQ(p_->ListXComs(d_, "alpha", "scheduled__2024-01-01", "extract", {})->total, 0);
  EXPECT_EQ(p_->ListXComs(d_, "alpha", "scheduled__2024-01-01", "transform", {})->total, 1);
}

TEST_F(PipelinesReadTest, ClearOnLatestVersion) {
  ClearRequest dry;
  dry.run_on_latest_version = true;
  dry.dry_run = true;
  auto would = p_->ClearRun(d_, "alpha", "scheduled__2024-01-01", dry);
  ASSERT_TRUE(would.ok()) << would.status().ToString();
  EXPECT_EQ(TaskIds(*would), (std::vector<std::string>{"extract", "load"}));
  EXPECT_EQ(p_->GetRun(d_, "alpha", "scheduled__2024-01-01")->dag_version.version_number, 1);

  ClearRequest req;
  req.run_on_latest_version = true;
  auto tis = p_->ClearRun(d_, "alpha", "scheduled__2024-01-01", req);
  ASSERT_TRUE(tis.ok()) << tis.status().ToString();
  // transform left the DAG in version 2: removed, not cleared.
  EXPECT_EQ(TaskIds(*tis), (std::vector<std::string>{"extract", "load"}));
  for (const TaskInstance& ti : *tis) {
    EXPECT_EQ(ti.dag_version_id, kV2) << ti.task_id;
    EXPECT_EQ(ti.dag_version_number, 2) << ti.task_id;
    EXPECT_EQ(ti.state, "") << ti.task_id;
  }
  EXPECT_EQ((*tis)[1].pool, "loaders");
  EXPECT_EQ((*tis)[1].max_tries, 2);  // try 0 + 2 retries

  auto run = p_->GetRun(d_, "alpha", "scheduled__2024-01-01");
  EXPECT_EQ(run->dag_version.id, kV2);
  EXPECT_EQ(run->bundle_version, "sha256:b2");
  EXPECT_EQ(run->state, "queued");

  auto all = p_->ListTaskInstances(d_, "alpha", "scheduled__2024-01-01", {});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(TaskIds(all->items),
            (std::vector<std::string>{"extract", "load", "report", "transform"}));
  const TaskInstance& report = all->items[2];
  EXPECT_EQ(report.state, "");  // added with the new version
  EXPECT_EQ(report.try_number, 0);
  EXPECT_EQ(report.dag_version_id, kV2);
  EXPECT_EQ(report.operator_name, "BashOperator");
  const TaskInstance& transform = all->items[3];
  EXPECT_EQ(transform.state, "removed");
  EXPECT_EQ(transform.dag_version_id, kV1);
  EXPECT_EQ(Raw("SELECT retry_delay_s FROM task_instances WHERE task_id = 'report'"), "60");
}

}  // namespace
}  // namespace tandem::store
