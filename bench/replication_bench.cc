// The replication benchmark (#5): task logs and images copied from the active region to the
// standby, on a whole region pair on this machine (control plane, two regions with their
// PostgreSQL servers, registries and local workers), started through the end-to-end harness.
//
// Logs. N deployments hold M long-running bash tasks in all; each writes L lines a second of B
// bytes (builtins only: no process per line) for as long as the benchmark runs. In one pair,
// measurement windows alternate between replication on (the normal pair) and off: an nftables
// rule of the benchmark's own rejects region-a's connections to region-b's HTTP port, so the
// peer log shipper fails at once and backs off, while everything else (PostgreSQL streaming,
// the control plane, leases) goes on as before (the active region: region-a unless the bench
// had to fail over, see ShippingOrFailover). After an "off" window the rule is removed and
// the backlog is left to drain (its catch-up is printed) before the next window. Per window:
//   - lag, two ways: the region's own histogram (append to the standby's acknowledgement,
//     /metrics tandem_log_replication_lag_seconds{sink="peer"}; cumulative since the region
//     started), and independently from the files: every --sample-ms the bench stats a sample of
//     logs in both regions' state directories (<state_dir>/logs/<key>); each time a primary log
//     is seen to grow to S bytes, its lag is the time until the standby's copy holds S bytes
//     (resolution: the sampling interval); and the age of the oldest missing tail at each sample;
//   - bytes/s (Δ tandem_log_replication_bytes_total) and records/s (Δ the peer cursor of
//     region-a's journal, <state_dir>/log-journal/cursor-peer: journal records acknowledged)
//     replicated, the requests sent to the standby and the chunks in each (Δ ..._batches_total,
//     ..._chunks_sent_total), and the largest backlog seen (/metrics, every second);
//   - the primary's cost: CPU seconds (utime+stime from /proc) of region-a's `tandem region`
//     process, its workers and its PostgreSQL over the window; task throughput, as short tasks
//     completed per second by a closed loop (--short-concurrency clients, each triggering a run of
//     a one-task DAG and waiting for its task to succeed, then the next); and the log lines the
//     long tasks managed to write per second (bytes appended to region-a's logs / B).
// Images. A fresh --image-mib MiB image of random bytes (images::BuildImage) is pushed to
// region-a's registry and copied to region-b's with images::ReplicateImage, as the image
// replicator does; the copy is timed, --image-runs times.
//
// Everything started is stopped by PID at the end, however it ends (the harness), and the
// nftables table is deleted. Not a test: it exits 0 whether or not the targets are met;
// non-zero only when it could not measure.
#include <dirent.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/fs.h"
#include "base/process.h"
#include "base/random.h"
#include "base/status.h"
#include "bench/bench_util.h"
#include "harness/pair_harness.h"
#include "images/oci_image.h"
#include "images/registry.h"
#include "images/registry_client.h"
#include "images/replicate.h"
#include "pg/conn.h"

namespace tandem::bench {
namespace {

using Steady = std::chrono::steady_clock;
using namespace std::chrono_literals;
using testing::Http;
using testing::HttpReply;
using testing::PairProcess;

// The issue's targets.
constexpr double kLagP99Target = 1.0;           // s
constexpr double kThroughputCostTarget = 0.05;  // fraction
constexpr double kImageTarget = 2.0;            // s, 50 MiB on loopback

struct Flags {
  int deployments = 80;
  int tasks = 1250;
  int seconds = 60;
  int runs = 1;
  int lines_per_second = 10;
  int line_bytes = 100;
  int sample_logs = 200;
  int sample_ms = 100;
  int short_concurrency = 16;
  int short_deployments = 16;
  int workers = 2;
  int slots = 700;
  int settle_seconds = 10;
  int catchup_timeout = 120;
  int image_mib = 50;
  int image_runs = 5;
  int standby_nice = 0;
  int standby_cpus = 1;                // the last CPUs, the standby's own; 0: it shares every CPU
  std::string standby_disk = "tmpfs";  // the standby's state directory: "tmpfs" or "shared"
  std::string writer = "native";       // the log-writing tasks: "native" or "bash"
  bool logs = true;
  bool images = true;
};

volatile sig_atomic_t g_interrupted = 0;
void OnSignal(int) { g_interrupted = 1; }

// Sleeps up to `d`, waking early on Ctrl-C.
void Nap(Steady::duration d) {
  const auto until = Steady::now() + d;
  while (!g_interrupted && Steady::now() < until) {
    std::this_thread::sleep_for(std::min<Steady::duration>(100ms, until - Steady::now()));
  }
}

std::string MetOrMissed(bool met) { return met ? "met" : "MISSED"; }

// ----- /proc --------------------------------------------------------------------------------

// A /proc file with read(2): a process that exits meanwhile gives nullopt (libstdc++ streams
// throw on the ESRCH such a read can fail with).
std::optional<std::string> ReadProcFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string out;
  char buf[4096];
  while (true) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

struct ProcInfo {
  pid_t pid = 0;
  pid_t ppid = 0;
  double cpu_s = 0;  // utime + stime
};

// A process's (or, under /proc/PID/task/TID, a thread's) stat file.
std::optional<ProcInfo> ReadProcStat(pid_t pid, const std::string& path) {
  auto text = ReadProcFile(path);
  if (!text) return std::nullopt;
  const std::string& line = *text;
  // "pid (comm) state ppid ...": comm may hold spaces; the fields after the last ')' count
  // from 3 (state).
  const size_t close = line.rfind(')');
  if (close == std::string::npos || line.size() < close + 2) return std::nullopt;
  std::istringstream rest(line.substr(close + 2));
  std::vector<std::string> f;
  for (std::string x; rest >> x;) f.push_back(x);
  if (f.size() < 13) return std::nullopt;
  static const double kTick = static_cast<double>(sysconf(_SC_CLK_TCK));
  ProcInfo p;
  p.pid = pid;
  p.ppid = static_cast<pid_t>(std::strtol(f[1].c_str(), nullptr, 10));
  const uint64_t ticks =  // fields 14 and 15
      std::strtoull(f[11].c_str(), nullptr, 10) + std::strtoull(f[12].c_str(), nullptr, 10);
  p.cpu_s = static_cast<double>(ticks) / kTick;
  return p;
}

std::optional<ProcInfo> ReadProc(pid_t pid) {
  return ReadProcStat(pid, "/proc/" + std::to_string(pid) + "/stat");
}

// The CPU seconds of the threads of `pid` named `comm` (pthread_setname_np).
double ThreadCpu(pid_t pid, const std::string& comm) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  double s = 0;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const std::string t = dir + "/" + e->d_name;
    std::string name = ReadProcFile(t + "/comm").value_or("");
    while (!name.empty() && name.back() == '\n') name.pop_back();
    if (name != comm) continue;
    if (auto i = ReadProcStat(pid, t + "/stat")) s += i->cpu_s;
  }
  closedir(d);
  return s;
}

std::string Cmdline(pid_t pid) {
  std::string s = ReadProcFile("/proc/" + std::to_string(pid) + "/cmdline").value_or("");
  std::replace(s.begin(), s.end(), '\0', ' ');
  return s;
}

std::vector<ProcInfo> AllProcs() {
  std::vector<ProcInfo> out;
  DIR* d = opendir("/proc");
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    const pid_t pid = static_cast<pid_t>(atol(e->d_name));
    if (pid <= 0) continue;
    if (auto p = ReadProc(pid)) out.push_back(*p);
  }
  closedir(d);
  return out;
}

// The processes of one region that the bench watches, found by PID at a window's start.
struct RegionPids {
  pid_t region = 0;
  std::vector<pid_t> workers;   // `tandem worker` children of the region
  std::vector<pid_t> postgres;  // the postmaster and its children
};

RegionPids FindRegion(PairProcess& pair, const std::string& name) {
  RegionPids r;
  const std::vector<ProcInfo> all = AllProcs();
  const std::string want = " region --pair " + pair.pair_file() + " --name " + name + " ";
  for (const ProcInfo& p : all) {
    if (Cmdline(p.pid).find(want) != std::string::npos) r.region = p.pid;
  }
  const pid_t pg = pair.PostgresPid(name);
  if (pg > 0) r.postgres.push_back(pg);
  for (const ProcInfo& p : all) {
    if (r.region > 0 && p.ppid == r.region &&
        Cmdline(p.pid).find(" worker ") != std::string::npos) {
      r.workers.push_back(p.pid);
    }
    if (pg > 0 && p.ppid == pg) r.postgres.push_back(p.pid);
  }
  return r;
}

double CpuOf(const std::vector<pid_t>& pids) {
  double s = 0;
  for (pid_t p : pids) {
    if (auto i = ReadProc(p)) s += i->cpu_s;
  }
  return s;
}

struct CpuSample {
  double region = 0, workers = 0, postgres = 0, standby = 0;
  double shipper = 0;  // the region's peer log shipper thread ("ship-peer"), in `region`
  double machine_busy = 0, machine_total = 0;  // jiffies, all CPUs, from /proc/stat
};

CpuSample SampleCpu(const RegionPids& a, const RegionPids& b) {
  CpuSample s;
  s.region = CpuOf({a.region});
  s.shipper = ThreadCpu(a.region, "ship-peer");
  s.workers = CpuOf(a.workers);
  s.postgres = CpuOf(a.postgres);
  s.standby = CpuOf({b.region});
  std::istringstream in(ReadProcFile("/proc/stat").value_or(""));
  std::string cpu;
  in >> cpu;
  std::vector<double> v;
  for (double x; v.size() < 8 && in >> x;) v.push_back(x);
  for (size_t i = 0; i < v.size(); ++i) {
    s.machine_total += v[i];
    if (i != 3 && i != 4) s.machine_busy += v[i];  // idle, iowait
  }
  return s;
}

// ----- the region's figures -------------------------------------------------------------------

// The peer sink's lines of region-a's /metrics: name -> value (quantiles as name:q).
std::map<std::string, double> PeerMetrics(const std::string& region_url) {
  std::map<std::string, double> out;
  HttpReply r = Http(region_url, "GET", "/metrics");
  if (r.status != 200) return out;
  std::istringstream in(r.body);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("tandem_log_replication_", 0) != 0) continue;
    if (line.find("sink=\"peer\"") == std::string::npos) continue;
    const size_t brace = line.find('{');
    const size_t space = line.rfind(' ');
    if (brace == std::string::npos || space == std::string::npos) continue;
    std::string name = line.substr(0, brace);
    if (line.find("quantile=\"0.5\"") != std::string::npos) name += ":0.5";
    if (line.find("quantile=\"0.99\"") != std::string::npos) name += ":0.99";
    if (const size_t at = line.find("within=\""); at != std::string::npos) {
      name += ":" + line.substr(at + 8, line.find('"', at + 8) - (at + 8));
    }
    out[name] = std::strtod(line.c_str() + space + 1, nullptr);
  }
  return out;
}

// The journal records the peer has acknowledged (region-a's peer cursor, written every second).
uint64_t PeerCursor(const std::string& region_dir) {
  auto text = ReadFile(region_dir + "/log-journal/cursor-peer");
  if (!text.ok()) return 0;
  const size_t nl = text->find('\n');
  return nl == std::string::npos ? 0 : std::strtoull(text->c_str() + nl + 1, nullptr, 10);
}

// Every log file under `root` (relative key -> size).
void WalkLogs(const std::string& root, const std::string& rel,
              std::map<std::string, int64_t>* out) {
  DIR* d = opendir((root + "/" + rel).c_str());
  if (d == nullptr) return;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string key = rel;
    if (!key.empty()) key += '/';
    key += name;
    std::string path = root;
    path += '/';
    path += key;
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      WalkLogs(root, key, out);
    } else if (S_ISREG(st.st_mode)) {
      (*out)[key] = st.st_size;
    }
  }
  closedir(d);
}

// The long tasks' logs (`<deployment>/dag_id=hold/...`; the short tasks write theirs too, and a
// walk through thousands of those took seconds), and when the walk was half done.
struct HoldLogs {
  std::map<std::string, int64_t> sizes;
  Steady::time_point at;
  int64_t bytes() const {
    int64_t n = 0;
    for (const auto& [k, size] : sizes) n += size;
    return n;
  }
};

HoldLogs WalkHoldLogs(const std::string& root) {
  HoldLogs h;
  const auto start = Steady::now();
  if (DIR* d = opendir(root.c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (name != "." && name != "..") WalkLogs(root, name + "/dag_id=hold", &h.sizes);
    }
    closedir(d);
  }
  h.at = start + (Steady::now() - start) / 2;
  return h;
}

int64_t FileSize(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? st.st_size : 0;
}

// ----- the lag sampler ------------------------------------------------------------------------

// Watches a sample of logs in both regions' directories every `interval`, while recording.
// Thread-safe: Begin/End from the bench's thread, the sampling on its own.
class LagSampler {
 public:
  LagSampler(std::string primary, std::string standby, std::chrono::milliseconds interval)
      : primary_(std::move(primary)), standby_(std::move(standby)), interval_(interval) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~LagSampler() {
    stop_ = true;
    thread_.join();
  }
  // Starts recording on `keys` (forgets what was recorded before).
  void Begin(std::vector<std::string> keys) {
    std::lock_guard lock(mu_);
    watched_.clear();
    for (std::string& k : keys) watched_.push_back({std::move(k), -1, {}});
    lags_.clear();
    tail_ages_.clear();
    recording_ = true;
  }
  struct Result {
    std::vector<double> lags;       // per growth seen on the primary, s
    std::vector<double> tail_ages;  // per sample, the oldest missing tail's age over the sample
    int keys = 0;
    int pending = 0;  // growths the standby had not caught up with at the end
  };
  Result End() {
    std::lock_guard lock(mu_);
    recording_ = false;
    Result r;
    r.lags = lags_;
    r.tail_ages = tail_ages_;
    r.keys = static_cast<int>(watched_.size());
    // Growths the standby still lacks count with their age so far (a lower bound), so that a
    // standby that fell behind shows in the quantiles instead of vanishing from them.
    const auto now = Steady::now();
    for (const Watched& w : watched_) {
      r.pending += static_cast<int>(w.growths.size());
      for (const auto& g : w.growths) r.lags.push_back(Secs(now - g.first));
    }
    return r;
  }

 private:
  struct Watched {
    std::string key;
    int64_t primary = -1;  // last size seen; -1 before the first look
    std::vector<std::pair<Steady::time_point, int64_t>> growths;  // when, size reached
  };
  void Loop() {
    auto next = Steady::now();
    while (!stop_) {
      next += interval_;
      std::this_thread::sleep_until(next);
      if (Steady::now() > next + interval_) next = Steady::now();
      std::lock_guard lock(mu_);
      if (!recording_) continue;
      const auto now = Steady::now();
      double oldest = 0;
      for (Watched& w : watched_) {
        const int64_t p = FileSize(primary_ + "/" + w.key);
        const int64_t s = FileSize(standby_ + "/" + w.key);
        if (w.primary >= 0 && p > w.primary) w.growths.emplace_back(now, p);
        w.primary = std::max(w.primary, p);
        size_t done = 0;
        while (done < w.growths.size() && w.growths[done].second <= s) {
          lags_.push_back(Secs(now - w.growths[done].first));
          ++done;
        }
        w.growths.erase(w.growths.begin(), w.growths.begin() + static_cast<long>(done));
        if (!w.growths.empty()) oldest = std::max(oldest, Secs(now - w.growths.front().first));
      }
      tail_ages_.push_back(oldest);
    }
  }

  const std::string primary_, standby_;
  const std::chrono::milliseconds interval_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  bool recording_ = false;         // guarded by mu_
  std::vector<Watched> watched_;   // guarded by mu_
  std::vector<double> lags_;       // guarded by mu_
  std::vector<double> tail_ages_;  // guarded by mu_
  std::thread thread_;
};

// Region-a's backlog to the peer, every second, while recording.
class BacklogWatch {
 public:
  explicit BacklogWatch(std::string url) : url_(std::move(url)) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~BacklogWatch() {
    stop_ = true;
    thread_.join();
  }
  void Begin() {
    std::lock_guard lock(mu_);
    max_chunks_ = max_bytes_ = max_oldest_ = 0;
    recording_ = true;
  }
  struct Max {
    double chunks = 0, bytes = 0, oldest_s = 0;
  };
  Max End() {
    std::lock_guard lock(mu_);
    recording_ = false;
    return {max_chunks_, max_bytes_, max_oldest_};
  }

 private:
  void Loop() {
    while (!stop_) {
      std::this_thread::sleep_for(1s);
      {
        std::lock_guard lock(mu_);
        if (!recording_) continue;
      }
      auto m = PeerMetrics(url_);
      std::lock_guard lock(mu_);
      max_chunks_ = std::max(max_chunks_, m["tandem_log_replication_chunks_behind"]);
      max_bytes_ = std::max(max_bytes_, m["tandem_log_replication_bytes_behind"]);
      max_oldest_ = std::max(max_oldest_, m["tandem_log_replication_oldest_seconds"]);
    }
  }
  const std::string url_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  bool recording_ = false;                                  // guarded by mu_
  double max_chunks_ = 0, max_bytes_ = 0, max_oldest_ = 0;  // guarded by mu_
  std::thread thread_;
};

// ----- the short-task load --------------------------------------------------------------------

// Closed loop: each client triggers a run of `quick` in its deployment, waits for its task to
// succeed, and starts the next. Completions are timestamped so that each window counts its own.
class ShortLoad {
 public:
  ShortLoad(std::string url, std::vector<std::string> deployments, int clients)
      : url_(std::move(url)), deployments_(std::move(deployments)) {
    for (int c = 0; c < clients && !deployments_.empty(); ++c) {
      threads_.emplace_back([this, c] { Client(c); });
    }
  }
  ~ShortLoad() {
    stop_ = true;
    for (auto& t : threads_) t.join();
  }
  // Completions in [from, to), and the median trigger-to-success time of those.
  std::pair<int, double> Count(Steady::time_point from, Steady::time_point to) {
    std::lock_guard lock(mu_);
    std::vector<double> lat;
    for (const auto& [at, took] : done_) {
      if (at >= from && at < to) lat.push_back(took);
    }
    return {static_cast<int>(lat.size()), Median(lat)};
  }
  int failures() const { return failures_; }

 private:
  void Client(int c) {
    const std::string& id = deployments_[static_cast<size_t>(c) % deployments_.size()];
    while (!stop_ && !g_interrupted) {
      const auto start = Steady::now();
      HttpReply t = Http(url_, "POST", Root(id) + "/dags/quick/dagRuns",
                         Json{{"logical_date", nullptr}, {"conf", Json::object()}}.dump());
      if (t.status != 200) {
        ++failures_;
        Nap(200ms);
        continue;
      }
      const std::string run = Str(Body(t), "dag_run_id");
      while (!stop_ && !g_interrupted) {
        std::this_thread::sleep_for(100ms);
        const std::string state = Str(
            Body(Http(url_, "GET", Root(id) + "/dags/quick/dagRuns/" + run + "/taskInstances/q")),
            "state");
        if (state == "success") {
          const auto now = Steady::now();
          std::lock_guard lock(mu_);
          done_.emplace_back(now, Secs(now - start));
          break;
        }
        if (state == "failed" || state == "upstream_failed") {
          ++failures_;
          break;
        }
      }
    }
  }
  const std::string url_;
  const std::vector<std::string> deployments_;
  std::atomic<bool> stop_{false};
  std::atomic<int> failures_{0};
  std::mutex mu_;
  std::vector<std::pair<Steady::time_point, double>> done_;  // guarded by mu_
  std::vector<std::thread> threads_;
};

// ----- turning log shipping off ---------------------------------------------------------------

// An nftables table of the bench's own that rejects (TCP reset) region-a's connections to
// region-b's HTTP port: the peer log shipper fails at once and backs off; PostgreSQL streaming
// (region-b to region-a's database port) and the control plane's checks are untouched. Deleted
// by the destructor.
class ShippingSwitch {
 public:
  ShippingSwitch(std::string from, std::string to, int port)
      : from_(std::move(from)),
        to_(std::move(to)),
        port_(port),
        table_("tandem_bench_" + std::to_string(getpid())) {}
  ~ShippingSwitch() { (void)On(); }
  Status Off() {
    if (off_) return Status::Ok();
    RETURN_IF_ERROR(testing::Nft({"add", "table", "ip", table_}));
    off_ = true;
    RETURN_IF_ERROR(testing::Nft({"add", "chain", "ip", table_, "out",
                                  "{ type filter hook output priority 0 ; policy accept ; }"}));
    return testing::Nft({"add", "rule", "ip", table_, "out", "ip", "saddr", from_, "ip", "daddr",
                         to_, "tcp", "dport", std::to_string(port_), "reject", "with", "tcp",
                         "reset"});
  }
  Status On() {
    if (!off_) return Status::Ok();
    off_ = false;
    return testing::Nft({"delete", "table", "ip", table_});
  }

 private:
  const std::string from_, to_;
  const int port_;
  const std::string table_;
  bool off_ = false;
};

// ----- the log benchmark ----------------------------------------------------------------------

struct Window {
  bool replication = true;
  double seconds = 0;
  // Throughput.
  int short_done = 0;
  double short_per_s = 0, short_latency_s = -1;
  // Where a short task's time went (medians, s, from the database's timestamps): the run's
  // creation to its task being scheduled, scheduled to queued, queued to started (a worker's
  // claim and the spawn), started to ended.
  double stage_schedule = -1, stage_queue = -1, stage_claim = -1, stage_run = -1;
  double lines_per_s = 0;  // written by the long tasks (bytes appended / line size)
  int64_t running = 0;     // long tasks running at the end
  // Replication.
  double bytes_per_s = 0, records_per_s = 0;
  // Requests to the standby, and the chunks each carried (records of one log merge).
  double batches_per_s = 0, chunks_per_batch = 0;
  // From the region's tandem_log_replication_acked_within_total, this window only: bounds
  // (0.1, 0.25, 0.5, 1, 2.5 ... 60 s) that hold half and 99 % of the acknowledged chunks.
  double region_p50 = -1, region_p99 = -1, region_within_1s = -1, region_acked = 0;
  double sampled_p50 = -1, sampled_p99 = -1, sampled_max = -1, tail_age_max = -1;
  size_t sampled_n = 0;
  int sampled_keys = 0, sampled_pending = 0;
  BacklogWatch::Max backlog;
  // Cost.
  double cpu_shipper = 0;
  double cpu_region = 0, cpu_workers = 0, cpu_postgres = 0, cpu_standby = 0, machine_busy = 0;
  // After an "off" window: the backlog's drain.
  double catchup_s = -1, catchup_bytes = 0;
  double sync_s = -1;  // the sync(2) after the drain
};

int CpuCount() { return std::max(1, static_cast<int>(std::thread::hardware_concurrency())); }
int StandbyFirstCpu(int standby_cpus) { return CpuCount() - standby_cpus; }

// CPUs [from, to).
cpu_set_t CpuRange(int from, int to) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c = from; c < to; ++c) CPU_SET(c, &set);
  return set;
}

// A tmpfs on a directory, for the standby's state: on one machine both regions' writes share one
// disk and one ext4 journal, so every fsync of the primary's PostgreSQL also commits the metadata
// of the standby's log appends; in a pair the standby has a disk of its own. Unmounted (lazily),
// and the pair's directory above it removed, by Unmount or the destructor, once the pair has
// stopped.
class TmpfsMount {
 public:
  TmpfsMount() = default;
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;
  ~TmpfsMount() { Unmount(); }

  Status Mount(const std::string& dir) {
    if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
      return Internal("cannot create " + dir + ": " + strerror(errno));
    }
    if (mount("tandem-bench", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=8g,mode=0755") !=
        0) {
      return Internal("cannot mount a tmpfs on " + dir + ": " + strerror(errno));
    }
    path_ = dir;
    return Status::Ok();
  }
  void Unmount() {
    if (path_.empty()) return;
    (void)umount2(path_.c_str(), MNT_DETACH);
    // The pair's directory: its removal stopped at the mount. REQUIRES: the pair has stopped.
    (void)RemoveAll(path_.substr(0, path_.rfind('/')));
    path_.clear();
  }

 private:
  std::string path_;
};

// The bash command of a long task: `lines` lines a second of `bytes` bytes each, on a schedule
// that does not drift (when it falls behind it starts again from now: what it wrote is what the
// machine let it write). Builtins only; `read -t` on a pipe nobody writes to is the sleep.
std::string BashWriterCommand(int lines, int bytes) {
  const int step_us = 1000000 / std::max(1, lines);
  return fmt::format(
      "exec 3<> <(:); n=0; next=${{EPOCHREALTIME/./}}; while :; do n=$((n+1)); "
      "printf '%-{}s\\n' \"tandem replication bench line $n at $EPOCHREALTIME\"; "
      "next=$((next+{})); d=$((next-${{EPOCHREALTIME/./}})); if ((d>0)); then "
      "printf -v s '%d.%06d' $((d/1000000)) $((d%1000000)); read -t $s -u 3; "
      "else next=${{EPOCHREALTIME/./}}; fi; done",
      std::max(1, bytes - 1), step_us);
}

// The command of a long task: tandem-bench-log-writer (built with the bench, see log_writer.cc),
// or with `--writer bash` the same lines from bash's builtins, which took ~74 µs of CPU a line and
// saturated a 2-core machine on their own.
std::string WriterCommand(const std::string& writer, int lines, int bytes) {
  if (writer == "bash") return BashWriterCommand(lines, bytes);
  return fmt::format("exec '{}' {} {}", TANDEM_LOG_WRITER_DEFAULT, lines, bytes);
}

class LogBench {
 public:
  explicit LogBench(const Flags& f) : f_(f) {}

  Status Run(std::vector<Window>* out) {
    PairProcess::Options o;
    o.mode = "asynchronous";
    o.local_workers = f_.workers;
    o.worker_slots = f_.slots;
    o.own_addresses = true;  // so that only region-a -> region-b's HTTP port can be cut
    ASSIGN_OR_RETURN(pair_, PairProcess::Create(o));
    if (f_.standby_disk == "tmpfs")
      RETURN_IF_ERROR(standby_disk_.Mount(pair_->region_dir(standby_)));
    fmt::print("  pair in {} (logs: region-a.log, region-b.log there)\n", pair_->dir());
    std::fflush(stdout);
    RETURN_IF_ERROR(pair_->StartAll());
    RETURN_IF_ERROR(ShippingOrFailover());
    if (standby_ != "region-b" && (f_.standby_cpus > 0 || f_.standby_disk == "tmpfs")) {
      // The CPUs are set after this, but the tmpfs is region-b's from the start.
      return Unavailable(
          "region-b became the active region before the first window (see the "
          "FINDING above): its state is on the standby's tmpfs; run again");
    }
    RETURN_IF_ERROR(SetUp());
    RETURN_IF_ERROR(WaitRunning());
    if (f_.standby_cpus > 0) PinStandby();
    if (f_.standby_nice > 0) NiceStandby();
    const std::string url_a = pair_->region_url(active_);
    const std::string logs_a = pair_->region_dir(active_) + "/logs";
    const std::string logs_b = pair_->region_dir(standby_) + "/logs";
    std::vector<std::string> quick(
        deployments_.begin(),
        deployments_.begin() +
            std::min<long>(f_.short_deployments, static_cast<long>(deployments_.size())));
    ShortLoad load(url_a, quick, f_.short_concurrency);
    LagSampler sampler(logs_a, logs_b, std::chrono::milliseconds(f_.sample_ms));
    BacklogWatch backlog(url_a);
    const std::string addr_a = pair_->region_url(active_).substr(7);
    const std::string addr_b = pair_->region_url(standby_).substr(7);
    ShippingSwitch shipping(addr_a.substr(0, addr_a.find(':')), addr_b.substr(0, addr_b.find(':')),
                            std::stoi(addr_b.substr(addr_b.find(':') + 1)));
    fmt::print("  settling {} s (short-task load running, the backlog draining)\n",
               f_.settle_seconds);
    std::fflush(stdout);
    Nap(std::chrono::seconds(f_.settle_seconds));
    RETURN_IF_ERROR(WaitCaughtUp(nullptr));
    // Pairs of windows (on, off), then one more "on" window, so that every "off" window has an
    // "on" window on either side (see the medians).
    for (int run = 1; run <= f_.runs + 1 && !g_interrupted; ++run) {
      for (bool on : {true, false}) {
        if (g_interrupted || (run > f_.runs && !on)) break;
        Window w;
        w.replication = on;
        if (!on) RETURN_IF_ERROR(shipping.Off());
        Nap(2s);  // the switch takes effect; the shipper's next round fails
        RETURN_IF_ERROR(Measure(&w, load, sampler, backlog));
        if (!on) {
          RETURN_IF_ERROR(shipping.On());
          RETURN_IF_ERROR(WaitCaughtUp(&w));
          // The drained bytes are written back to disk now rather than during the next window
          // (the kernel writes dirty pages back after 30 s, which would put the drain's disk
          // writes under the next "on" window's commits); then, as before the first window,
          // the next one starts from the steady state, not from the tail of a drain.
          const auto synced = Steady::now();
          sync();
          w.sync_s = Secs(Steady::now() - synced);
          Nap(std::chrono::seconds(f_.settle_seconds));
        }
        Print(run, w);
        out->push_back(w);
      }
    }
    fmt::print("  short-task clients: {} failed or refused triggers/runs in all\n",
               load.failures());
    return Status::Ok();
  }

  void Stop() {
    pair_.reset();  // its processes stop, and what it can remove of its directory goes
    standby_disk_.Unmount();
  }

 private:
  // Whether the active region ships its logs: a probe task writes a line and the peer sink's
  // shipped bytes must grow. When they do not, its peer shipper is still paused: when this was
  // written, the DR agent's lease loop (src/region/dr_agent.cc) sets acting_ and starts the
  // workers without TaskLogs::ShipToPeer, so the region that starts as the primary never ships,
  // and a promoted one ships only when promote's SetActing(true) wins the race with that loop.
  // The bench then fails over (planned) until the active region ships, up to 6 times.
  Status ShippingOrFailover() {
    for (int attempt = 0;; ++attempt) {
      ASSIGN_OR_RETURN(bool ships, Ships(attempt));
      if (ships) return Status::Ok();
      if (attempt == 6) return Unavailable("no active region shipped its logs after 6 failovers");
      HttpReply f =
          Http(pair_->control_url(), "POST", "/api/v1/dr/failover", R"({"mode":"planned"})");
      if (f.status != 202) return Internal("failover: " + f.body);
      const int64_t op = Body(f)["operation"]["id"];
      RETURN_IF_ERROR(pair_->WaitStatus(
          [&](const Json& st) {
            return st.is_object() && st["operation"].is_null() &&
                   st["sync"]["state"] == "syncing" && Str(st, "active") == standby_;
          },
          180s, "the planned failover to " + standby_));
      Json o =
          Body(Http(pair_->control_url(), "GET", "/api/v1/dr/operations/" + std::to_string(op)));
      if (o.value("state", "") != "succeeded") return Internal("planned failover: " + o.dump());
      std::swap(active_, standby_);
      fmt::print("  {} is now the active region (planned failover)\n", active_);
      std::fflush(stdout);
    }
  }

  Result<bool> Ships(int attempt) {
    const std::string url = pair_->region_url(active_);
    const std::string name = "probe-" + std::to_string(attempt);
    HttpReply c = Http(url, "POST", "/api/v1/deployments",
                       Json{{"name", name}, {"config", {{"worker_slots", 2}}}}.dump());
    if (c.status != 201) return Internal("create probe: " + c.body);
    const std::string id = Body(c)["id"];
    const std::string bundle =
        "probe:\n  schedule: null\n  tasks:\n    p:\n      operator: bash\n"
        "      bash_command: echo probe\n";
    HttpReply b = Http(url, "POST", "/api/v1/deployments/" + id + "/bundle",
                       Json{{"files", {{"dags.yaml", bundle}}}}.dump());
    if (b.status != 200) return Internal("deploy probe: " + b.body);
    (void)Http(url, "PATCH", Root(id) + "/dags/probe", Json{{"is_paused", false}}.dump());
    (void)Http(url, "POST", Root(id) + "/dags/probe/dagRuns",
               Json{{"logical_date", nullptr}, {"conf", Json::object()}}.dump());
    const auto deadline = Steady::now() + 20s;
    std::map<std::string, double> m;
    while (Steady::now() < deadline && !g_interrupted) {
      m = PeerMetrics(url);
      if (m["tandem_log_replication_bytes_total"] > 0) {
        fmt::print("  {} ships its logs to {}\n", active_, standby_);
        return true;
      }
      std::this_thread::sleep_for(250ms);
    }
    fmt::print(
        "  FINDING: {} does not ship its logs: after 20 s its peer sink has shipped {:.0f} "
        "bytes with {:.0f} bytes ({:.0f} chunks) behind and no error (its peer shipper "
        "seems paused). Working around it: a planned failover to {}.\n",
        active_, m["tandem_log_replication_bytes_total"], m["tandem_log_replication_bytes_behind"],
        m["tandem_log_replication_chunks_behind"], standby_);
    std::fflush(stdout);
    return false;
  }

  Status SetUp() {
    const std::string url = pair_->region_url(active_);
    const int per = (f_.tasks + f_.deployments - 1) / f_.deployments;
    const std::string cmd =
        Json(WriterCommand(f_.writer, f_.lines_per_second, f_.line_bytes)).dump();
    for (int d = 0; d < f_.deployments && !g_interrupted; ++d) {
      HoldDeployment h;
      h.name = fmt::format("bench-{:03d}", d);
      h.worker_slots = per + 8;
      h.tasks = std::max(0, std::min(per, f_.tasks - d * per));
      h.max_active_tasks = 256;
      h.retries = 50;
      h.command = cmd;
      h.more_dags =
          "quick:\n  schedule: null\n  max_active_runs: 64\n  tasks:\n    q:\n"
          "      operator: bash\n      bash_command: \"true\"\n";
      h.unpause = {"hold", "quick"};
      ASSIGN_OR_RETURN(std::string id, SetUpHoldDeployment(url, h));
      deployments_.push_back(id);
    }
    fmt::print("  {} deployments set up, {} log writers triggered\n", f_.deployments, f_.tasks);
    std::fflush(stdout);
    return Status::Ok();
  }

  Result<int64_t> RunningTasks() {
    ASSIGN_OR_RETURN(pg::ConnPtr c, pg::Conn::Connect(pair_->Dsn(active_)));
    ASSIGN_OR_RETURN(pg::Rows r, c->Exec("SELECT count(*) FROM task_instances WHERE state = "
                                         "'running' AND dag_id = 'hold'"));
    return r.Int(0, 0);
  }

  // Calls `fn` with every thread of the standby's region, workers and PostgreSQL; returns how
  // many it returned true for. Threads and PostgreSQL backends started later inherit what their
  // creator has (niceness, CPU affinity).
  int ForEachStandbyThread(const std::function<bool(pid_t)>& fn) {
    const RegionPids b = FindRegion(*pair_, standby_);
    std::vector<pid_t> pids = b.workers;
    pids.push_back(b.region);
    pids.insert(pids.end(), b.postgres.begin(), b.postgres.end());
    int threads = 0;
    for (pid_t pid : pids) {
      if (pid <= 0) continue;
      const std::string dir = "/proc/" + std::to_string(pid) + "/task";
      DIR* d = opendir(dir.c_str());
      if (d == nullptr) continue;
      while (dirent* e = readdir(d)) {
        const auto tid = static_cast<pid_t>(atol(e->d_name));
        if (tid > 0 && fn(tid)) ++threads;
      }
      closedir(d);
    }
    return threads;
  }

  // The standby on CPUs of its own (--standby-cpus, the last ones; the bench and everything it
  // started run on the others, see Main): in a pair the standby has machines of its own, and its
  // apply work is no cost of the primary's.
  void PinStandby() {
    const cpu_set_t set = CpuRange(StandbyFirstCpu(f_.standby_cpus), CpuCount());
    const int threads = ForEachStandbyThread(
        [&](pid_t tid) { return sched_setaffinity(tid, sizeof set, &set) == 0; });
    fmt::print(
        "  {}'s region, workers and PostgreSQL on CPUs {}-{} ({} threads), the rest on "
        "CPUs 0-{}\n",
        standby_, StandbyFirstCpu(f_.standby_cpus), CpuCount() - 1, threads,
        StandbyFirstCpu(f_.standby_cpus) - 1);
    std::fflush(stdout);
  }

  // Every thread of the standby's region, workers and PostgreSQL at --standby-nice: an
  // experiment from before --standby-cpus, when the standby shared the primary's cores.
  void NiceStandby() {
    const int threads = ForEachStandbyThread([&](pid_t tid) {
      return setpriority(PRIO_PROCESS, static_cast<id_t>(tid), f_.standby_nice) == 0;
    });
    fmt::print("  {}'s region, workers and PostgreSQL at niceness {} ({} threads)\n", standby_,
               f_.standby_nice, threads);
    std::fflush(stdout);
  }

  Result<std::string> DbNow() {
    ASSIGN_OR_RETURN(pg::ConnPtr c, pg::Conn::Connect(pair_->Dsn(active_)));
    ASSIGN_OR_RETURN(pg::Rows r, c->Exec("SELECT now()::text"));
    return r.Text(0, 0);
  }

  // The medians of a short task's stages for the tasks that ended in [from, to) (database
  // time).
  Status ShortStages(const std::string& from, const std::string& to, Window* w) {
    ASSIGN_OR_RETURN(pg::ConnPtr c, pg::Conn::Connect(pair_->Dsn(active_)));
    auto median = [](const char* a, const char* b) {
      return fmt::format("percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM {} - {}))",
                         b, a);
    };
    ASSIGN_OR_RETURN(
        pg::Rows r,
        c->Exec("SELECT " + median("dr.start_date", "ti.scheduled_when") + "::text, " +
                    median("ti.scheduled_when", "ti.queued_when") + "::text, " +
                    median("ti.queued_when", "ti.start_date") + "::text, " +
                    median("ti.start_date", "ti.end_date") +
                    "::text FROM task_instances ti JOIN dag_runs dr ON dr.id = ti.run_pk "
                    "WHERE ti.dag_id = 'quick' AND ti.state = 'success' AND ti.end_date >= "
                    "$1::timestamptz AND ti.end_date < $2::timestamptz",
                {from, to}));
    if (r.size() != 1) return Status::Ok();
    auto num = [&](int col) {
      return r.IsNull(0, col) ? -1.0 : std::strtod(r.Text(0, col).c_str(), nullptr);
    };
    w->stage_schedule = num(0);
    w->stage_queue = num(1);
    w->stage_claim = num(2);
    w->stage_run = num(3);
    return Status::Ok();
  }

  Status WaitRunning() {
    const auto start = Steady::now();
    const auto deadline = start + 300s;
    int64_t n = 0;
    while (Steady::now() < deadline && !g_interrupted) {
      auto r = RunningTasks();
      if (r.ok()) n = *r;
      if (n >= f_.tasks) {
        fmt::print("  {} log writers running after {:.1f} s\n", n, Secs(Steady::now() - start));
        std::fflush(stdout);
        return Status::Ok();
      }
      std::this_thread::sleep_for(500ms);
    }
    return Unavailable(fmt::format("only {} of {} log writers running after 300 s", n, f_.tasks));
  }

  // Until the peer backlog is under a second of appends (the shipper's steady state).
  Status WaitCaughtUp(Window* w) {
    const std::string url = pair_->region_url(active_);
    const auto start = Steady::now();
    auto m0 = PeerMetrics(url);
    const double before = m0["tandem_log_replication_bytes_behind"];
    const double shipped0 = m0["tandem_log_replication_bytes_total"];
    const double steady = static_cast<double>(f_.tasks) * f_.lines_per_second * f_.line_bytes;
    while (!g_interrupted) {
      auto m = PeerMetrics(url);
      if (m.count("tandem_log_replication_bytes_behind") &&
          m["tandem_log_replication_bytes_behind"] <= steady &&
          m["tandem_log_replication_oldest_seconds"] < 2) {
        break;
      }
      if (Steady::now() - start > std::chrono::seconds(f_.catchup_timeout)) {
        // Not fatal: a region that cannot keep up is a figure too.
        if (!m.count("tandem_log_replication_bytes_total")) {
          fmt::print(
              "  NOT CAUGHT UP in {} s: the active region's /metrics did not answer; "
              "measuring anyway\n",
              f_.catchup_timeout);
          std::fflush(stdout);
          break;
        }
        fmt::print(
            "  NOT CAUGHT UP: the log backlog did not drain in {} s: {:.0f} KiB, {:.0f} chunks "
            "behind, oldest {:.1f} s; shipped {:.0f} KiB/s meanwhile; measuring anyway\n",
            f_.catchup_timeout, m["tandem_log_replication_bytes_behind"] / 1024,
            m["tandem_log_replication_chunks_behind"], m["tandem_log_replication_oldest_seconds"],
            (m["tandem_log_replication_bytes_total"] - shipped0) / 1024 /
                Secs(Steady::now() - start));
        std::fflush(stdout);
        break;
      }
      std::this_thread::sleep_for(250ms);
    }
    if (w != nullptr) {
      w->catchup_s = Secs(Steady::now() - start);
      w->catchup_bytes = before;
    }
    return Status::Ok();
  }

  std::vector<std::string> SampleKeys(const std::map<std::string, int64_t>& sizes) {
    std::vector<std::string> keys;
    for (const auto& [k, size] : sizes) {
      if (k.find("dag_id=hold/") != std::string::npos) keys.push_back(k);
    }
    if (static_cast<int>(keys.size()) <= f_.sample_logs) return keys;
    std::vector<std::string> some;
    some.reserve(static_cast<size_t>(f_.sample_logs));
    const double step = static_cast<double>(keys.size()) / f_.sample_logs;
    for (int i = 0; i < f_.sample_logs; ++i) {
      some.push_back(keys[static_cast<size_t>(i * step)]);
    }
    return some;
  }

  Status Measure(Window* w, ShortLoad& load, LagSampler& sampler, BacklogWatch& backlog) {
    const std::string url = pair_->region_url(active_);
    const std::string dir_a = pair_->region_dir(active_);
    const RegionPids a = FindRegion(*pair_, active_);
    const RegionPids b = FindRegion(*pair_, standby_);
    if (a.region == 0) return Internal(active_ + "'s process was not found in /proc");
    const HoldLogs logs0 = WalkHoldLogs(dir_a + "/logs");
    auto m0 = PeerMetrics(url);
    const uint64_t cursor0 = PeerCursor(dir_a);
    ASSIGN_OR_RETURN(const std::string db0, DbNow());
    const auto t0 = Steady::now();
    const CpuSample c0 = SampleCpu(a, b);
    if (w->replication) sampler.Begin(SampleKeys(logs0.sizes));
    backlog.Begin();

    Nap(std::chrono::seconds(f_.seconds));

    const auto t1 = Steady::now();
    const CpuSample c1 = SampleCpu(a, b);
    ASSIGN_OR_RETURN(const std::string db1, DbNow());
    w->backlog = backlog.End();
    if (w->replication) {
      LagSampler::Result s = sampler.End();
      w->sampled_n = s.lags.size();
      w->sampled_p50 = Quantile(s.lags, 0.5);
      w->sampled_p99 = Quantile(s.lags, 0.99);
      w->sampled_max = Quantile(s.lags, 1.0);
      w->tail_age_max = Quantile(s.tail_ages, 1.0);
      w->sampled_keys = s.keys;
      w->sampled_pending = s.pending;
    }
    auto m1 = PeerMetrics(url);
    const HoldLogs logs1 = WalkHoldLogs(dir_a + "/logs");
    w->seconds = Secs(t1 - t0);
    auto [done, latency] = load.Count(t0, t1);
    w->short_done = done;
    w->short_per_s = done / w->seconds;
    w->short_latency_s = latency;
    // Over the time between the walks' midpoints: the logs grew while they were walked.
    w->lines_per_s = static_cast<double>(logs1.bytes() - logs0.bytes()) / f_.line_bytes /
                     Secs(logs1.at - logs0.at);
    RETURN_IF_ERROR(ShortStages(db0, db1, w));
    auto running = RunningTasks();
    w->running = running.ok() ? *running : -1;
    w->bytes_per_s =
        (m1["tandem_log_replication_bytes_total"] - m0["tandem_log_replication_bytes_total"]) /
        w->seconds;
    const double batches =
        m1["tandem_log_replication_batches_total"] - m0["tandem_log_replication_batches_total"];
    w->batches_per_s = batches / w->seconds;
    w->chunks_per_batch = batches > 0 ? (m1["tandem_log_replication_chunks_sent_total"] -
                                         m0["tandem_log_replication_chunks_sent_total"]) /
                                            batches
                                      : 0;
    // The cursor file is written every second: read it again a little later for the end.
    std::this_thread::sleep_for(1100ms);
    w->records_per_s =
        static_cast<double>(PeerCursor(dir_a) - std::min(cursor0, PeerCursor(dir_a))) /
        (w->seconds + 1.1);
    // The window's own lag: the chunks acknowledged between the two scrapes, by bound. A
    // quantile is the smallest bound that holds that share of them (an upper bound on it).
    const std::string within = "tandem_log_replication_acked_within_total:";
    const double all = m1[within + "+Inf"] - m0[within + "+Inf"];
    w->region_acked = all;
    auto quantile = [&](double q) {
      if (all <= 0) return -1.0;
      for (const char* b : {"0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60"}) {
        if (m1[within + b] - m0[within + b] >= q * all) return std::strtod(b, nullptr);
      }
      return std::numeric_limits<double>::infinity();
    };
    w->region_p50 = quantile(0.5);
    w->region_p99 = quantile(0.99);
    w->region_within_1s = all > 0 ? (m1[within + "1"] - m0[within + "1"]) / all : -1;
    w->cpu_region = c1.region - c0.region;
    w->cpu_shipper = c1.shipper - c0.shipper;
    w->cpu_workers = c1.workers - c0.workers;
    w->cpu_postgres = c1.postgres - c0.postgres;
    w->cpu_standby = c1.standby - c0.standby;
    const double total = c1.machine_total - c0.machine_total;
    w->machine_busy = total > 0 ? (c1.machine_busy - c0.machine_busy) / total : -1;
    return Status::Ok();
  }

  void Print(int run, const Window& w) {
    const double offered = static_cast<double>(f_.tasks) * f_.lines_per_second;
    fmt::print(
        "  run {} replication {:<3} {:.1f} s: short tasks {:.2f}/s ({} done, median {:.2f} s "
        "each); log lines {:.0f}/s of {:.0f} offered ({:.1f} %), {} writers running\n",
        run, w.replication ? "on" : "off", w.seconds, w.short_per_s, w.short_done,
        w.short_latency_s, w.lines_per_s, offered, 100 * w.lines_per_s / offered, w.running);
    fmt::print(
        "        a short task's stages (medians): run to scheduled {:.3f} s, to queued {:.3f} s, "
        "to started {:.3f} s, to ended {:.3f} s\n",
        w.stage_schedule, w.stage_queue, w.stage_claim, w.stage_run);
    fmt::print(
        "        CPU s: active {} {:.1f} ({:.0f} % of a core; its log shipper {:.2f}), its workers "
        "{:.1f}, its PostgreSQL {:.1f}, standby {:.1f}; machine busy {:.0f} %\n",
        active_, w.cpu_region, 100 * w.cpu_region / w.seconds, w.cpu_shipper, w.cpu_workers,
        w.cpu_postgres, w.cpu_standby, 100 * w.machine_busy);
    fmt::print(
        "        replicated {:.0f} KiB/s, {:.0f} records/s in {:.1f} batches/s of {:.0f} chunks; "
        "backlog max {:.0f} chunks, {:.0f} KiB, oldest {:.2f} s\n",
        w.bytes_per_s / 1024, w.records_per_s, w.batches_per_s, w.chunks_per_batch,
        w.backlog.chunks, w.backlog.bytes / 1024, w.backlog.oldest_s);
    if (w.replication) {
      fmt::print(
          "        lag: region's counters p50 <= {} s p99 <= {} s ({:.2f} % of {:.0f} chunks "
          "acknowledged within 1 s); sampled "
          "p50 {:.3f} s p99 {:.3f} s max {:.3f} s ({} growths of {} logs every {} ms, {} "
          "still pending at the end, counted with their age: lower bounds); oldest missing tail "
          "{:.3f} s\n",
          w.region_p50, w.region_p99, 100 * w.region_within_1s, w.region_acked, w.sampled_p50,
          w.sampled_p99, w.sampled_max, w.sampled_n, w.sampled_keys, f_.sample_ms,
          w.sampled_pending, w.tail_age_max);
    } else {
      fmt::print(
          "        after it: {:.0f} KiB of backlog drained in {:.1f} s, then sync(2) "
          "took {:.1f} s\n",
          w.catchup_bytes / 1024, w.catchup_s, w.sync_s);
    }
    std::fflush(stdout);
  }

  const Flags& f_;
  // Declared before pair_, so destroyed after it: the mount outlives the processes using it.
  TmpfsMount standby_disk_;
  std::unique_ptr<PairProcess> pair_;
  std::string active_ = "region-a", standby_ = "region-b";
  std::vector<std::string> deployments_;
};

// ----- the image benchmark --------------------------------------------------------------------

Status ImageBench(const Flags& f, std::vector<double>* times) {
  PairProcess::Options o;
  o.local_workers = 1;
  o.worker_slots = 4;
  ASSIGN_OR_RETURN(std::unique_ptr<PairProcess> pair, PairProcess::Create(o));
  RETURN_IF_ERROR(pair->StartAll());
  images::RegistryClientOptions ao, bo;
  ao.url = pair->registry_url("region-a");
  bo.url = pair->registry_url("region-b");
  ASSIGN_OR_RETURN(images::RegistryPtr a, images::NewRegistryClient(ao));
  ASSIGN_OR_RETURN(images::RegistryPtr b, images::NewRegistryClient(bo));
  for (int run = 1; run <= f.image_runs && !g_interrupted; ++run) {
    images::Files files = {
        {"dags.yaml", "hold:\n  schedule: null\n  tasks:\n    t:\n      operator: empty\n"},
        {"data/blob.bin", RandomBytes(static_cast<size_t>(f.image_mib) << 20)}};
    ASSIGN_OR_RETURN(images::Image image, images::BuildImage(files));
    int64_t size = static_cast<int64_t>(image.manifest.size());
    for (const auto& [digest, blob] : image.blobs) size += static_cast<int64_t>(blob.size());
    const std::string repo = "bench/image";
    const std::string tag = "run-" + std::to_string(run);
    const auto p0 = Steady::now();
    RETURN_IF_ERROR(images::PushImage(*a, repo, tag, image));
    const double push = Secs(Steady::now() - p0);
    const auto t0 = Steady::now();
    ASSIGN_OR_RETURN(images::ReplicateReport r,
                     images::ReplicateImage(*a, *b, repo, image.digest, tag));
    const double took = Secs(Steady::now() - t0);
    ASSIGN_OR_RETURN(std::optional<std::string> there, b->StatManifest(repo, tag));
    if (!there || *there != image.digest) {
      return Internal("region-b's registry does not answer " + image.digest + " for " + tag);
    }
    fmt::print(
        "  run {}: {:.1f} MiB image ({} blobs copied, {:.1f} MiB) replicated in {:.2f} s "
        "({:.0f} MiB/s); push to region-a took {:.2f} s\n",
        run, static_cast<double>(size) / (1 << 20), r.blobs_copied,
        static_cast<double>(r.bytes_copied) / (1 << 20), took,
        static_cast<double>(r.bytes_copied) / (1 << 20) / took, push);
    std::fflush(stdout);
    times->push_back(took);
  }
  return Status::Ok();
}

int Main(int argc, char** argv) {
  Flags f;
  CLI::App app{"The replication benchmark: task log replication under load, and images"};
  app.add_option("--deployments", f.deployments, "Deployments");
  app.add_option("--tasks", f.tasks, "Long-running log-writing tasks in all");
  app.add_option("--seconds", f.seconds, "Length of each measurement window");
  app.add_option("--runs", f.runs,
                 "Pairs of windows (replication on, then off); one more on window ends the run");
  app.add_option("--lines-per-second", f.lines_per_second, "Lines each task writes a second");
  app.add_option("--line-bytes", f.line_bytes, "Bytes per line, newline included");
  app.add_option("--sample-logs", f.sample_logs, "Logs the lag sampler watches");
  app.add_option("--sample-ms", f.sample_ms, "The lag sampler's interval");
  app.add_option("--short-concurrency", f.short_concurrency, "Short-task clients (closed loop)");
  app.add_option("--short-deployments", f.short_deployments, "Deployments the short tasks use");
  app.add_option("--workers", f.workers, "Local workers per region");
  app.add_option("--slots", f.slots, "Slots per local worker");
  app.add_option("--settle-seconds", f.settle_seconds,
                 "Wait before the first window and after each drain");
  app.add_option("--catchup-timeout", f.catchup_timeout, "Bound on a backlog's drain (s)");
  app.add_option("--image-mib", f.image_mib, "Image size (MiB of random bytes)");
  app.add_option("--image-runs", f.image_runs, "Image copies (medians over them)");
  app.add_option("--standby-nice", f.standby_nice,
                 "Niceness of the standby's processes (0: as started; here the standby shares "
                 "the primary's cores, where in a pair it has machines of its own)")
      ->check(CLI::Range(0, 19));
  app.add_option("--standby-cpus", f.standby_cpus,
                 "CPUs of the standby's own, the last ones (its region, workers and PostgreSQL; "
                 "everything else runs on the others, as if the standby had a machine of its "
                 "own); 0: the standby shares every CPU")
      ->check(CLI::Range(0, 1024));
  app.add_option("--standby-disk", f.standby_disk,
                 "The standby's state directory: tmpfs (a disk of its own, as in a pair; the "
                 "primary's fsyncs then commit none of the standby's writes) or shared (the "
                 "primary's filesystem)")
      ->check(CLI::IsMember({"tmpfs", "shared"}));
  app.add_option("--writer", f.writer,
                 "The log-writing tasks: native (tandem-bench-log-writer, a few µs of CPU a "
                 "line) or bash (builtins, ~74 µs a line: the writers alone saturate 2 cores)")
      ->check(CLI::IsMember({"native", "bash"}));
  app.add_flag("!--no-logs", f.logs, "Skip the log benchmark");
  app.add_flag("!--no-images", f.images, "Skip the image benchmark");
  CLI11_PARSE(app, argc, argv);
  if (f.standby_cpus >= CpuCount()) {
    fmt::print(stderr, "error: --standby-cpus {} leaves the primary no CPU of the {} here\n",
               f.standby_cpus, CpuCount());
    return 2;
  }
  if (f.standby_cpus > 0) {
    // Before any thread or process starts, so that everything the bench starts inherits it; the
    // standby is moved to its own CPUs once it runs (LogBench::PinStandby).
    const cpu_set_t rest = CpuRange(0, StandbyFirstCpu(f.standby_cpus));
    if (sched_setaffinity(0, sizeof rest, &rest) != 0) {
      fmt::print(stderr, "error: cannot keep the bench to CPUs 0-{}: {}\n",
                 StandbyFirstCpu(f.standby_cpus) - 1, strerror(errno));
      return 1;
    }
  }
  SetUpProcess(OnSignal);

  fmt::print(
      "replication bench: {} deployments, {} log-writing tasks x {} lines/s x {} bytes = {:.0f} "
      "lines/s, {:.0f} KiB/s offered; windows of {} s, {} run(s) of (replication on, off) and a "
      "last "
      "on window\n"
      "settings: asynchronous pair on loopback (own 127.x addresses), standby's CPUs: {}, "
      "standby's disk: {}, writers: {}, {} local workers x {} slots per region, "
      "task_logs.chunk_bytes 65536 (default), "
      "worker log flush 200 ms, peer "
      "batches <= 1 MiB; short-task load: {} clients over {} deployments; lag sampler: {} logs "
      "every {} ms; images: {} MiB x {} runs; {} CPUs\n",
      f.deployments, f.tasks, f.lines_per_second, f.line_bytes,
      static_cast<double>(f.tasks) * f.lines_per_second,
      static_cast<double>(f.tasks) * f.lines_per_second * f.line_bytes / 1024, f.seconds, f.runs,
      f.standby_cpus == 0
          ? std::string("shared with the primary")
          : fmt::format("{} of {} (the others the primary's)", f.standby_cpus, CpuCount()),
      f.standby_disk == "tmpfs" ? "a tmpfs of its own" : "shared with the primary",
      f.writer == "bash" ? "bash builtins" : "tandem-bench-log-writer", f.workers, f.slots,
      f.short_concurrency, f.short_deployments, f.sample_logs, f.sample_ms, f.image_mib,
      f.image_runs, std::thread::hardware_concurrency());
  std::fflush(stdout);

  std::vector<Window> windows;
  if (f.logs && !g_interrupted) {
    fmt::print("\nlogs\n");
    LogBench b(f);
    Status s = b.Run(&windows);
    b.Stop();
    if (!s.ok()) {
      fmt::print(stderr, "error: {}\n", s.ToString());
      return 1;
    }
  }
  std::vector<double> image_times;
  if (f.images && !g_interrupted) {
    // Both regions' registries on every CPU again: the image copy is measured as before.
    const cpu_set_t all = CpuRange(0, CpuCount());
    (void)sched_setaffinity(0, sizeof all, &all);
    fmt::print("\nimages\n");
    Status s = ImageBench(f, &image_times);
    if (!s.ok()) {
      fmt::print(stderr, "error: {}\n", s.ToString());
      return 1;
    }
  }

  fmt::print("\nmedians\n");
  if (!windows.empty()) {
    std::vector<double> on_short, off_short, on_lines, off_lines, on_cpu, off_cpu, p50, p99, s50,
        s99, bps, cps, batches, backlog_chunks, backlog_bytes, tail, busy_on, busy_off, shipper;
    for (const Window& w : windows) {
      (w.replication ? on_short : off_short).push_back(w.short_per_s);
      (w.replication ? on_lines : off_lines).push_back(w.lines_per_s);
      (w.replication ? on_cpu : off_cpu).push_back(w.cpu_region / w.seconds);
      (w.replication ? busy_on : busy_off).push_back(w.machine_busy);
      if (!w.replication) continue;
      shipper.push_back(w.cpu_shipper / w.seconds);
      p50.push_back(w.region_p50);
      p99.push_back(w.region_p99);
      s50.push_back(w.sampled_p50);
      s99.push_back(w.sampled_p99);
      bps.push_back(w.bytes_per_s);
      cps.push_back(w.records_per_s);
      batches.push_back(w.batches_per_s);
      backlog_chunks.push_back(w.backlog.chunks);
      backlog_bytes.push_back(w.backlog.bytes);
      tail.push_back(w.tail_age_max);
    }
    const double offered = static_cast<double>(f.tasks) * f.lines_per_second;
    fmt::print(
        "  log lag (region's counters)  p50 <= {} s  p99 <= {} s (target p99 <= {:.0f} "
        "s: {})\n",
        Median(p50), Median(p99), kLagP99Target,
        MetOrMissed(Median(p99) >= 0 && Median(p99) <= kLagP99Target));
    fmt::print(
        "  log lag (sampled from files)  p50 {:.3f} s  p99 {:.3f} s (target p99 <= {:.0f} "
        "s: {}); oldest missing tail {:.3f} s\n",
        Median(s50), Median(s99), kLagP99Target,
        MetOrMissed(Median(s99) >= 0 && Median(s99) <= kLagP99Target), Median(tail));
    fmt::print(
        "  replicated  {:.0f} KiB/s  {:.0f} records/s in {:.1f} batches/s; backlog max "
        "{:.0f} chunks, {:.0f} KiB\n",
        Median(bps) / 1024, Median(cps), Median(batches), Median(backlog_chunks),
        Median(backlog_bytes) / 1024);
    const double short_ratio = Median(on_short) / Median(off_short);
    const double lines_ratio = Median(on_lines) / Median(off_lines);
    fmt::print(
        "  task throughput (short tasks/s)  on {:.2f}  off {:.2f}  on/off {:.3f}: cost "
        "{:.1f} % (target <= {:.0f} %: {})\n",
        Median(on_short), Median(off_short), short_ratio, 100 * (1 - short_ratio),
        100 * kThroughputCostTarget, MetOrMissed(1 - short_ratio <= kThroughputCostTarget));
    // Each pair's own cost (its "on" window against the "off" window that follows it): how
    // far one pair of windows is from the next says how much a single figure can be trusted.
    std::string pairs;
    for (size_t i = 0; i + 1 < windows.size(); i += 2) {
      if (!windows[i].replication || windows[i + 1].replication) continue;
      if (!pairs.empty()) pairs += ", ";
      pairs +=
          fmt::format("{:.1f} %", 100 * (1 - windows[i].short_per_s / windows[i + 1].short_per_s));
    }
    // The load drifts over a run (the database grows with every short task), and an "off"
    // window always follows its "on" window: each "off" window is also compared with the mean
    // of the "on" windows on either side of it, which cancels a steady drift.
    std::string bracketed;
    std::vector<double> bracketed_costs;
    for (size_t i = 1; i + 1 < windows.size(); i += 2) {
      if (windows[i].replication || !windows[i - 1].replication || !windows[i + 1].replication) {
        continue;
      }
      const double on = (windows[i - 1].short_per_s + windows[i + 1].short_per_s) / 2;
      bracketed_costs.push_back(1 - on / windows[i].short_per_s);
      if (!bracketed.empty()) bracketed += ", ";
      bracketed += fmt::format("{:.1f} %", 100 * bracketed_costs.back());
    }
    fmt::print(
        "  short-task cost by pair of windows: {}; each \"off\" window against the \"on\" "
        "windows either side: {} (median {})\n",
        pairs, bracketed.empty() ? "-" : bracketed,
        bracketed_costs.empty() ? "-" : fmt::format("{:.1f} %", 100 * Median(bracketed_costs)));
    fmt::print(
        "  log lines written/s  on {:.0f}  off {:.0f} of {:.0f} offered  on/off {:.3f}: "
        "cost {:.1f} % (target <= {:.0f} %: {}){}\n",
        Median(on_lines), Median(off_lines), offered, lines_ratio, 100 * (1 - lines_ratio),
        100 * kThroughputCostTarget, MetOrMissed(1 - lines_ratio <= kThroughputCostTarget),
        Median(on_lines) < 0.95 * offered
            ? fmt::format("; NOT SUSTAINED: the tasks wrote {:.0f} % of the offered rate",
                          100 * Median(on_lines) / offered)
            : "");
    fmt::print(
        "  active region's CPU  on {:.2f}  off {:.2f} cores: replication costs {:+.2f} cores "
        "({:+.1f} %); machine busy on {:.0f} % off {:.0f} %\n",
        Median(on_cpu), Median(off_cpu), Median(on_cpu) - Median(off_cpu),
        100 * (Median(on_cpu) / Median(off_cpu) - 1), 100 * Median(busy_on),
        100 * Median(busy_off));
    fmt::print(
        "  the active region's log shipper (its ship-peer thread) with replication on: "
        "{:.3f} cores, {:.1f} ms of CPU per MiB replicated\n",
        Median(shipper), 1000 * Median(shipper) / (Median(bps) / (1 << 20)));
  }
  if (!image_times.empty()) {
    fmt::print("  image {} MiB replicated in {:.2f} s (target <= {:.0f} s: {}) [{} runs]\n",
               f.image_mib, Median(image_times), kImageTarget,
               MetOrMissed(Median(image_times) <= kImageTarget), image_times.size());
  }
  return 0;
}

}  // namespace
}  // namespace tandem::bench

int main(int argc, char** argv) { return tandem::bench::Main(argc, argv); }
