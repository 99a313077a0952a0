// The pipeline benchmark (#3): one region on this machine, many deployments, many sleep-like
// tasks running at once. It prints, per round and as medians over the rounds of one run:
//
//   - seconds from the first trigger to N sleepers running at once, on the bench's monotonic
//     clock (the first 50 ms poll that sees them) and on the database's (the Nth earliest
//     sleeper start_date minus the earliest queued_at of the round's runs), and until N sleep
//     processes exist under the workers (a task is `running` from its claim; its process starts
//     a little later);
//   - task start latency, upstream success to downstream running: each sleeper's start_date
//     minus its run's `start` end_date (p50, p99, max), split into decide (end → scheduled),
//     queue (scheduled → queued) and claim (queued → running);
//   - scheduler CPU seconds per 1,000 task instances and database statements per task instance,
//     from the region's /metrics counters over the round;
//   - the peak resident memory of the region and its local workers (not their tasks).
//
// A round triggers one run of DAG `fan` in every deployment (a `start` task, then K parallel
// `sleep S` tasks), watches, waits for every run to end, and reads the figures from the
// database (which a benchmark may read; the product must not). The region, its PostgreSQL, its
// workers and their tasks are stopped by PID when the bench ends, however it ends.
//
// Not a test: it measures and exits 0 whether the targets are met or not; non-zero only when it
// could not measure.
#include <dirent.h>
#include <fmt/core.h>
#include <httplib.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/fs.h"
#include "base/status.h"
#include "bench/verdict.h"
#include "harness/region_harness.h"
#include "pg/conn.h"

namespace tandem::bench {
namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// The targets.
constexpr double kRampTargetSeconds = 10.0;
constexpr double kLatencyP99TargetMs = 250.0;
constexpr double kMemoryTargetMiB = 1024.0;

struct Flags {
  int rounds = 3;
  int deployments = 80;
  int tasks = 0;  // sleepers in all; 0: 1,250 scaled to the number of deployments
  int sleep_seconds = 20;
  int workers = 2;
  int slots_per_worker = 640;
  int deployment_slots = 16;  // each deployment's config.worker_slots
  int http_threads = 512;
  int heartbeat_ms = 1000;
  int ramp_timeout_seconds = 120;
  int pause_seconds = 2;  // idle time between rounds
  int trigger_threads = 8;
  std::string log_level = "info";
  std::string tandem;
  bool tls = false;  // the region serves HTTPS (its own CA), and the triggers verify it
};

// ---------------------------------------------------------------------------------------------
// Interruption: SIGINT, SIGTERM and SIGHUP end the bench through its ordinary cleanup.

volatile sig_atomic_t g_interrupted = 0;

void OnSignal(int /*sig*/) { g_interrupted = 1; }

bool Interrupted() { return g_interrupted != 0; }

void InstallSignalHandlers() {
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a TLS write to a closed connection fails that call only
}

// Sleeps `d` unless interrupted; false when interrupted.
bool Nap(std::chrono::milliseconds d) {
  auto end = Clock::now() + d;
  while (Clock::now() < end) {
    if (Interrupted()) return false;
    std::this_thread::sleep_for(std::min<Clock::duration>(end - Clock::now(), 50ms));
  }
  return !Interrupted();
}

void RaiseFileLimit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// ---------------------------------------------------------------------------------------------
// /proc: processes by parent, their memory and CPU time.

struct ProcStat {
  std::string comm;
  char state = '?';  // R, S, D, Z, ...
  pid_t ppid = 0;
  uint64_t cpu_ticks = 0;   // utime + stime
  uint64_t start_time = 0;  // since boot, in ticks: tells a PID's reuse apart
};

std::optional<ProcStat> ReadStat(pid_t pid) {
  auto text = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (!text.ok()) return std::nullopt;
  // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
  size_t close = text->rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::vector<std::string> f;
  size_t pos = close + 2;
  while (pos < text->size()) {
    size_t sp = text->find(' ', pos);
    if (sp == std::string::npos) sp = text->size();
    f.push_back(text->substr(pos, sp - pos));
    pos = sp + 1;
  }
  // f[0] is field 3 (state): field n is f[n - 3].
  if (f.size() < 20) return std::nullopt;
  ProcStat s;
  size_t open = text->find('(');
  if (open != std::string::npos && open < close) s.comm = text->substr(open + 1, close - open - 1);
  s.state = f[0].empty() ? '?' : f[0][0];
  s.ppid = static_cast<pid_t>(std::stol(f[1]));
  s.cpu_ticks = std::stoull(f[11]) + std::stoull(f[12]);
  s.start_time = std::stoull(f[19]);
  return s;
}

std::vector<pid_t> AllPids() {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc");
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (end != e->d_name && *end == '\0' && pid > 0) out.push_back(static_cast<pid_t>(pid));
  }
  closedir(d);
  return out;
}

std::vector<std::string> Cmdline(pid_t pid) {
  std::vector<std::string> argv;
  auto text = ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
  if (!text.ok()) return argv;
  size_t pos = 0;
  while (pos < text->size()) {
    size_t nul = text->find('\0', pos);
    if (nul == std::string::npos) nul = text->size();
    argv.push_back(text->substr(pos, nul - pos));
    pos = nul + 1;
  }
  return argv;
}

// Children of `parent`, by PID.
std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> out;
  for (pid_t pid : AllPids()) {
    std::optional<ProcStat> s = ReadStat(pid);
    if (s && s->ppid == parent) out.push_back(pid);
  }
  return out;
}

// Every descendant of `root` (and `root`), with the start time that identifies each.
std::map<pid_t, uint64_t> Descendants(pid_t root) {
  std::map<pid_t, ProcStat> all;
  for (pid_t pid : AllPids()) {
    if (std::optional<ProcStat> s = ReadStat(pid)) all[pid] = *s;
  }
  std::map<pid_t, uint64_t> out;
  if (auto r = all.find(root); r != all.end()) out[root] = r->second.start_time;
  for (bool grew = true; grew;) {
    grew = false;
    for (const auto& [pid, s] : all) {
      if (!out.contains(pid) && out.contains(s.ppid)) {
        out[pid] = s.start_time;
        grew = true;
      }
    }
  }
  return out;
}

// A field of /proc/PID/<file> given in KiB ("VmRSS:" of status, "Pss:" of smaps_rollup);
// 0 when the process is gone.
int64_t KiBField(pid_t pid, const char* file, const std::string& field) {
  auto text = ReadFile("/proc/" + std::to_string(pid) + "/" + file);
  if (!text.ok()) return 0;
  size_t at = text->find(field);
  if (at == std::string::npos) return 0;
  return std::strtoll(text->c_str() + at + field.size(), nullptr, 10);
}

// VmRSS in KiB (0 when the process is gone).
int64_t RssKiB(pid_t pid) { return KiBField(pid, "status", "VmRSS:"); }

// The helpers the workers start each task through (one beside every task): how many, and
// their summed RSS and PSS (PSS shares the pages they have in common fairly).
struct ShimMemory {
  int count = 0;
  int64_t rss_kib = 0;
  int64_t pss_kib = 0;
};

ShimMemory ShimsOf(const std::vector<pid_t>& workers) {
  ShimMemory m;
  for (pid_t pid : AllPids()) {
    std::optional<ProcStat> s = ReadStat(pid);
    if (!s || std::find(workers.begin(), workers.end(), s->ppid) == workers.end()) continue;
    auto comm = ReadFile("/proc/" + std::to_string(pid) + "/comm");
    if (!comm.ok() || comm->rfind("tandem-task-exe", 0) != 0) continue;
    ++m.count;
    m.rss_kib += RssKiB(pid);
    m.pss_kib += KiBField(pid, "smaps_rollup", "Pss:");
  }
  return m;
}

// PIDs listed in /proc/PID/task/*/children: the children of every thread of `pid`.
std::vector<pid_t> ThreadChildren(pid_t pid) {
  std::vector<pid_t> out;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    auto text = ReadFile(dir + "/" + e->d_name + "/children");
    if (!text.ok()) continue;
    const char* p = text->c_str();
    char* end = nullptr;
    for (long v = std::strtol(p, &end, 10); end != p; v = std::strtol(p, &end, 10)) {
      out.push_back(static_cast<pid_t>(v));
      p = end;
    }
  }
  closedir(d);
  return out;
}

// Counts the sleepers' processes: the workers' children (task helpers) whose command runs
// `sleep`. A task instance is `running` in the database from its claim; its process starts
// after that, so this is when the tasks really run. One per round.
class SleeperProcesses {
 public:
  int Count(const std::vector<pid_t>& workers) {
    int n = 0;
    for (pid_t w : workers) {
      for (pid_t child : ThreadChildren(w)) {
        if (sleepers_.contains(child)) {
          ++n;
          continue;
        }
        std::vector<std::string> argv = Cmdline(child);
        bool sleeper = std::any_of(argv.begin(), argv.end(),
                                   [](const std::string& a) { return a.rfind("sleep ", 0) == 0; });
        if (sleeper) {
          sleepers_.insert(child);  // only sleepers are remembered: a root's PID is looked at anew
          ++n;
        }
      }
    }
    return n;
  }

 private:
  std::set<pid_t> sleepers_;
};

// Busy and total jiffies of the whole machine, from /proc/stat's first line.
std::pair<uint64_t, uint64_t> MachineJiffies() {
  auto text = ReadFile("/proc/stat");
  if (!text.ok()) return {0, 0};
  uint64_t total = 0, idle = 0;
  size_t pos = text->find(' ');
  for (int i = 0; i < 8 && pos != std::string::npos; ++i) {
    char* end = nullptr;
    uint64_t v = std::strtoull(text->c_str() + pos, &end, 10);
    total += v;
    if (i == 3 || i == 4) idle += v;  // idle, iowait
    pos = static_cast<size_t>(end - text->c_str());
  }
  return {total - idle, total};
}

double CpuSeconds(const std::vector<pid_t>& pids) {
  uint64_t ticks = 0;
  for (pid_t pid : pids) {
    if (std::optional<ProcStat> s = ReadStat(pid)) ticks += s->cpu_ticks;
  }
  return static_cast<double>(ticks) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// CPU ticks of a PostgreSQL server's processes (the postmaster and its children), by PID.
std::map<pid_t, uint64_t> PostgresTicks(pid_t postmaster, pid_t except) {
  std::map<pid_t, uint64_t> out;
  for (pid_t pid : AllPids()) {
    if (pid == except) continue;
    std::optional<ProcStat> s = ReadStat(pid);
    if (s && (pid == postmaster || s->ppid == postmaster)) out[pid] = s->cpu_ticks;
  }
  return out;
}

// CPU seconds the processes present at `after` used since `before` (new ones: all of theirs).
double TicksDelta(const std::map<pid_t, uint64_t>& before, const std::map<pid_t, uint64_t>& after) {
  uint64_t d = 0;
  for (const auto& [pid, t] : after) {
    auto b = before.find(pid);
    d += b == before.end() ? t : t - std::min(t, b->second);
  }
  return static_cast<double>(d) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// ---------------------------------------------------------------------------------------------
// Figures.

struct RoundFigures {
  double trigger_s = NAN;       // sending every trigger
  double ramp_s = NAN;          // first trigger → N sleepers running (bench clock)
  double ramp_db_s = NAN;       // earliest queued_at → Nth sleeper start_date (database clock)
  int peak_running = 0;         // most sleepers seen running at once
  double ramp_proc_s = NAN;     // first trigger → N sleeper processes (bench clock)
  int peak_processes = 0;       // most sleeper processes seen at once
  double latency_p50_ms = NAN;  // sleeper start_date − its run's `start` end_date
  double latency_p99_ms = NAN;
  double latency_max_ms = NAN;
  double decide_p50_ms = NAN, decide_p99_ms = NAN;  // start end_date → scheduled_when
  double queue_p50_ms = NAN, queue_p99_ms = NAN;    // scheduled_when → queued_when
  double claim_p50_ms = NAN, claim_p99_ms = NAN;    // queued_when → start_date
  double root_p50_ms = NAN, root_p99_ms = NAN;      // run queued_at → `start` running
  int task_instances = 0;
  int not_success = 0;              // task instances that did not succeed
  std::string states;               // when some did not succeed: how many ended in which state
  double sched_cpu_per_1000 = NAN;  // scheduler CPU seconds per 1,000 task instances
  double statements_per_ti = NAN;
  double passes = NAN;        // scheduler passes in the round
  double peak_rss_mib = NAN;  // region + local workers
  double region_cpu_s = NAN, workers_cpu_s = NAN, postgres_cpu_s = NAN;
  double round_s = NAN;        // first trigger → every run ended
  double ramp_busy_pct = NAN;  // the whole machine's CPU use during the ramp
  ShimMemory shims;            // when all sleepers ran: their tandem-task-exec helpers
};

// The median of the rounds that measured a figure (NaN when none did): what the summary prints;
// its verdicts need every round (JudgeMedian).
double Median(std::vector<double> v) {
  std::erase_if(v, [](double x) { return std::isnan(x); });
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string Num(double x, int decimals) {
  return std::isnan(x) ? "-" : fmt::format("{:.{}f}", x, decimals);
}

// The sum of a Prometheus text exposition's samples named `name` (any labels).
std::optional<double> MetricSum(const std::string& text, const std::string& name) {
  std::optional<double> sum;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.empty() || line[0] == '#' || line.compare(0, name.size(), name) != 0) continue;
    if (line.size() == name.size() || (line[name.size()] != ' ' && line[name.size()] != '{')) {
      continue;
    }
    size_t sp = line.rfind(' ');
    if (sp == std::string::npos) continue;
    sum = sum.value_or(0) + std::strtod(line.c_str() + sp + 1, nullptr);
  }
  return sum;
}

// ---------------------------------------------------------------------------------------------
// The bench.

class PipelineBench {
 public:
  explicit PipelineBench(Flags flags) : f_(std::move(flags)) {}
  // Stops the region (which stops its workers and their tasks, and its PostgreSQL), then ends
  // by PID anything it started that is still there.
  ~PipelineBench();

  Status Run();

 private:
  Status StartRegion();
  Status SetUpDeployments();
  Result<RoundFigures> RunRound(int round);
  Status TriggerAll(RoundFigures* out);
  Result<std::string> Metrics() const;
  // A statement on the bench's own connection, connecting again once if it was lost.
  Result<pg::Rows> Query(const std::string& sql, const pg::Params& params = {});
  Result<int64_t> QueryInt(const std::string& sql, const pg::Params& params = {});
  void FindProcesses();
  int64_t SampleRssKiB();
  void PrintRound(int round, const RoundFigures& r) const;
  void PrintSummary() const;

  std::string Dep(int i) const { return fmt::format("bench-{:02d}", i); }
  int SleepersOf(int i) const { return per_dep_[static_cast<size_t>(i)]; }

  const Flags f_;
  int total_sleepers_ = 0;
  std::vector<int> per_dep_;  // sleepers in each deployment's DAG
  std::unique_ptr<testing::RegionProcess> region_;
  pg::ConnPtr db_;
  pid_t db_backend_ = 0;  // the bench's own PostgreSQL backend (not counted as the region's)
  pid_t region_pid_ = 0;
  std::vector<pid_t> worker_pids_;
  std::vector<RoundFigures> rounds_;
};

PipelineBench::~PipelineBench() {
  db_.reset();
  if (!region_) return;
  std::map<pid_t, uint64_t> started =
      region_pid_ > 0 ? Descendants(region_pid_) : std::map<pid_t, uint64_t>{};
  region_.reset();  // SIGTERM to the region, which stops its workers; then its PostgreSQL
  // What outlived the region (zombies excepted: they are gone, only not yet reaped).
  std::map<std::string, int> left;
  for (const auto& [pid, start_time] : started) {
    std::optional<ProcStat> s = ReadStat(pid);
    if (s && s->start_time == start_time && s->state != 'Z') {
      kill(pid, SIGKILL);
      ++left[fmt::format("{} ({})", s->comm, s->state)];
    }
  }
  for (const auto& [what, n] : left) {
    fmt::print(stderr, "pipeline_bench: killed {} processes left behind: {}\n", n, what);
  }
}

Status PipelineBench::Run() {
  if (f_.deployments < 1 || f_.rounds < 1 || f_.workers < 1 || f_.slots_per_worker < 1) {
    return InvalidArgument(
        "--deployments, --rounds, --workers and --slots-per-worker must be >= 1");
  }
  total_sleepers_ =
      f_.tasks > 0 ? f_.tasks : static_cast<int>(std::lround(f_.deployments * 1250.0 / 80.0));
  for (int i = 0; i < f_.deployments; ++i) {
    per_dep_.push_back(total_sleepers_ / f_.deployments +
                       (i < total_sleepers_ % f_.deployments ? 1 : 0));
  }
  if (per_dep_.front() > f_.deployment_slots) {
    return InvalidArgument(fmt::format(
        "{} sleepers in {} deployments is {} in some, more than --deployment-slots ({}): they "
        "could never all run at once",
        total_sleepers_, f_.deployments, per_dep_.front(), f_.deployment_slots));
  }
  if (f_.workers * f_.slots_per_worker < total_sleepers_) {
    return InvalidArgument(fmt::format("{} workers x {} slots cannot run {} tasks at once",
                                       f_.workers, f_.slots_per_worker, total_sleepers_));
  }
  fmt::print(
      "pipeline_bench: {} deployments, {} sleepers (sleep {} s) + {} roots per round, {} local "
      "workers x {} slots, {} rounds\n",
      f_.deployments, total_sleepers_, f_.sleep_seconds, f_.deployments, f_.workers,
      f_.slots_per_worker, f_.rounds);
  std::fflush(stdout);
  RETURN_IF_ERROR(StartRegion());
  RETURN_IF_ERROR(SetUpDeployments());
  for (int round = 1; round <= f_.rounds; ++round) {
    if (round > 1 && !Nap(std::chrono::seconds(f_.pause_seconds))) {
      return Unavailable("interrupted");
    }
    ASSIGN_OR_RETURN(RoundFigures r, RunRound(round));
    rounds_.push_back(r);
    PrintRound(round, r);
  }
  PrintSummary();
  return Status::Ok();
}

Status PipelineBench::StartRegion() {
  testing::RegionProcess::Options o;
  o.tls = f_.tls;
  // The harness writes region:, postgres: and secrets:; the rest is ours.
  o.extra_yaml = fmt::format(
      "workers:\n  local: {}\n  slots: {}\n  heartbeat_ms: {}\nhttp:\n  threads: {}\n"
      "log:\n  level: {}\n",
      f_.workers, f_.slots_per_worker, f_.heartbeat_ms, f_.http_threads, f_.log_level);
  ASSIGN_OR_RETURN(region_, testing::RegionProcess::Create(o));
  auto started = Clock::now();
  Status s = region_->Start();
  if (!s.ok()) return s;
  RETURN_IF_ERROR(Query("SELECT 1").status());
  FindProcesses();
  if (region_pid_ == 0) return Internal("cannot find the region's process");
  fmt::print("region: {} (pid {}, {} local workers) ready in {:.1f} s; dir {}\n  dsn: {}\n",
             region_->url(), region_pid_, worker_pids_.size(), Seconds(Clock::now() - started),
             region_->dir(), region_->Dsn());
  std::fflush(stdout);
  return Status::Ok();
}

// The region is our child running `tandem region --config <ours>`; its local workers are its
// children running `tandem worker`.
void PipelineBench::FindProcesses() {
  if (region_pid_ == 0) {
    for (pid_t pid : ChildrenOf(getpid())) {
      std::vector<std::string> argv = Cmdline(pid);
      if (argv.size() >= 4 && argv[1] == "region" && argv[3] == region_->config_path()) {
        region_pid_ = pid;
      }
    }
  }
  worker_pids_.clear();
  if (region_pid_ == 0) return;
  for (pid_t pid : ChildrenOf(region_pid_)) {
    std::vector<std::string> argv = Cmdline(pid);
    if (argv.size() >= 2 && argv[1] == "worker") worker_pids_.push_back(pid);
  }
}

int64_t PipelineBench::SampleRssKiB() {
  int64_t sum = RssKiB(region_pid_);
  bool lost = false;
  for (pid_t w : worker_pids_) {
    int64_t r = RssKiB(w);
    lost = lost || r == 0;
    sum += r;
  }
  if (lost) FindProcesses();  // a worker restarted: count its successor from now on
  return sum;
}

Result<pg::Rows> PipelineBench::Query(const std::string& sql, const pg::Params& params) {
  if (db_ != nullptr) {
    Result<pg::Rows> r = db_->Exec(sql, params);
    if (r.ok() || db_->Healthy()) return r;
    fmt::print(stderr, "pipeline_bench: lost the database connection ({}); connecting again\n",
               r.status().ToString());
  }
  ASSIGN_OR_RETURN(db_, pg::Conn::Connect(region_->Dsn()));
  ASSIGN_OR_RETURN(pg::Rows pid, db_->Exec("SELECT pg_backend_pid()"));
  db_backend_ = static_cast<pid_t>(pid.Int(0, 0));
  return db_->Exec(sql, params);
}

Result<int64_t> PipelineBench::QueryInt(const std::string& sql, const pg::Params& params) {
  ASSIGN_OR_RETURN(pg::Rows r, Query(sql, params));
  if (r.size() != 1) return Internal("expected one row from: " + sql);
  return r.Int(0, 0);
}

Result<std::string> PipelineBench::Metrics() const {
  testing::HttpReply r = region_->Call("GET", "/metrics");
  if (r.status != 200) return Unavailable(fmt::format("GET /metrics: {} {}", r.status, r.body));
  return r.body;
}

Status PipelineBench::SetUpDeployments() {
  auto started = Clock::now();
  for (int i = 0; i < f_.deployments; ++i) {
    if (Interrupted()) return Unavailable("interrupted");
    const std::string name = Dep(i);
    Json create = {{"name", name}, {"config", {{"worker_slots", f_.deployment_slots}}}};
    testing::HttpReply r = region_->Call("POST", "/api/v1/deployments", create.dump());
    if (r.status != 201) return Internal(fmt::format("creating {}: {} {}", name, r.status, r.body));

    std::string dag = fmt::format(
        "fan:\n  max_active_tasks: {}\n  tasks:\n    start: {{operator: bash, bash_command: "
        "'true'}}\n",
        SleepersOf(i));
    for (int k = 0; k < SleepersOf(i); ++k) {
      dag += fmt::format(
          "    sleep_{:02d}: {{operator: bash, bash_command: 'sleep {}', dependencies: "
          "[start]}}\n",
          k, f_.sleep_seconds);
    }
    Json bundle = {{"files", {{"fan.yaml", dag}}}};
    r = region_->Call("POST", "/api/v1/deployments/" + name + "/bundle", bundle.dump());
    if (r.status != 200) {
      return Internal(fmt::format("deploying to {}: {} {}", name, r.status, r.body));
    }
    Json body = Json::parse(r.body, nullptr, false);
    if (body.is_discarded() || !body.value("import_errors", Json::array()).empty()) {
      return Internal(fmt::format("deploying to {}: {}", name, r.body));
    }
    r = region_->Call("PATCH", "/deployments/" + name + "/api/v2/dags/fan",
                      Json({{"is_paused", false}}).dump());
    if (r.status != 200)
      return Internal(fmt::format("unpausing {}: {} {}", name, r.status, r.body));
  }
  fmt::print("set up {} deployments in {:.1f} s\n", f_.deployments,
             Seconds(Clock::now() - started));
  std::fflush(stdout);
  return Status::Ok();
}

// Triggers one run in every deployment, from a few threads with kept-alive connections.
Status PipelineBench::TriggerAll(RoundFigures* out) {
  const int threads = std::max(1, std::min(f_.trigger_threads, f_.deployments));
  std::vector<std::string> errors(static_cast<size_t>(threads));
  const std::string body = Json({{"logical_date", nullptr}}).dump();
  auto started = Clock::now();
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      httplib::Client cli(region_->url());
      if (f_.tls) {
        cli.enable_server_certificate_verification(true);
        cli.set_ca_cert_path(region_->ca_file());
      }
      cli.set_bearer_token_auth(testing::OwnerToken());
      cli.set_keep_alive(true);
      cli.set_connection_timeout(5);
      cli.set_read_timeout(30);
      for (int i = t; i < f_.deployments; i += threads) {
        auto r = cli.Post("/deployments/" + Dep(i) + "/api/v2/dags/fan/dagRuns", body,
                          "application/json");
        if (!r || r->status != 200) {
          errors[static_cast<size_t>(t)] =
              fmt::format("triggering {}: {}", Dep(i),
                          r ? std::to_string(r->status) + " " + r->body : "no answer");
          return;
        }
      }
    });
  }
  for (std::thread& th : pool) th.join();
  out->trigger_s = Seconds(Clock::now() - started);
  for (const std::string& e : errors) {
    if (!e.empty()) return Internal(e);
  }
  return Status::Ok();
}

Result<RoundFigures> PipelineBench::RunRound(int round) {
  RoundFigures fig;
  FindProcesses();
  ASSIGN_OR_RETURN(const int64_t first_run, QueryInt("SELECT coalesce(max(id), 0) FROM dag_runs"));
  const pg::Params after = {std::to_string(first_run)};
  ASSIGN_OR_RETURN(std::string m0, Metrics());
  const double region_cpu0 = CpuSeconds({region_pid_});
  const double workers_cpu0 = CpuSeconds(worker_pids_);
  const pid_t postmaster = region_->PostgresPid();
  const std::map<pid_t, uint64_t> pg0 = PostgresTicks(postmaster, db_backend_);
  int64_t peak_rss = SampleRssKiB();

  const auto t0 = Clock::now();
  const std::pair<uint64_t, uint64_t> jiffies0 = MachineJiffies();
  RETURN_IF_ERROR(TriggerAll(&fig));

  // Until N sleepers run at once (or every run has ended: short sleeps may never overlap).
  auto last_rss = Clock::now();
  const std::string running_sql =
      "SELECT count(*) FROM task_instances WHERE state = 'running' AND task_id <> 'start' AND "
      "run_pk > $1";
  const std::string unfinished_sql =
      "SELECT count(*) FROM dag_runs WHERE id > $1 AND state NOT IN ('success', 'failed')";
  SleeperProcesses processes;
  bool db_done = false, proc_done = false;
  while (!db_done || !proc_done) {
    if (!db_done) {
      ASSIGN_OR_RETURN(int64_t running, QueryInt(running_sql, after));
      fig.peak_running = std::max(fig.peak_running, static_cast<int>(running));
      if (running >= total_sleepers_) {
        fig.ramp_s = Seconds(Clock::now() - t0);
        db_done = true;
      }
    }
    if (!proc_done) {
      int n = processes.Count(worker_pids_);
      fig.peak_processes = std::max(fig.peak_processes, n);
      if (n >= total_sleepers_) {
        fig.ramp_proc_s = Seconds(Clock::now() - t0);
        fig.shims = ShimsOf(worker_pids_);
        proc_done = true;
      }
    }
    if (db_done && proc_done) {
      std::pair<uint64_t, uint64_t> jiffies = MachineJiffies();
      if (jiffies.second > jiffies0.second) {
        fig.ramp_busy_pct = 100.0 * static_cast<double>(jiffies.first - jiffies0.first) /
                            static_cast<double>(jiffies.second - jiffies0.second);
      }
      break;
    }
    if (Clock::now() - last_rss >= 200ms) {
      peak_rss = std::max(peak_rss, SampleRssKiB());
      last_rss = Clock::now();
      ASSIGN_OR_RETURN(int64_t unfinished, QueryInt(unfinished_sql, after));
      if (unfinished == 0) break;
    }
    if (Clock::now() - t0 > std::chrono::seconds(f_.ramp_timeout_seconds)) {
      fmt::print(stderr,
                 "round {}: at most {} of {} sleepers running (and {} processes) after {} s; "
                 "going on\n",
                 round, fig.peak_running, total_sleepers_, fig.peak_processes,
                 f_.ramp_timeout_seconds);
      break;
    }
    if (!Nap(50ms)) return Unavailable("interrupted");
  }

  // Until every run of the round has ended.
  const auto done_by = Clock::now() + std::chrono::seconds(f_.sleep_seconds + 300);
  while (true) {
    peak_rss = std::max(peak_rss, SampleRssKiB());
    ASSIGN_OR_RETURN(int64_t unfinished, QueryInt(unfinished_sql, after));
    if (unfinished == 0) break;
    if (Clock::now() > done_by) {
      return Unavailable(fmt::format("round {}: {} runs still unfinished {} s after the trigger",
                                     round, unfinished, Seconds(Clock::now() - t0)));
    }
    if (fig.peak_running < total_sleepers_) {
      ASSIGN_OR_RETURN(int64_t running, QueryInt(running_sql, after));
      fig.peak_running = std::max(fig.peak_running, static_cast<int>(running));
    }
    if (!Nap(200ms)) return Unavailable("interrupted");
  }
  fig.round_s = Seconds(Clock::now() - t0);
  ASSIGN_OR_RETURN(std::string m1, Metrics());
  fig.region_cpu_s = CpuSeconds({region_pid_}) - region_cpu0;
  fig.workers_cpu_s = CpuSeconds(worker_pids_) - workers_cpu0;
  fig.postgres_cpu_s = TicksDelta(pg0, PostgresTicks(postmaster, db_backend_));
  fig.peak_rss_mib = static_cast<double>(peak_rss) / 1024.0;

  ASSIGN_OR_RETURN(int64_t runs, QueryInt("SELECT count(*) FROM dag_runs WHERE id > $1", after));
  if (runs != f_.deployments) {
    return Internal(fmt::format("round {}: {} runs, expected {}", round, runs, f_.deployments));
  }
  ASSIGN_OR_RETURN(int64_t tis,
                   QueryInt("SELECT count(*) FROM task_instances WHERE run_pk > $1", after));
  ASSIGN_OR_RETURN(int64_t bad, QueryInt("SELECT count(*) FROM task_instances WHERE run_pk > $1 "
                                         "AND state IS DISTINCT FROM 'success'",
                                         after));
  fig.task_instances = static_cast<int>(tis);
  fig.not_success = static_cast<int>(bad);
  if (bad > 0) {
    ASSIGN_OR_RETURN(pg::Rows st, Query("SELECT coalesce(state, 'none'), count(*), "
                                        "max(try_number) FROM task_instances WHERE run_pk > "
                                        "$1 GROUP BY 1 ORDER BY 1",
                                        after));
    for (int i = 0; i < st.size(); ++i) {
      fig.states += fmt::format("{}{} {} (tries <= {})", i > 0 ? ", " : "", st.Int(i, 1),
                                st.Text(i, 0), st.Int(i, 2));
    }
  }

  // Ramp on the database's clock.
  ASSIGN_OR_RETURN(
      pg::Rows ramp,
      Query("SELECT extract(epoch FROM (SELECT start_date FROM task_instances WHERE run_pk > "
            "$1 AND task_id <> 'start' AND start_date IS NOT NULL ORDER BY start_date "
            "OFFSET $2 - 1 LIMIT 1) - (SELECT min(queued_at) FROM dag_runs WHERE id > $1))"
            "::float8",
            {after[0], std::to_string(total_sleepers_)}));
  if (!std::isnan(fig.ramp_s) && ramp.size() == 1 && !ramp.IsNull(0, 0)) {
    fig.ramp_db_s = std::stod(ramp.Text(0, 0));
  }

  // Start latency and where it goes.
  ASSIGN_OR_RETURN(
      pg::Rows lat,
      Query("WITH x AS (SELECT "
            "extract(epoch FROM s.start_date - u.end_date)::float8 * 1000 AS lat, "
            "extract(epoch FROM s.scheduled_when - u.end_date)::float8 * 1000 AS decide, "
            "extract(epoch FROM s.queued_when - s.scheduled_when)::float8 * 1000 AS queue, "
            "extract(epoch FROM s.start_date - s.queued_when)::float8 * 1000 AS claim "
            "FROM task_instances s JOIN task_instances u ON u.run_pk = s.run_pk AND u.task_id = "
            "'start' WHERE s.run_pk > $1 AND s.task_id <> 'start' AND s.start_date IS NOT NULL "
            "AND u.end_date IS NOT NULL), "
            "r AS (SELECT extract(epoch FROM u.start_date - d.queued_at)::float8 * 1000 AS root "
            "FROM task_instances u JOIN dag_runs d ON d.id = u.run_pk WHERE u.run_pk > $1 AND "
            "u.task_id = 'start' AND u.start_date IS NOT NULL) "
            "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY lat), "
            "percentile_disc(0.99) WITHIN GROUP (ORDER BY lat), max(lat), "
            "percentile_disc(0.5) WITHIN GROUP (ORDER BY decide), "
            "percentile_disc(0.99) WITHIN GROUP (ORDER BY decide), "
            "percentile_disc(0.5) WITHIN GROUP (ORDER BY queue), "
            "percentile_disc(0.99) WITHIN GROUP (ORDER BY queue), "
            "percentile_disc(0.5) WITHIN GROUP (ORDER BY claim), "
            "percentile_disc(0.99) WITHIN GROUP (ORDER BY claim), "
            "(SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY root) FROM r), "
            "(SELECT percentile_disc(0.99) WITHIN GROUP (ORDER BY root) FROM r) FROM x",
            after));
  auto col = [&](int c) { return lat.IsNull(0, c) ? NAN : std::stod(lat.Text(0, c)); };
  fig.latency_p50_ms = col(0);
  fig.latency_p99_ms = col(1);
  fig.latency_max_ms = col(2);
  fig.decide_p50_ms = col(3);
  fig.decide_p99_ms = col(4);
  fig.queue_p50_ms = col(5);
  fig.queue_p99_ms = col(6);
  fig.claim_p50_ms = col(7);
  fig.claim_p99_ms = col(8);
  fig.root_p50_ms = col(9);
  fig.root_p99_ms = col(10);

  // The region's counters over the round.
  auto delta = [&](const std::string& name) -> Result<double> {
    std::optional<double> a = MetricSum(m0, name), b = MetricSum(m1, name);
    if (!a || !b) return Internal("/metrics has no " + name);
    return *b - *a;
  };
  ASSIGN_OR_RETURN(double cpu, delta("tandem_scheduler_cpu_seconds_total"));
  ASSIGN_OR_RETURN(double statements, delta("tandem_db_statements_total"));
  ASSIGN_OR_RETURN(fig.passes, delta("tandem_scheduler_passes_total"));
  if (tis > 0) {
    fig.sched_cpu_per_1000 = cpu / static_cast<double>(tis) * 1000.0;
    fig.statements_per_ti = statements / static_cast<double>(tis);
  }
  return fig;
}

void PipelineBench::PrintRound(int round, const RoundFigures& r) const {
  constexpr const char* kRow =
      "{:<5} {:>7} {:>9} {:>11} {:>7} {:>7} {:>7} {:>7} {:>10} {:>8} {:>7} {:>6}\n";
  if (round == 1) {
    fmt::print(fmt::runtime(std::string("\n") + kRow), "round", "ramp s", "ramp db s",
               "ramp proc s", "p50 ms", "p99 ms", "max ms", "trig s", "cpu s/1kTI", "stmts/TI",
               "RSS MiB", "passes");
  }
  fmt::print(fmt::runtime(kRow), round, Num(r.ramp_s, 2), Num(r.ramp_db_s, 2),
             Num(r.ramp_proc_s, 2), Num(r.latency_p50_ms, 0), Num(r.latency_p99_ms, 0),
             Num(r.latency_max_ms, 0), Num(r.trigger_s, 2), Num(r.sched_cpu_per_1000, 2),
             Num(r.statements_per_ti, 1), Num(r.peak_rss_mib, 0), Num(r.passes, 0));
  fmt::print(
      "      latency p50/p99 ms: decide {}/{}, queue {}/{}, claim {}/{}; root start {}/{}\n"
      "      peak {} of {} running, {} processes; {} TIs, {} not success; round {} s\n"
      "      CPU s: region {}, workers {}, postgres {}; machine busy {}% during the ramp\n"
      "      {} task helpers (tandem-task-exec) when all ran: RSS {} MiB, PSS {} MiB\n",
      Num(r.decide_p50_ms, 0), Num(r.decide_p99_ms, 0), Num(r.queue_p50_ms, 0),
      Num(r.queue_p99_ms, 0), Num(r.claim_p50_ms, 0), Num(r.claim_p99_ms, 0), Num(r.root_p50_ms, 0),
      Num(r.root_p99_ms, 0), r.peak_running, total_sleepers_, r.peak_processes, r.task_instances,
      r.not_success, Num(r.round_s, 1), Num(r.region_cpu_s, 1), Num(r.workers_cpu_s, 1),
      Num(r.postgres_cpu_s, 1), Num(r.ramp_busy_pct, 0), r.shims.count,
      Num(static_cast<double>(r.shims.rss_kib) / 1024, 0),
      Num(static_cast<double>(r.shims.pss_kib) / 1024, 0));
  if (!r.states.empty()) fmt::print("      task instances by state: {}\n", r.states);
  std::fflush(stdout);
}

void PipelineBench::PrintSummary() const {
  auto med = [&](double RoundFigures::*field) {
    std::vector<double> v;
    for (const RoundFigures& r : rounds_) v.push_back(r.*field);
    return Median(v);
  };
  auto row = [](const std::string& figure, const std::string& value, const std::string& target,
                const std::string& verdict) {
    fmt::print("{:<44} {:>9}  {:<10} {}\n", figure, value, target, verdict);
  };
  // A figure with a target: "<= t" (or "< t" when `strict`), and whether the median met it.
  // A verdict needs the figure from every round asked for (bench/verdict.h): a round that could
  // not measure it (a ramp that timed out) makes it a MISS, not a median over the rounds that
  // did.
  auto target_row = [&](const std::string& figure, double RoundFigures::*field, int decimals,
                        double target, bool strict) {
    std::vector<double> per_round;
    int measured = 0;
    for (const RoundFigures& r : rounds_) {
      per_round.push_back(r.*field);
      measured += std::isnan(r.*field) ? 0 : 1;
    }
    const Verdict v = JudgeMedian(per_round, f_.rounds, target, strict);
    row(figure, Num(med(field), decimals), fmt::format("{} {:.0f}", strict ? "<" : "<=", target),
        v == Verdict::kMet ? std::string("PASS")
        : v == Verdict::kMissed
            ? std::string("MISS")
            : fmt::format("MISS ({} of {} rounds measured)", measured, f_.rounds));
  };
  fmt::print("\nmedians over {} of {} rounds\n", rounds_.size(), f_.rounds);
  row("figure", "median", "target", "");
  target_row(fmt::format("trigger -> {} running (s)", total_sleepers_), &RoundFigures::ramp_s, 2,
             kRampTargetSeconds, false);
  row("  same, database clock (s)", Num(med(&RoundFigures::ramp_db_s), 2), "", "");
  target_row(fmt::format("trigger -> {} sleep processes running (s)", total_sleepers_),
             &RoundFigures::ramp_proc_s, 2, kRampTargetSeconds, false);
  row("start latency p50 (ms)", Num(med(&RoundFigures::latency_p50_ms), 0), "", "");
  target_row("start latency p99 (ms)", &RoundFigures::latency_p99_ms, 0, kLatencyP99TargetMs,
             false);
  row("start latency max (ms)", Num(med(&RoundFigures::latency_max_ms), 0), "", "");
  row("scheduler CPU s per 1,000 task instances", Num(med(&RoundFigures::sched_cpu_per_1000), 2),
      "", "");
  row("database statements per task instance", Num(med(&RoundFigures::statements_per_ti), 1), "",
      "");
  target_row("region + workers peak RSS (MiB)", &RoundFigures::peak_rss_mib, 0, kMemoryTargetMiB,
             true);
  std::fflush(stdout);
}

}  // namespace
}  // namespace tandem::bench

int main(int argc, char** argv) {
  using tandem::bench::Flags;
  Flags f;
  CLI::App app{"The pipeline benchmark: many deployments, many tasks running at once."};
  app.add_option("--rounds", f.rounds, "Rounds measured (medians reported)");
  app.add_option("--deployments", f.deployments, "Deployments, one DAG run each per round");
  app.add_option("--tasks", f.tasks,
                 "Sleep tasks in all (default: 1,250 scaled to --deployments / 80)");
  app.add_option("--sleep-seconds", f.sleep_seconds, "How long each sleep task sleeps");
  app.add_option("--workers", f.workers, "Local workers of the region");
  app.add_option("--slots-per-worker", f.slots_per_worker, "Tasks each local worker runs at once");
  app.add_option("--deployment-slots", f.deployment_slots, "Each deployment's worker_slots");
  app.add_option("--http-threads", f.http_threads, "The region's http.threads");
  app.add_option("--heartbeat-ms", f.heartbeat_ms, "The region's workers.heartbeat_ms");
  app.add_option("--ramp-timeout", f.ramp_timeout_seconds,
                 "Seconds to wait for every sleep task to be running");
  app.add_option("--pause-seconds", f.pause_seconds, "Idle seconds between rounds");
  app.add_option("--trigger-threads", f.trigger_threads, "Concurrent trigger requests");
  app.add_option("--log-level", f.log_level, "The region's log.level");
  app.add_option("--tandem", f.tandem, "The tandem binary (default: the one built with this)");
  app.add_flag("--tls", f.tls, "The region serves HTTPS with a certificate of a CA of its own");
  CLI11_PARSE(app, argc, argv);

  if (f.tandem.empty()) f.tandem = TANDEM_BIN_DEFAULT;
  setenv("TANDEM_BIN", f.tandem.c_str(), 1);  // what the harness starts
  tandem::bench::InstallSignalHandlers();
  tandem::bench::RaiseFileLimit();
  tandem::Status s;
  {
    tandem::bench::PipelineBench bench(f);
    s = bench.Run();
  }  // everything it started is stopped here
  if (!s.ok()) {
    fmt::print(stderr, "pipeline_bench: {}\n", s.ToString());
    return 1;
  }
  return 0;
}
