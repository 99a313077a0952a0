// The scheduler against a real PostgreSQL, on a simulated clock and without workers: which runs
// it creates, which task instances it queues within which limits, and that no pass — nor two
// schedulers at once — ever makes a run twice.
#include "scheduler/scheduler.h"

#include <gtest/gtest.h>

#include <thread>

#include "crypto/secret_box.h"
#include "dag/bundle.h"
#include "harness/pg_harness.h"
#include "store/execution.h"
#include "store/migrations.h"
#include "store/pipelines.h"
#include "store/scheduling.h"
#include "store/store.h"

namespace tandem::scheduler {
namespace {

using tandem::testing::PgHarness;

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pool_ = std::make_unique<pg::Pool>(PgHarness::Get().NewDatabase(), 4);
    auto c = pool_->Acquire();
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(store::Migrate(**c).ok());
    auto s = store::Store::Open(pool_.get(), *SecretBox::FromBase64(NewSecretKeyBase64()));
    ASSERT_TRUE(s.ok());
    store_ = std::move(s).value();
    pipelines_ = std::make_unique<store::Pipelines>(pool_.get());
    scheduling_ = std::make_unique<store::Scheduling>(pool_.get());
    execution_ = std::make_unique<store::Execution>(pool_.get());
    clock_.SetWall(WallTime(std::chrono::seconds(1735689600)));  // 2025-01-01T00:00:00Z
    scheduler_ = std::make_unique<Scheduler>(scheduling_.get(), &clock_, &metrics_,
                                             SchedulerOptions{}, [this] { ++queued_calls_; });
  }

  DeploymentId Deployment(const std::string& name, int worker_slots = 16) {
    model::Deployment d;
    d.name = name;
    d.config.worker_slots = worker_slots;
    auto r = store_->CreateDeployment(d);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r->id;
  }
  void Deploy(const DeploymentId& d, const std::string& yaml) {
    std::map<std::string, std::string> files = {{"dags.yaml", yaml}};
    dag::Bundle b = dag::ParseBundle(files);
    ASSERT_TRUE(b.errors.empty()) << b.errors[0].message;
    auto r = pipelines_->Deploy(d, files, b);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    for (const dag::DagSpec& dag : b.dags) {
      ASSERT_TRUE(pipelines_->SetPaused(d, dag.dag_id, false).ok());
    }
  }
  // Runs passes until nothing changes.
  void Settle() {
    for (int i = 0; i < 50; ++i) {
      auto r = scheduler_->RunPass();
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      if (!*r) return;
    }
    FAIL() << "the scheduler did not settle";
  }
  int Count(const std::string& sql) {
    auto c = pool_->Acquire();
    auto r = (*c)->Exec(sql);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return static_cast<int>(r->Int(0, 0));
  }
  // Worker `id` (a heartbeat every 100 ms) claims up to 10 queued task instances, then stays
  // silent for more than three heartbeats, so its tries count as lost. What it claimed.
  std::vector<store::ClaimedTask> ClaimAndGoQuiet(const std::string& id) {
    store::WorkerInfo w{id, "h", 10, std::nullopt, 100};
    auto claimed = execution_->Claim(w, 10);
    EXPECT_TRUE(claimed.ok()) << claimed.status().ToString();
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    return claimed.ok() ? *claimed : std::vector<store::ClaimedTask>{};
  }
  std::string Trigger(const DeploymentId& d, const std::string& dag) {
    auto r = pipelines_->Trigger(d, dag, {});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->run_id : "";
  }

  FakeClock clock_;
  MetricsRegistry metrics_{Labels{}};
  std::unique_ptr<pg::Pool> pool_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<store::Pipelines> pipelines_;
  std::unique_ptr<store::Scheduling> scheduling_;
  std::unique_ptr<store::Execution> execution_;
  std::unique_ptr<Scheduler> scheduler_;
  int queued_calls_ = 0;
};

std::string Fan(const std::string& dag, int n, const std::string& extra = "") {
  std::string y = dag + ":\n" + extra + "  tasks:\n";
  for (int i = 0; i < n; ++i) {
    y += "    t" + std::to_string(i) + ": {operator: bash, bash_command: 'true'}\n";
  }
  return y;
}

TEST_F(SchedulerTest, CatchupCreatesEachIntervalOnceAcrossPassesAndSchedulers) {
  DeploymentId d = Deployment("catchup");
  // Daily from 5 days before the simulated now: five complete intervals.
  Deploy(d,
         "daily:\n  schedule: '@daily'\n  start_date: 2024-12-27\n  catchup: true\n"
         "  max_active_runs: 10\n  tasks:\n    a: {operator: bash, bash_command: 'true'}\n");
  Settle();
  EXPECT_EQ(Count("SELECT count(*) FROM dag_runs"), 5);
  EXPECT_EQ(Count("SELECT count(*) FROM dag_runs WHERE logical_date = '2024-12-27'"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM dag_runs WHERE logical_date = '2024-12-31'"), 1);
  // A second scheduler (a restart, a race) with nothing cached decides the same.
  Scheduler other(scheduling_.get(), &clock_, &metrics_, SchedulerOptions{}, [] {});
  ASSERT_TRUE(
      pool_
          ->WithTx([](pg::Conn& c) {
            return c.Exec("UPDATE dags SET next_interval_start = NULL, next_interval_end = NULL")
                .status();
          })
          .ok());
  clock_.Advance(std::chrono::seconds(1));  // both look for due runs on this pass
  std::thread t([&] { (void)other.RunPass(); });
  ASSERT_TRUE(scheduler_->RunPass().ok());
  t.join();
  EXPECT_EQ(Count("SELECT count(*) FROM dag_runs"), 5);
  // A day later, one more.
  clock_.Advance(std::chrono::hours(24));
  Settle();
  EXPECT_EQ(Count("SELECT count(*) FROM dag_runs"), 6);
  EXPECT_EQ(Count("SELECT count(*) FROM task_instances"), 6);
}

TEST_F(SchedulerTest, WithoutCatchupOnlyTheLatestIntervalRuns) {
  DeploymentId d = Deployment("nocatchup");
  Deploy(d,
         "hourly:\n  schedule: '0 * * * *'\n  start_date: 2024-12-01\n  tasks:\n"
         "    a: {operator: bash, bash_command: 'true'}\n");
  Settle();
  EXPECT_EQ(Count("SELECT count(*) FROM dag_runs"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM dag_runs WHERE logical_date = '2024-12-31T23:00:00Z' "
                  "AND data_interval_end = '2025-01-01T00:00:00Z'"),
            1);
}

TEST_F(SchedulerTest, MaxActiveRunsHoldsRunsQueued) {
  DeploymentId d = Deployment("maxruns");
  Deploy(d, Fan("m", 1, "  max_active_runs: 2\n"));
  for (int i = 0; i < 4; ++i) Trigger(d, "m");
  Settle();
  EXPECT_EQ(Count("SELECT count(*) FROM dag_runs WHERE state = 'running'"), 2);
  EXPECT_EQ(Count("SELECT count(*) FROM dag_runs WHERE state = 'queued'"), 2);
  // A DAG that does not say takes its deployment's schedule defaults.
  model::Deployment one;
  one.name = "onerun";
  one.config.schedule.max_active_runs = 1;
  auto created = store_->CreateDeployment(one);
  ASSERT_TRUE(created.ok());
  Deploy(created->id, Fan("n", 1));
  Trigger(created->id, "n");
  Trigger(created->id, "n");
  Settle();
  EXPECT_EQ(Count("SELECT count(*) FROM dag_runs r JOIN deployments d ON d.id = r.deployment_id "
                  "WHERE d.name = 'onerun' AND r.state = 'running'"),
            1);
}

TEST_F(SchedulerTest, QueueingRespectsPoolsMaxActiveTasksAndWorkerSlots) {
  DeploymentId d = Deployment("limits", /*worker_slots=*/5);
  Deploy(d, Fan("wide", 10, "  max_active_tasks: 3\n"));
  Trigger(d, "wide");
  Trigger(d, "wide");
  Settle();
  // Two runs of max 3 each, but the deployment runs at most 5.
  EXPECT_EQ(Count("SELECT count(*) FROM task_instances WHERE state = 'queued'"), 5);
  EXPECT_GT(queued_calls_, 0);
  // A pool of 1 slot bounds a deployment with more room.
  DeploymentId p = Deployment("pooled", 16);
  ASSERT_TRUE(store_->CreatePool(p, {"one", 1, std::nullopt, false}).ok());
  std::string y = "pooled:\n  default_args: {pool: one}\n  tasks:\n";
  for (int i = 0; i < 4; ++i) {
    y += "    t" + std::to_string(i) + ": {operator: bash, bash_command: 'true'}\n";
  }
  Deploy(p, y);
  Trigger(p, "pooled");
  Settle();
  EXPECT_EQ(Count("SELECT count(*) FROM task_instances WHERE state = 'queued' AND pool = 'one'"),
            1);
  EXPECT_EQ(Count("SELECT count(*) FROM task_instances WHERE state = 'scheduled' AND pool = "
                  "'one'"),
            3);
  auto one = store_->GetPool(p, "one");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->queued, 1);
  EXPECT_EQ(one->scheduled, 3);
  // -1 slots: unlimited.
  DeploymentId u = Deployment("unlimited", 16);
  ASSERT_TRUE(store_->CreatePool(u, {"any", -1, std::nullopt, false}).ok());
  std::string z = "free:\n  default_args: {pool: any}\n  tasks:\n";
  for (int i = 0; i < 4; ++i) {
    z += "    t" + std::to_string(i) + ": {operator: bash, bash_command: 'true'}\n";
  }
  Deploy(u, z);
  Trigger(u, "free");
  Settle();
  EXPECT_EQ(Count("SELECT count(*) FROM task_instances WHERE state = 'queued' AND pool = 'any'"),
            4);
}

TEST_F(SchedulerTest, EmptyOperatorsSucceedInPlaceAndRunsFinish) {
  DeploymentId d = Deployment("empty");
  Deploy(d,
         "e:\n  tasks:\n    a: {operator: empty}\n    b: {operator: empty, dependencies: [a]}\n");
  std::string run = Trigger(d, "e");
  Settle();
  EXPECT_EQ(Count("SELECT count(*) FROM task_instances WHERE state = 'success'"), 2);
  EXPECT_EQ(Count("SELECT count(*) FROM dag_runs WHERE state = 'success'"), 1);
}

TEST_F(SchedulerTest, ALostWorkersTriesAreRetriedOrFailed) {
  DeploymentId d = Deployment("lost");
  Deploy(d,
         "l:\n  tasks:\n    again: {operator: bash, bash_command: 'true', retries: 1, "
         "retry_delay: 0}\n    once: {operator: bash, bash_command: 'true'}\n");
  Trigger(d, "l");
  Settle();
  const std::string worker = "00000000-0000-4000-8000-00000000000a";
  // The worker goes quiet: three heartbeats (300 ms here) later its tries are lost.
  const std::vector<store::ClaimedTask> claimed = ClaimAndGoQuiet(worker);
  ASSERT_EQ(claimed.size(), 2u);
  ASSERT_EQ(*scheduling_->ReapLost(30), 2);
  EXPECT_EQ(Count("SELECT count(*) FROM task_instances WHERE task_id = 'again' AND state = "
                  "'up_for_retry'"),
            1);
  EXPECT_EQ(Count("SELECT count(*) FROM task_instances WHERE task_id = 'once' AND state = "
                  "'failed'"),
            1);
  EXPECT_EQ(Count("SELECT count(*) FROM task_instance_history WHERE state = 'failed'"), 2);
  // Its late report changes nothing.
  auto late = execution_->Finish(worker, {{{claimed[0].ti_id, 1}, "success", std::nullopt}});
  ASSERT_TRUE(late.ok());
  EXPECT_FALSE((*late)[0]);
  clock_.Advance(std::chrono::seconds(1));  // retries are looked for every 250 ms
  Settle();                                 // the retry is queued again, as try 2
  EXPECT_EQ(Count("SELECT count(*) FROM task_instances WHERE task_id = 'again' AND state = "
                  "'queued' AND try_number = 2"),
            1);
}

// A try put back because its worker (or region) was lost is admitted after fresh work of the
// same priority weight for a minute — queued within the limits and claimed after it — and in
// its turn again once the minute is over. A region taking over hundreds of tries in a failover
// thereby starts what its users trigger at once.
TEST_F(SchedulerTest, FreshWorkIsAdmittedBeforeRecoveredRetries) {
  DeploymentId d = Deployment("recover", /*worker_slots=*/1);
  Deploy(d,
         "held:\n  tasks:\n    long: {operator: bash, bash_command: 'true', retries: 1, "
         "retry_delay: 0}\nfresh:\n  tasks:\n    ping: {operator: bash, bash_command: 'true'}\n");
  Trigger(d, "held");
  Settle();
  ASSERT_EQ(ClaimAndGoQuiet("00000000-0000-4000-8000-00000000000c").size(), 1u);
  ASSERT_EQ(*scheduling_->ReapLost(30), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM task_instances WHERE task_id = 'long' AND state = "
                  "'up_for_retry' AND recovered_at IS NOT NULL"),
            1);
  // The retry is due and scheduled first; the fresh task after it, in the same pass. One slot:
  // the fresh task takes it.
  Trigger(d, "fresh");
  clock_.Advance(std::chrono::seconds(1));
  Settle();
  EXPECT_EQ(Count("SELECT count(*) FROM task_instances WHERE task_id = 'ping' AND state = "
                  "'queued'"),
            1);
  EXPECT_EQ(Count("SELECT count(*) FROM task_instances WHERE task_id = 'long' AND state = "
                  "'scheduled'"),
            1);
  EXPECT_EQ(Count("SELECT count(*) FROM task_instances t JOIN task_instances u ON u.task_id = "
                  "'ping' WHERE t.task_id = 'long' AND t.scheduled_when <= u.scheduled_when"),
            1);

  // Claims take the same order: the recovered try queued first is claimed after the fresh one.
  auto c = pool_->Acquire();
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->Exec("UPDATE task_instances SET state = 'queued', queued_when = now() - "
                         "interval '1 second', try_number = try_number + 1 WHERE task_id = 'long'")
                  .ok());
  store::WorkerInfo v{"00000000-0000-4000-8000-00000000000d", "h", 4, std::nullopt, 1000};
  auto first = execution_->Claim(v, 1);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->size(), 1u);
  EXPECT_EQ((*first)[0].task_id, "ping");
  // A claimed try is no longer marked: if it fails by itself, its retry is ordinary.
  auto second = execution_->Claim(v, 1);
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(second->size(), 1u);
  EXPECT_EQ((*second)[0].task_id, "long");
  EXPECT_EQ(Count("SELECT count(*) FROM task_instances WHERE recovered_at IS NOT NULL"), 0);

  // A minute after it was put back, a recovered try waits in line like any other.
  ASSERT_TRUE((*c)->ExecScript("UPDATE task_instances SET state = 'queued', queued_when = now() - "
                               "interval '1 second', recovered_at = now() - interval '61 seconds' "
                               "WHERE task_id = 'long'; UPDATE task_instances SET state = "
                               "'queued', queued_when = now() WHERE task_id = 'ping'")
                  .ok());
  store::WorkerInfo x{"00000000-0000-4000-8000-00000000000e", "h", 4, std::nullopt, 1000};
  auto later = execution_->Claim(x, 1);
  ASSERT_TRUE(later.ok());
  ASSERT_EQ(later->size(), 1u);
  EXPECT_EQ((*later)[0].task_id, "long");
}

// A region that has just started acting (or whose statements just waited) gives workers time
// to heartbeat before it declares any of them lost.
TEST_F(SchedulerTest, NoTryIsReapedUntilWorkersCouldHeartbeat) {
  DeploymentId d = Deployment("hold");
  Deploy(d, "h:\n  tasks:\n    t: {operator: bash, bash_command: 'true'}\n");
  Trigger(d, "h");
  Settle();
  ASSERT_EQ(ClaimAndGoQuiet("00000000-0000-4000-8000-00000000000b").size(), 1u);
  bool acting = false;
  SchedulerOptions o;
  o.may_act = [&acting] { return acting; };
  Scheduler s(scheduling_.get(), &clock_, &metrics_, o, [] {});
  ASSERT_TRUE(s.RunPass().ok());  // not acting: nothing
  acting = true;
  clock_.Advance(std::chrono::seconds(1));
  ASSERT_TRUE(s.RunPass().ok());  // the first pass that acts holds reaping
  EXPECT_EQ(Count("SELECT count(*) FROM task_instances WHERE state = 'running'"), 1);
  clock_.Advance(o.reap_hold + std::chrono::seconds(1));
  ASSERT_TRUE(s.RunPass().ok());
  EXPECT_EQ(Count("SELECT count(*) FROM task_instances WHERE state = 'running'"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM task_instances WHERE state = 'failed'"), 1);
}

}  // namespace
}  // namespace tandem::scheduler
