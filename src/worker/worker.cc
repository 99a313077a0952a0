#include "worker/worker.h"

#include <httplib.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/fs.h"
#include "base/random.h"
#include "dns/dns.h"
#include "tls/http_client.h"
#include "worker/masker.h"
#include "worker/runner.h"

namespace tandem::worker {
namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;
using Steady = std::chrono::steady_clock;

// Keeps each log request well under the region's body limit.
constexpr size_t kMaxLogBatchBytes = 1 << 20;

struct Endpoint {
  std::string host_port;  // scheme://host:port
  std::string prefix;     // path before /execution/v1, "" or /deployments/NAME
  dns::HostPort where;    // host (a name or an address) and port
};

Result<Endpoint> ParseUrl(const std::string& url) {
  size_t scheme = url.find("://");
  if (scheme == std::string::npos ||
      (url.substr(0, scheme) != "http" && url.substr(0, scheme) != "https")) {
    return InvalidArgument("--api must be an https:// or http:// URL, got '" + url + "'");
  }
  size_t path = url.find('/', scheme + 3);
  Endpoint e;
  e.host_port = url.substr(0, path);
  if (path != std::string::npos) e.prefix = url.substr(path);
  while (!e.prefix.empty() && e.prefix.back() == '/') e.prefix.pop_back();
  if (e.host_port.size() <= scheme + 3) return InvalidArgument("--api has no host: '" + url + "'");
  ASSIGN_OR_RETURN(e.where, dns::ParseHttpUrl(url));
  return e;
}

// One connection to the Execution API. With a resolver (WorkerOptions::dns_server) and a host
// that is a name, it connects to the address the DNS server gives for the name (kept for its
// TTL) and sends the name as Host; after a connection error or a 421/503 the caller calls
// Forget(), and the next call looks the name up again and reconnects when the address moved —
// so a worker follows a failover without waiting out the TTL. Post() and Forget() are for one
// thread; Stop() may come from any.
class ApiClient {
 public:
  ApiClient(const Endpoint& e, tls::Trust trust, dns::Resolver* resolver,
            std::chrono::seconds read_timeout)
      : e_(e), trust_(std::move(trust)), resolver_(resolver), read_timeout_(read_timeout) {}

  Result<httplib::Result> Post(const std::string& path, const httplib::Headers& headers,
                               const std::string& body) {
    ASSIGN_OR_RETURN(std::string address, dns::ConnectAddress(resolver_, e_.where.host));
    httplib::Client* cli = nullptr;
    {
      std::lock_guard lock(mu_);
      if (stopped_) return Unavailable("the worker is stopping");
      // The region closes a connection idle for 2 s. Over TLS its close_notify makes the socket
      // look alive to httplib, which would then send on it and fail: a connection idle for 1.5 s
      // is replaced before it is used (a heartbeat every second keeps its own).
      const auto now = std::chrono::steady_clock::now();
      const bool stale = now - last_used_ > std::chrono::milliseconds(1500);
      last_used_ = now;
      if (!client_ || address != address_ || stale) {
        client_ = tls::NewHttpClient(e_.where.https, e_.where.host, e_.where.port, trust_);
        if (address != e_.where.host) client_->set_hostname_addr_map({{e_.where.host, address}});
        client_->set_read_timeout(read_timeout_);
        // Kept between calls: over TLS a new connection per claim, heartbeat and log batch
        // costs both sides a handshake.
        client_->set_keep_alive(true);
        // A region that is gone may not refuse the connection (a lost host, a dropped route):
        // give up soon and look the name up again rather than wait minutes.
        client_->set_connection_timeout(std::chrono::seconds(5));
        address_ = address;
      }
      cli = client_.get();
    }
    return cli->Post(path, headers, body, "application/json");
  }
  void Forget() {
    if (resolver_ != nullptr) resolver_->Forget(e_.where.host);
  }
  // What a failed Post says: httplib's error, or why the region's certificate was refused.
  std::string Describe(httplib::Error error) {
    std::lock_guard lock(mu_);
    return client_ ? tls::DescribeError(*client_, error, trust_) : httplib::to_string(error);
  }
  void Stop() {
    std::lock_guard lock(mu_);
    stopped_ = true;
    if (client_) client_->stop();
  }

 private:
  const Endpoint& e_;
  const tls::Trust trust_;
  dns::Resolver* const resolver_;
  const std::chrono::seconds read_timeout_;
  std::mutex mu_;
  std::unique_ptr<httplib::Client> client_;  // guarded by mu_; replaced only by its own thread
  std::string address_;                      // guarded by mu_
  std::chrono::steady_clock::time_point last_used_;  // guarded by mu_
  bool stopped_ = false;                             // guarded by mu_
};

std::string NewUuid() {
  std::string b = RandomBytes(16);
  b[6] = static_cast<char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<char>((b[8] & 0x3f) | 0x80);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < b.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[static_cast<unsigned char>(b[i]) >> 4]);
    out.push_back(kHex[static_cast<unsigned char>(b[i]) & 15]);
  }
  return out;
}

std::string Now() {
  auto t = std::chrono::system_clock::now();
  std::time_t s = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[40];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  auto ms = std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count() % 1000;
  char out[64];
  snprintf(out, sizeof out, "%s.%03lld+0000", buf, static_cast<long long>(ms));
  return out;
}

// Makes the worker's task directory, searchable by the tasks' users (each task's own directory in
// it is theirs, 0700), empty: what an earlier worker killed on the spot left is moved aside, to
// `dir`.old-XXXXXXXX beside it, in one rename — a promoted region's workers found 1,250 task
// directories there, and removing them took a second before the first claim. Returns the paths
// to remove (earlier workers' leftovers moved aside and not yet removed included).
Result<std::vector<std::string>> PrepareTaskDir(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_empty(dir, ec)) {
    const std::string aside = dir + ".old-" + HexEncode(RandomBytes(4));
    if (std::rename(dir.c_str(), aside.c_str()) != 0) {
      return Internal("cannot move " + dir + " aside to " + aside + ": " + std::strerror(errno));
    }
  }
  RETURN_IF_ERROR(MakeDirs(dir, 0711));
  if (chmod(dir.c_str(), 0711) != 0) {
    return Internal("cannot make " + dir + " searchable (0711): " + std::strerror(errno));
  }
  std::vector<std::string> stale;
  const fs::path path(dir);
  const std::string prefix = path.filename().string() + ".old-";
  for (const auto& entry : fs::directory_iterator(path.parent_path(), ec)) {
    if (entry.path().filename().string().starts_with(prefix)) stale.push_back(entry.path());
  }
  return stale;
}

// Removes what PrepareTaskDir moved aside: after `delay`, or at once when `stop` is set — not
// while the worker's first claims start the tasks of a failover.
void SweepTaskDirs(const std::vector<std::string>& stale, std::chrono::milliseconds delay,
                   std::mutex* mu, std::condition_variable* cv, const bool* stop) {
  {
    std::unique_lock lock(*mu);
    cv->wait_for(lock, delay, [stop] { return *stop; });
  }
  size_t removed = 0;
  for (const std::string& old : stale) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(old, ec)) {
      RemoveTaskDir(entry.path().string());
      ++removed;
    }
    (void)RemoveAll(old);
  }
  if (removed > 0) spdlog::info("removed {} task directories earlier workers left", removed);
}

// A line in the task log from the worker itself, in Airflow's log format.
std::string LogLine(const std::string& level, const std::string& text) {
  return "[" + Now() + "] {tandem} " + level + " - " + text + "\n";
}

struct Task {
  std::string token;
  std::string ti_id;
  int try_number = 0;
  std::string label;  // dag.task run try, for the worker's own log
  // The secrets the claim said to hide, one masker per stream: a secret split between two
  // reads of stdout is still seen when stderr wrote between them.
  Masker out_masker{{}}, err_masker{{}};
};

}  // namespace

struct Worker::Impl {
  WorkerOptions options;
  Endpoint endpoint;
  std::unique_ptr<dns::Resolver> resolver;  // set when options.dns_server is
  std::string id = NewUuid();
  std::atomic<bool> stopping{false};
  std::atomic<int> heartbeat_ms{1000};
  ApiClient* claim_client = nullptr;  // guarded by mu; cut on Stop() to end a long poll
  Status fatal;                       // guarded by mu: why the worker gave up, if it did

  std::mutex mu;
  std::condition_variable cv;
  std::deque<Json> claimed;  // guarded by mu: claimed, not yet started
  // Guarded by mu: the claims_through of the latest claim answer, taken by the loop with
  // `claimed`, and the value of the last answer whose tasks live_tokens holds (sent with the
  // heartbeat, so the region judges only tries of claims the worker had started).
  std::optional<int64_t> claims_through;
  std::optional<int64_t> live_claims_through;
  int busy = 0;  // guarded by mu: claimed + running
  // The heartbeat has its own thread, so a slow log flush never makes the worker look quiet
  // (the region reaps the tries of a worker it has not heard from in three heartbeats).
  std::vector<std::string> live_tokens;  // guarded by mu: published by the loop
  std::vector<std::string> ended;        // guarded by mu: ti ids the region ended
  std::vector<std::pair<std::string, std::string>> renewed;  // guarded by mu: (ti id, token)
  bool loop_done = false;  // guarded by mu: the heartbeat thread stops

  // Owned by the loop thread.
  std::map<std::string, Task> running;            // by ti_id
  bool running_changed = true;                    // live_tokens is out of date
  std::optional<int64_t> started_claims_through;  // the claims whose tasks `running` holds
  std::vector<std::pair<std::string, std::string>> log_batch;  // (token, data)
  size_t log_bytes = 0;
  Json finish_batch = Json::array();
  std::vector<std::string> finished_ids;  // their slots free once the finish is sent

  Result<Json> Post(ApiClient& cli, const std::string& path, const Json& body) {
    httplib::Headers headers = {{"Authorization", "Bearer " + options.credential}};
    Result<httplib::Result> sent =
        cli.Post(endpoint.prefix + "/execution/v1/" + path, headers, body.dump());
    if (!sent.ok()) {
      // The name does not resolve (the DNS server is down, or the name is not published yet).
      return Unavailable("cannot look up the Execution API's host " + endpoint.where.host + ": " +
                         sent.status().message());
    }
    httplib::Result& r = *sent;
    if (!r) {
      cli.Forget();
      return Unavailable("cannot reach the Execution API at " + options.api_url + ": " +
                         cli.Describe(r.error()));
    }
    if (r->status == 421 || r->status == 503) cli.Forget();  // a failover moved it, or is under way
    if (r->status == 204) return Json::object();
    Json j = Json::parse(r->body, nullptr, false);
    if (r->status >= 400) {
      std::string detail = j.is_object() && j.contains("detail") ? j["detail"].dump() : r->body;
      Code code = r->status == 401   ? Code::kUnauthenticated
                  : r->status == 403 ? Code::kPermissionDenied
                  : r->status == 404 ? Code::kNotFound
                  : r->status == 409 ? Code::kFailedPrecondition  // the tries had ended
                  : r->status == 503 ? Code::kUnavailable
                  : r->status == 421 ? Code::kUnavailable  // not active: retried like a 503
                  : r->status >= 500 ? Code::kInternal
                                     : Code::kInvalidArgument;
      return Status(code, "Execution API answered " + std::to_string(r->status) + ": " + detail);
    }
    if (j.is_discarded()) return Internal("Execution API answered with something not JSON");
    return j;
  }

  Json WorkerBody() const {
    return {{"worker_id", id}, {"hostname", options.hostname}, {"capacity", options.slots}};
  }

  void ClaimLoop() {
    ApiClient cli(endpoint, {options.ca_file}, resolver.get(),
                  std::chrono::duration_cast<std::chrono::seconds>(options.claim_wait) +
                      std::chrono::seconds(10));
    {
      std::lock_guard lock(mu);
      claim_client = &cli;
    }
    ClaimUntilStopped(cli);
    std::lock_guard lock(mu);
    claim_client = nullptr;
  }

  void ClaimUntilStopped(ApiClient& cli) {
    Backoff backoff(milliseconds(100), std::chrono::seconds(5));
    while (!stopping) {
      int free = 0;
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return stopping || busy < options.slots; });
        if (stopping) return;
        free = options.slots - busy;
      }
      Json body = WorkerBody();
      body["slots"] = free;
      body["wait_ms"] = options.claim_wait.count();
      Result<Json> r = Post(cli, "claim", body);
      if (!r.ok() &&
          (r.status().code() == Code::kUnauthenticated ||
           r.status().code() == Code::kPermissionDenied || r.status().code() == Code::kNotFound)) {
        // A wrong or revoked credential, one of another deployment, or a deployment that does
        // not exist: configuration, not weather.
        // Waiting will not fix it; stop and say so.
        spdlog::error("worker {}: {}", id, r.status().message());
        std::lock_guard lock(mu);
        fatal = r.status();
        stopping = true;
        cv.notify_all();
        return;
      }
      if (!r.ok()) {
        spdlog::warn("worker {}: claim failed: {}", id, r.status().message());
        std::unique_lock lock(mu);
        cv.wait_for(lock, backoff.Next(), [&] { return stopping.load(); });
        continue;
      }
      backoff = Backoff(milliseconds(100), std::chrono::seconds(5));
      if (r->contains("heartbeat_ms")) heartbeat_ms = (*r)["heartbeat_ms"].get<int>();
      std::lock_guard lock(mu);
      for (const Json& t : (*r)["tasks"]) {
        claimed.push_back(t);
        ++busy;
      }
      if (r->contains("claims_through") && (*r)["claims_through"].is_number_integer()) {
        claims_through = (*r)["claims_through"].get<int64_t>();
      }
    }
  }

  void StartClaimed(Runner& runner) {
    std::deque<Json> batch;
    {
      std::lock_guard lock(mu);
      batch.swap(claimed);
      if (claims_through != started_claims_through) {
        started_claims_through = claims_through;
        running_changed = true;
      }
    }
    for (const Json& t : batch) {
      Task task;
      task.token = t["token"].get<std::string>();
      task.ti_id = t["ti_id"].get<std::string>();
      task.try_number = t["try_number"].get<int>();
      task.label = t["dag_id"].get<std::string>() + "." + t["task_id"].get<std::string>() + " " +
                   t["run_id"].get<std::string>() + " try " + std::to_string(task.try_number);
      std::vector<std::string> secrets;
      if (t.contains("mask") && t["mask"].is_array()) {
        for (const Json& s : t["mask"]) {
          if (s.is_string()) secrets.push_back(s.get<std::string>());
        }
      }
      task.out_masker = Masker(secrets);
      task.err_masker = Masker(std::move(secrets));
      ProcessSpec spec;
      spec.key = task.ti_id;
      if (!options.shim.empty()) {
        spec.argv = {options.shim, "--nice", std::to_string(options.task_nice), "--parent",
                     std::to_string(getpid())};
        // Started as root, the worker runs each deployment's tasks as a user of its own.
        if (geteuid() == 0 && t.contains("run_as_uid") && t["run_as_uid"].is_number_integer()) {
          const int64_t uid = t["run_as_uid"].get<int64_t>();
          spec.argv.insert(spec.argv.end(), {"--uid", std::to_string(uid)});
          spec.uid = static_cast<uid_t>(uid);
        }
        spec.argv.push_back("--");
      }
      for (const Json& a : t["argv"]) spec.argv.push_back(a.get<std::string>());
      std::map<std::string, std::string> env;
      for (const char* name : {"PATH", "HOME", "LANG", "TMPDIR", "TZ"}) {
        if (const char* v = getenv(name)) env[name] = v;
      }
      if (!env.count("PATH")) env["PATH"] = "/usr/local/bin:/usr/bin:/bin";
      for (const auto& [k, v] : t["env"].items()) env[k] = v.get<std::string>();
      for (const auto& [k, v] : env) {
        std::string entry = k;
        entry += '=';
        entry += v;
        spec.env.push_back(std::move(entry));
      }
      spec.cwd = t["cwd"].get<std::string>();
      spec.timeout = milliseconds(t["timeout_ms"].get<int64_t>());
      Log(task.token, LogLine("INFO", "Running " + task.label + " on host " + options.hostname +
                                          " (worker " + id + ")"));
      Status s = runner.Start(spec);
      if (!s.ok()) {
        Log(task.token, LogLine("ERROR", "the task could not start: " + s.message()));
        Report(task, "failed", std::nullopt);
        continue;
      }
      running[task.ti_id] = std::move(task);
      running_changed = true;
    }
  }

  void Log(const std::string& token, std::string data) {
    log_bytes += data.size();
    log_batch.emplace_back(token, std::move(data));
  }

  void Report(const Task& task, const std::string& state,
              const std::optional<std::string>& return_value) {
    Json r = {{"token", task.token}, {"state", state}};
    if (return_value) r["return_value"] = *return_value;
    finish_batch.push_back(std::move(r));
    finished_ids.push_back(task.ti_id);
  }

  void OnExit(const Exit& e) {
    auto it = running.find(e.key);
    if (it == running.end()) return;  // stopped on the region's word: not ours to report
    Task task = std::move(it->second);
    running.erase(it);
    running_changed = true;
    for (Masker* m : {&task.out_masker, &task.err_masker}) {
      if (std::string rest = m->Finish(); !rest.empty()) Log(task.token, std::move(rest));
    }
    std::string state;
    std::optional<std::string> xcom;
    if (e.timed_out) {
      Log(task.token,
          LogLine("ERROR", "Task timed out after " + std::to_string(e.duration.count() / 1000) +
                               " s and was killed"));
      state = "failed";
    } else if (e.exit_code == 0) {
      state = "success";
      // The return value is readable through the API: a secret in it is masked too.
      xcom = task.out_masker.Mask(e.last_stdout_line);
      Log(task.token, LogLine("INFO", "Command exited with return code 0"));
    } else if (e.exit_code == 99) {
      state = "skipped";
      Log(task.token, LogLine("INFO", "Command exited with return code 99: task skipped"));
    } else {
      state = "failed";
      Log(task.token,
          LogLine("ERROR", e.signal
                               ? "Command was killed by signal " + std::to_string(e.signal)
                               : "Command exited with return code " + std::to_string(e.exit_code)));
    }
    Report(task, state, xcom);
  }

  // Sends logs, then finishes (a finished try's log is complete before its state says so).
  void Flush(ApiClient& cli) {
    while (!log_batch.empty()) {
      Json chunks = Json::array();
      size_t bytes = 0, n = 0;
      for (; n < log_batch.size() && (n == 0 || bytes < kMaxLogBatchBytes); ++n) {
        chunks.push_back({{"token", log_batch[n].first}, {"data", log_batch[n].second}});
        bytes += log_batch[n].second.size();
      }
      Result<Json> r = Post(cli, "logs", {{"chunks", chunks}});
      if (!r.ok()) {
        if (r.status().code() == Code::kUnavailable || r.status().code() == Code::kInternal) {
          spdlog::warn("worker {}: logs not sent yet: {}", id, r.status().message());
          return;  // kept; sent again on the next flush
        }
        // Refused (a token expired, or every try had ended): these lines cannot be stored; say
        // so and drop them.
        if (r.status().code() == Code::kFailedPrecondition) {
          spdlog::info("worker {}: logs of ended tries dropped: {}", id, r.status().message());
        } else {
          spdlog::error("worker {}: logs refused: {}", id, r.status().message());
        }
      }
      log_batch.erase(log_batch.begin(), log_batch.begin() + static_cast<long>(n));
      log_bytes -= std::min(log_bytes, bytes);
    }
    if (finish_batch.empty()) return;
    Result<Json> r = Post(cli, "finish", {{"worker_id", id}, {"results", finish_batch}});
    if (!r.ok() &&
        (r.status().code() == Code::kUnavailable || r.status().code() == Code::kInternal)) {
      spdlog::warn("worker {}: results not sent yet: {}", id, r.status().message());
      return;
    }
    if (!r.ok() && r.status().code() == Code::kFailedPrecondition) {
      spdlog::info("worker {}: results of tries that had ended: {}", id, r.status().message());
    } else if (!r.ok()) {
      spdlog::error("worker {}: results refused: {}", id, r.status().message());
    }
    finish_batch = Json::array();
    {
      std::lock_guard lock(mu);
      busy -= static_cast<int>(finished_ids.size());
    }
    finished_ids.clear();
    cv.notify_all();
  }

  // The heartbeat thread: every heartbeat_ms, the tokens the loop last published.
  void HeartbeatLoop() {
    ApiClient cli(endpoint, {options.ca_file}, resolver.get(), std::chrono::seconds(30));
    while (true) {
      std::vector<std::string> tokens;
      std::optional<int64_t> through;
      {
        std::unique_lock lock(mu);
        cv.wait_for(lock, milliseconds(heartbeat_ms.load()), [&] { return loop_done; });
        if (loop_done) return;
        tokens = live_tokens;
        through = live_claims_through;
      }
      Json body = WorkerBody();
      body["tokens"] = tokens;
      if (through) body["claims_through"] = *through;
      Result<Json> r = Post(cli, "heartbeat", body);
      if (!r.ok()) {
        spdlog::warn("worker {}: heartbeat failed: {}", id, r.status().message());
        continue;
      }
      std::lock_guard lock(mu);
      for (const Json& stop : (*r)["stop"]) ended.push_back(stop.get<std::string>());
      if (r->contains("renewed") && (*r)["renewed"].is_object()) {
        for (const auto& [ti, token] : (*r)["renewed"].items()) {
          if (token.is_string()) renewed.emplace_back(ti, token.get<std::string>());
        }
      }
    }
  }

  // On the loop thread: takes renewed tokens, kills what the region ended, and publishes the
  // running tries' tokens.
  void ApplyHeartbeat(Runner& runner) {
    std::vector<std::string> stops;
    std::vector<std::pair<std::string, std::string>> fresh;
    {
      std::lock_guard lock(mu);
      stops.swap(ended);
      fresh.swap(renewed);
    }
    for (auto& [ti, token] : fresh) {
      auto it = running.find(ti);
      if (it == running.end()) continue;
      it->second.token = std::move(token);
      running_changed = true;
    }
    for (const std::string& ti : stops) {
      auto it = running.find(ti);
      if (it == running.end()) continue;
      spdlog::info("worker {}: the region ended {}; killing it", id, it->second.label);
      Log(it->second.token, LogLine("WARNING",
                                    "The task instance is no longer running here "
                                    "(cleared, marked or reaped); killing it"));
      runner.Kill(ti);
      running.erase(it);
      running_changed = true;
      std::lock_guard lock(mu);
      --busy;
    }
    if (!stops.empty()) cv.notify_all();
    if (!running_changed) return;
    std::vector<std::string> tokens;
    tokens.reserve(running.size());
    for (const auto& [ti, task] : running) tokens.push_back(task.token);
    std::lock_guard lock(mu);
    live_tokens.swap(tokens);
    live_claims_through = started_claims_through;
    running_changed = false;
  }

  Status Loop() {
    ApiClient cli(endpoint, {options.ca_file}, resolver.get(), std::chrono::seconds(30));
    Runner runner(options.task_dir);
    auto last_flush = Steady::now();
    std::optional<Steady::time_point> stop_deadline;
    std::vector<Output> out;
    std::vector<Exit> exits;
    while (true) {
      if (stopping && !stop_deadline) stop_deadline = Steady::now() + options.grace;
      if (!stopping) StartClaimed(runner);
      out.clear();
      exits.clear();
      runner.Poll(milliseconds(20), &out, &exits);
      for (Output& o : out) {
        auto it = running.find(o.key);
        if (it == running.end()) continue;
        Masker& m = o.stream == 2 ? it->second.err_masker : it->second.out_masker;
        std::string masked = m.Feed(o.data);
        if (!masked.empty()) Log(it->second.token, std::move(masked));
      }
      for (const Exit& e : exits) OnExit(e);
      auto now = Steady::now();
      if (!finish_batch.empty() || log_bytes >= kMaxLogBatchBytes ||
          now - last_flush >= options.log_flush) {
        Flush(cli);
        last_flush = now;
      }
      ApplyHeartbeat(runner);
      if (stop_deadline && (runner.running() == 0 || now >= *stop_deadline)) break;
    }
    Flush(cli);
    if (runner.running() > 0) {
      spdlog::warn(
          "worker {}: killing {} task(s) still running at shutdown; the region will "
          "retry them",
          id, runner.running());
    }
    return Status::Ok();  // the Runner's destructor kills what is left
  }
};

Worker::Worker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Worker::~Worker() { Stop(); }

Result<std::unique_ptr<Worker>> Worker::Create(WorkerOptions options) {
  std::optional<dns::Server> dns_server;
  if (!options.dns_server.empty()) {
    ASSIGN_OR_RETURN(dns_server, dns::ParseServer(options.dns_server));
  }
  if (options.credential.empty()) {
    return InvalidArgument(
        "the worker needs a worker credential (--token-file, or TANDEM_WORKER_TOKEN; "
        "`tandem worker-credential create` makes one)");
  }
  if (options.slots < 1 || options.slots > 5000) {
    return InvalidArgument("--slots must be between 1 and 5000");
  }
  if (options.task_nice < 0 || options.task_nice > 19) {
    return InvalidArgument("--task-nice must be between 0 and 19");
  }
  if (!options.task_dir.empty() && options.task_dir.front() != '/') {
    return InvalidArgument("--task-dir must be an absolute path, got '" + options.task_dir + "'");
  }
  ASSIGN_OR_RETURN(Endpoint e, ParseUrl(options.api_url));
  if (options.hostname.empty()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    options.hostname = host;
  }
  auto impl = std::make_unique<Impl>();
  if (dns_server)
    impl->resolver = std::make_unique<dns::Resolver>(*dns_server, std::chrono::seconds(2));
  impl->options = std::move(options);
  impl->endpoint = std::move(e);
  return std::unique_ptr<Worker>(new Worker(std::move(impl)));
}

const std::string& Worker::id() const { return impl_->id; }

Status Worker::Run() {
  spdlog::info("worker {} serving {} with {} slots", impl_->id, impl_->options.api_url,
               impl_->options.slots);
  if (geteuid() != 0) {
    spdlog::warn(
        "worker {}: not started as root, so tasks run as this worker's user (uid {}) "
        "and can read what it can; a worker started as root runs each deployment's "
        "tasks as a user of its own",
        impl_->id, geteuid());
  }
  const std::string& task_dir = impl_->options.task_dir;
  std::vector<std::string> stale;
  if (!task_dir.empty()) {
    ASSIGN_OR_RETURN(stale, PrepareTaskDir(task_dir));
  }
  std::mutex sweep_mu;
  std::condition_variable sweep_cv;
  bool sweep_now = false;  // guarded by sweep_mu
  std::thread sweeper;
  if (!stale.empty()) {
    sweeper = std::thread(SweepTaskDirs, std::cref(stale), std::chrono::milliseconds(30000),
                          &sweep_mu, &sweep_cv, &sweep_now);
  }
  std::thread claimer([this] { impl_->ClaimLoop(); });
  std::thread heartbeat([this] { impl_->HeartbeatLoop(); });
  Status s = impl_->Loop();
  // Every task has ended and its directory gone with it (the Runner is destroyed).
  if (!task_dir.empty()) (void)RemoveAll(task_dir);
  if (sweeper.joinable()) {
    {
      std::lock_guard lock(sweep_mu);
      sweep_now = true;
    }
    sweep_cv.notify_all();
    sweeper.join();
  }
  impl_->stopping = true;
  {
    std::lock_guard lock(impl_->mu);
    impl_->loop_done = true;
  }
  impl_->cv.notify_all();
  claimer.join();
  heartbeat.join();
  std::lock_guard lock(impl_->mu);
  return impl_->fatal.ok() ? s : impl_->fatal;
}

void Worker::Stop() {
  impl_->stopping = true;
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->claim_client != nullptr) impl_->claim_client->Stop();
  }
  impl_->cv.notify_all();
}

}  // namespace tandem::worker
