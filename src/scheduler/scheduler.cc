#include "scheduler/scheduler.h"

#include <spdlog/spdlog.h>
#include <time.h>

#include "scheduler/trigger_rules.h"

namespace tandem::scheduler {
namespace {

// Decisions cascade (an upstream_failed task fails its own downstream tasks): a pass repeats
// deciding until nothing changes, at most this many times.
constexpr int kMaxDecideRounds = 16;

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

}  // namespace

Scheduler::Scheduler(store::Scheduling* scheduling, Clock* clock, MetricsRegistry* metrics,
                     SchedulerOptions options, std::function<void()> on_queued)
    : scheduling_(scheduling),
      clock_(clock),
      metrics_(metrics),
      options_(std::move(options)),
      on_queued_(std::move(on_queued)) {
  metrics_->Describe("tandem_scheduler_passes_total", "counter", "Scheduling passes run.");
  metrics_->Describe("tandem_scheduler_cpu_seconds_total", "counter",
                     "CPU time the scheduler thread has used.");
  metrics_->Describe("tandem_scheduler_runs_created_total", "counter",
                     "DAG runs the scheduler created from schedules.");
  metrics_->Describe("tandem_scheduler_tasks_queued_total", "counter",
                     "Task instance tries the scheduler queued.");
  metrics_->Describe("tandem_scheduler_tries_reaped_total", "counter",
                     "Running tries ended because their worker went quiet or they overran.");
}

Scheduler::~Scheduler() { Stop(); }

void Scheduler::Start() {
  {
    std::lock_guard lock(mu_);
    stopping_ = false;
  }
  thread_ = std::thread([this] { Loop(); });
}

void Scheduler::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Scheduler::Wake() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

std::optional<WallTime> Scheduler::last_pass() const {
  std::lock_guard lock(mu_);
  return last_pass_;
}

void Scheduler::Loop() {
  double cpu = ThreadCpuSeconds();
  Backoff backoff(std::chrono::milliseconds(100), std::chrono::seconds(5));
  bool more = false;
  while (true) {
    {
      std::unique_lock lock(mu_);
      if (!more) {
        cv_.wait_for(lock, options_.idle_poll, [&] { return woken_ || stopping_; });
      }
      if (stopping_) return;
      woken_ = false;
    }
    Result<bool> r = RunPass();
    double now_cpu = ThreadCpuSeconds();
    metrics_->Add("tandem_scheduler_cpu_seconds_total", {}, now_cpu - cpu);
    cpu = now_cpu;
    if (!r.ok()) {
      // PostgreSQL away (a restart, a failover): wait and go on; nothing is lost, the state is
      // all in the database.
      spdlog::warn("scheduler pass failed: {}", r.status().ToString());
      more = false;
      reap_hold_until_ = clock_->Now() + options_.reap_hold;
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, backoff.Next(), [&] { return stopping_; });
      continue;
    }
    backoff = Backoff(std::chrono::milliseconds(100), std::chrono::seconds(5));
    more = *r;
  }
}

const dag::Timetable* Scheduler::TimetableFor(const std::string& summary) {
  auto it = timetables_.find(summary);
  if (it == timetables_.end()) {
    Result<dag::Timetable> t = dag::Timetable::Parse(summary);
    if (!t.ok()) spdlog::error("schedule '{}' does not parse: {}", summary, t.status().message());
    it = timetables_.emplace(summary, t.ok() ? std::optional(*t) : std::nullopt).first;
  }
  return it->second ? &*it->second : nullptr;
}

Result<int> Scheduler::CreateDueRuns() {
  const dag::TimePoint now = std::chrono::floor<std::chrono::seconds>(clock_->Wall());
  ASSIGN_OR_RETURN(std::vector<store::DueDag> due, scheduling_->DueDags(now));
  int created = 0;
  for (const store::DueDag& d : due) {
    const dag::Timetable* tt = TimetableFor(d.timetable);
    if (tt == nullptr || !d.start_date || d.room <= 0) continue;
    std::vector<store::ScheduledRun> runs;
    std::optional<dag::Interval> next;
    auto add = [&](const dag::Interval& i) {
      runs.push_back({d.deployment, d.dag_id, i, d.dag_version_id, d.bundle_version});
    };
    if (tt->once()) {
      if (!d.last && *d.start_date <= now) add({*d.start_date, *d.start_date});
      if (!d.last && *d.start_date > now) next = dag::Interval{*d.start_date, *d.start_date};
    } else {
      next = d.next ? d.next : (d.last ? tt->After(*d.last) : tt->First(*d.start_date));
      if (!d.catchup) {
        // Without catchup, only the latest complete interval runs; older ones are skipped.
        std::optional<dag::Interval> latest = tt->LatestComplete(*d.start_date, now);
        if (latest && (!next || latest->start > next->start)) next = latest;
      }
      int room = std::min(d.room, options_.max_runs_per_dag_per_pass);
      while (next && next->end <= now && room > 0 && (!d.end_date || next->start <= *d.end_date)) {
        add(*next);
        --room;
        next = tt->After(*next);
      }
      if (next && d.end_date && next->start > *d.end_date) next.reset();
    }
    if (!runs.empty()) {
      ASSIGN_OR_RETURN(int n, scheduling_->CreateRuns(runs));
      created += n;
    }
    RETURN_IF_ERROR(scheduling_->SetNextInterval(d.deployment, d.dag_id, next));
  }
  return created;
}

Result<bool> Scheduler::RunPass() {
  if (options_.may_act && !options_.may_act()) {
    acted_ = false;
    return false;
  }
  bool changed = false;
  const MonoTime now = clock_->Now();
  pass_started_ = now;
  if (!acted_) reap_hold_until_ = now + options_.reap_hold;  // workers (re)start heartbeating
  acted_ = true;
  int created = 0, retried = 0;
  if (!last_due_ || now - *last_due_ >= options_.due_every) {
    last_due_ = now;
    ASSIGN_OR_RETURN(created, CreateDueRuns());
    metrics_->Add("tandem_scheduler_runs_created_total", {}, created);
  }
  ASSIGN_OR_RETURN(int started, scheduling_->StartRuns());
  if (!last_retry_ || now - *last_retry_ >= options_.retry_every) {
    last_retry_ = now;
    ASSIGN_OR_RETURN(retried, scheduling_->RetryDue());
  }
  changed = created + started + retried > 0;
  for (int round = 0; round < kMaxDecideRounds; ++round) {
    ASSIGN_OR_RETURN(std::vector<store::PendingTask> pending, scheduling_->PendingTasks());
    std::vector<store::Decision> decisions;
    bool cascades = false;  // a finished state may decide a downstream task in the next round
    for (const store::PendingTask& t : pending) {
      if (std::optional<std::string> s = Evaluate(t)) {
        cascades = cascades || *s != "scheduled";
        decisions.push_back({t.ti_id, *s});
      }
    }
    if (decisions.empty()) break;
    ASSIGN_OR_RETURN(int n, scheduling_->Decide(decisions));
    if (n == 0) break;
    changed = true;
    if (!cascades) break;
  }
  ASSIGN_OR_RETURN(int queued, scheduling_->QueueTasks());
  metrics_->Add("tandem_scheduler_tasks_queued_total", {}, queued);
  if (queued > 0) on_queued_();
  ASSIGN_OR_RETURN(int finished, scheduling_->FinishRuns());
  // A finished run makes room under max_active_runs: the next pass starts the next one.
  changed = changed || queued > 0 || finished > 0;
  if (clock_->Now() - pass_started_ > options_.stall) {
    // This pass's statements waited: so may the workers' heartbeats have.
    reap_hold_until_ = clock_->Now() + options_.reap_hold;
  }
  if (clock_->Now() - last_reap_ >= options_.reap_every && clock_->Now() >= reap_hold_until_) {
    last_reap_ = clock_->Now();
    ASSIGN_OR_RETURN(int reaped, scheduling_->ReapLost(options_.timeout_grace_seconds));
    metrics_->Add("tandem_scheduler_tries_reaped_total", {}, reaped);
    changed = changed || reaped > 0;
  }
  metrics_->Add("tandem_scheduler_passes_total", {}, 1);
  std::lock_guard lock(mu_);
  last_pass_ = clock_->Wall();
  return changed;
}

}  // namespace tandem::scheduler
