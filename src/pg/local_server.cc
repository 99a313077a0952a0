// LocalServer: a PostgreSQL 15 cluster this process manages.
//
// Layout under the region's pg directory (the parent of data_dir):
//   data/          PGDATA, owned by the run-as user, mode 0700
//   pg.password    the superuser's password (0600, owned by the region's user)
//   postgres.log   the server's stdout and stderr
// Settings that tandem owns are written to data/tandem.conf at every start and included from
// postgresql.conf, so they come back after anything (pg_rewind later) overwrites the cluster's
// own config files.
#include <libpq-fe.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <thread>

#include "base/clock.h"
#include "base/fs.h"
#include "base/net.h"
#include "base/process.h"
#include "base/random.h"
#include "pg/conn.h"
#include "pg/server.h"

namespace tandem::pg {
namespace {

using namespace std::chrono_literals;

class LocalServer final : public Server {
 public:
  explicit LocalServer(LocalServerOptions o) : o_(std::move(o)) {
    dir_ = o_.data_dir.substr(0, o_.data_dir.find_last_of('/'));
  }
  ~LocalServer() override { (void)Stop(); }

  Status Init() override;
  Status Start(std::chrono::milliseconds timeout) override;
  Status Stop() override;
  Status Supervise() override;
  ServerState State() override;
  std::string Dsn(const std::string& database) const override;

 private:
  std::string PasswordPath() const { return dir_ + "/pg.password"; }
  std::string LogPath() const { return dir_ + "/postgres.log"; }
  Status WriteSettings();
  Status StopStrayPostmaster();
  Status StartLocked(std::chrono::milliseconds timeout);
  std::string LogTail() const;

  const LocalServerOptions o_;
  std::string dir_;
  std::optional<UserIds> ids_;  // set by Init when running as another user

  std::mutex mu_;
  ChildPtr child_;                // guarded by mu_
  std::atomic<int> restarts_{0};  // written under mu_, read without it
  // Start() was called and Stop() was not: Supervise() keeps a server running.
  bool wanted_ = false;  // guarded by mu_
  // Set by Stop() before it takes mu_, so a start in progress gives up at once.
  std::atomic<bool> stopping_{false};
  // Supervise(): when the next restart may be tried, and how long to wait after a failure.
  MonoTime next_restart_{};  // guarded by mu_
  Backoff restart_backoff_{std::chrono::milliseconds(100), std::chrono::seconds(10)};
  std::string password_;  // written once by Init, before any other use; read-only after
};

Status LocalServer::Init() {
  std::lock_guard lock(mu_);
  if (!o_.run_as.empty()) {
    ASSIGN_OR_RETURN(ids_, LookupUser(o_.run_as));
  } else if (RunningAsRoot()) {
    return FailedPrecondition(
        "PostgreSQL refuses to run as root: set postgres.managed.run_as to an "
        "unprivileged system user");
  }
  RETURN_IF_ERROR(EnsureWritableDir(dir_));
  if (ids_) {
    std::string blocked = FirstUnsearchableAncestor(dir_, ids_->uid, ids_->gid);
    if (!blocked.empty()) {
      return PermissionDenied("the PostgreSQL directory " + dir_ + " is not reachable by user '" +
                              o_.run_as + "': no search permission on " + blocked +
                              "; choose a state directory outside it (e.g. --state-dir "
                              "/var/lib/tandem)");
    }
  }
  if (!PathExists(PasswordPath())) {
    RETURN_IF_ERROR(WriteFileAtomic(PasswordPath(), HexEncode(RandomBytes(24)), 0600));
  }
  ASSIGN_OR_RETURN(std::string pw, ReadFile(PasswordPath()));
  password_ = pw;
  if (PathExists(o_.data_dir + "/PG_VERSION")) return Status::Ok();

  // A half-finished initdb leaves a directory behind; start over.
  RETURN_IF_ERROR(RemoveAll(o_.data_dir));
  RETURN_IF_ERROR(MakeDirs(o_.data_dir, 0700));
  std::string pwfile = o_.data_dir + ".pwfile";
  RETURN_IF_ERROR(WriteFileAtomic(pwfile, password_, 0600));
  if (ids_) {
    RETURN_IF_ERROR(ChownRecursive(o_.data_dir, ids_->uid, ids_->gid));
    RETURN_IF_ERROR(ChownRecursive(pwfile, ids_->uid, ids_->gid));
  }
  SpawnOptions so{.argv = {o_.bin_dir + "/initdb", "-D", o_.data_dir, "--data-checksums", "-U",
                           o_.superuser, "--pwfile", pwfile, "--auth=scram-sha-256", "-E", "UTF8",
                           "--locale=C.UTF-8", "--no-instructions"}};
  if (ids_) so.user = o_.run_as;
  auto r = RunCommand(so, 120s);
  unlink(pwfile.c_str());
  if (!r.ok()) return r.status().WithContext("initdb");
  if (!r->exit.exited || r->exit.code != 0) {
    return Internal("initdb " + r->exit.Describe() + ": " + r->output);
  }
  std::ofstream conf(o_.data_dir + "/postgresql.conf", std::ios::app);
  conf << "\n# Settings owned by tandem, rewritten at every start.\n"
          "include_if_exists = 'tandem.conf'\n";
  if (!conf) return Internal("cannot append to " + o_.data_dir + "/postgresql.conf");
  spdlog::info("initialised PostgreSQL cluster in {}", o_.data_dir);
  return Status::Ok();
}

Status LocalServer::WriteSettings() {
  std::string conf = "listen_addresses = '" + o_.host +
                     "'\n"
                     "port = " +
                     std::to_string(o_.port) +
                     "\n"
                     "unix_socket_directories = ''\n"
                     "max_connections = " +
                     std::to_string(o_.max_connections) +
                     "\n"
                     "shared_buffers = '" +
                     o_.shared_buffers +
                     "'\n"
                     "wal_level = replica\n"
                     "wal_log_hints = on\n"
                     "max_wal_senders = 10\n"
                     "max_replication_slots = 10\n"
                     "hot_standby = on\n"
                     "password_encryption = 'scram-sha-256'\n"
                     "fsync = on\n"
                     "synchronous_commit = on\n"
                     "logging_collector = off\n"
                     "log_line_prefix = '%m [%p] '\n";
  std::string hba =
      "# Written by tandem at every start.\n"
      "# TYPE  DATABASE     USER  ADDRESS          METHOD\n"
      "host    all          all   127.0.0.1/32     scram-sha-256\n"
      "host    all          all   " +
      o_.host +
      "/32  scram-sha-256\n"
      "host    replication  all   127.0.0.1/32     scram-sha-256\n";
  for (const auto& peer : o_.replication_from) {
    hba += "host    replication  all   " + peer + "/32  scram-sha-256\n";
    hba += "host    all          all   " + peer + "/32  scram-sha-256\n";
  }
  // The data directory belongs to the run-as user: never follow a link planted in it.
  uid_t uid = ids_ ? ids_->uid : geteuid();
  gid_t gid = ids_ ? ids_->gid : getegid();
  RETURN_IF_ERROR(WriteFileAtomicAs(o_.data_dir + "/tandem.conf", conf, 0600, uid, gid));
  return WriteFileAtomicAs(o_.data_dir + "/pg_hba.conf", hba, 0600, uid, gid);
}

// A postmaster left running by an earlier process of ours (killed before it could stop it)
// holds the data directory. Stop it the way we would have.
Status LocalServer::StopStrayPostmaster() {
  auto pidfile = ReadFile(o_.data_dir + "/postmaster.pid");
  if (!pidfile.ok()) return Status::Ok();
  pid_t pid = static_cast<pid_t>(atol(pidfile->c_str()));
  if (!ProcessAlive(pid)) return Status::Ok();
  // A postmaster killed with its parent is a zombie until it is reaped: dead, but PostgreSQL
  // would take its lock file as held. It holds no shared memory any more.
  if (auto stat = ReadFile("/proc/" + std::to_string(pid) + "/stat"); stat.ok()) {
    size_t paren = stat->rfind(')');
    if (paren != std::string::npos && paren + 2 < stat->size() && (*stat)[paren + 2] == 'Z') {
      return Status::Ok();  // PostgreSQL rewrites the lock file once the pid is gone
    }
  }
  // Only a postmaster of this data directory, run by our user: the pid file is writable by
  // that user and pids are reused.
  auto cmd = ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
  struct stat st;
  uid_t uid = ids_ ? ids_->uid : geteuid();
  if (!cmd.ok() || cmd->find("postgres") == std::string::npos ||
      cmd->find(o_.data_dir) == std::string::npos ||
      stat(("/proc/" + std::to_string(pid)).c_str(), &st) != 0 || st.st_uid != uid) {
    return Status::Ok();
  }
  spdlog::warn("stopping a PostgreSQL server (pid {}) left running on {}", pid, o_.data_dir);
  kill(pid, SIGINT);
  for (int i = 0; i < 600 && ProcessAlive(pid); ++i) std::this_thread::sleep_for(50ms);
  if (ProcessAlive(pid)) {
    return FailedPrecondition("a PostgreSQL server (pid " + std::to_string(pid) +
                              ") is still running on " + o_.data_dir);
  }
  return Status::Ok();
}

std::string LocalServer::LogTail() const {
  auto log = ReadFile(LogPath());
  if (!log.ok()) return "";
  std::string s = *log;
  if (s.size() > 1500) s = s.substr(s.size() - 1500);
  return s;
}

Status LocalServer::Start(std::chrono::milliseconds timeout) {
  stopping_ = false;
  std::lock_guard lock(mu_);
  wanted_ = true;
  // Right after a crash (of the server, or of the process that ran it) the old server's
  // backends hold its shared memory until they notice and exit; PostgreSQL then refuses to
  // start. Wait for them, within the timeout.
  const auto deadline = RealClock().Now() + timeout;
  Backoff backoff(std::chrono::milliseconds(50), std::chrono::seconds(1));
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                      RealClock().Now());
    Status s = StartLocked(std::max(left, std::chrono::milliseconds(1000)));
    bool leftovers = s.message().find("pre-existing shared memory block") != std::string::npos ||
                     s.message().find("lock file \"postmaster.pid\" already exists") !=
                         std::string::npos;
    if (s.ok() || stopping_ || !leftovers || RealClock().Now() >= deadline) return s;
    spdlog::info("PostgreSQL on {}:{}: the previous server's processes are still exiting; "
                 "retrying",
                 o_.host, o_.port);
    std::this_thread::sleep_for(backoff.Next());
  }
}

Status LocalServer::StartLocked(std::chrono::milliseconds timeout) {
  if (child_ && !child_->Poll()) return Status::Ok();
  if (!PathExists(o_.data_dir + "/PG_VERSION")) {
    return FailedPrecondition("no PostgreSQL cluster in " + o_.data_dir + " (Init first)");
  }
  RETURN_IF_ERROR(StopStrayPostmaster());
  RETURN_IF_ERROR(WriteSettings());
  Status port = CheckPortFree(o_.host, o_.port);
  if (!port.ok()) {
    return Unavailable("PostgreSQL cannot listen on " + o_.host + ":" + std::to_string(o_.port) +
                       ": " + port.message());
  }
  SpawnOptions so{.argv = {o_.bin_dir + "/postgres", "-D", o_.data_dir},
                  .output_path = LogPath(),
                  .death_signal = SIGINT};
  if (ids_) so.user = o_.run_as;
  ASSIGN_OR_RETURN(child_, Child::Spawn(so));
  std::string dsn = Dsn("postgres") + " connect_timeout=2";
  auto deadline = RealClock().Now() + timeout;
  while (RealClock().Now() < deadline) {
    if (auto e = child_->Poll()) {
      child_.reset();
      return Unavailable("PostgreSQL " + e->Describe() + " at start; its log says:\n" + LogTail());
    }
    PGPing ping = PQping(dsn.c_str());
    if (ping == PQPING_OK) {
      spdlog::info("PostgreSQL running on {}:{} (pid {})", o_.host, o_.port, child_->pid());
      return Status::Ok();
    }
    if (stopping_) {
      child_->Stop(SIGINT, 30s);
      child_.reset();
      return Unavailable("PostgreSQL start abandoned: the region is stopping");
    }
    // Crash recovery answers "rejecting connections" for as long as it takes: a live
    // postmaster that is still recovering is given the time (it would only start over).
    if (ping == PQPING_REJECT && RealClock().Now() + 50ms >= deadline) {
      deadline += std::chrono::seconds(1);
    }
    std::this_thread::sleep_for(20ms);
  }
  child_->Stop(SIGQUIT, 5s);
  child_.reset();
  return Unavailable("PostgreSQL did not accept connections within " +
                     std::to_string(timeout.count()) + " ms; its log says:\n" + LogTail());
}

Status LocalServer::Stop() {
  stopping_ = true;
  std::lock_guard lock(mu_);
  wanted_ = false;
  if (!child_) return Status::Ok();
  ExitInfo e = child_->Stop(SIGINT, 30s);  // fast shutdown: checkpoint, then exit
  spdlog::info("PostgreSQL on {}:{} stopped ({})", o_.host, o_.port, e.Describe());
  child_.reset();
  return Status::Ok();
}

// One attempt per call at most, never sleeping with mu_ held: a server that cannot start now
// (its old backends still hold shared memory, the disk is full, the port is taken) is tried
// again on a later call after a growing pause, for as long as the server is wanted.
Status LocalServer::Supervise() {
  std::lock_guard lock(mu_);
  if (!wanted_ || stopping_) return Status::Ok();
  if (child_) {
    auto e = child_->Poll();
    if (!e) return Status::Ok();
    spdlog::error("PostgreSQL on {}:{} {}; restarting it", o_.host, o_.port, e->Describe());
    child_.reset();
  }
  if (RealClock().Now() < next_restart_) return Status::Ok();
  Status s = StartLocked(std::chrono::minutes(2));
  if (s.ok()) {
    ++restarts_;
    restart_backoff_ = Backoff(std::chrono::milliseconds(100), std::chrono::seconds(10));
    next_restart_ = {};
    return s;
  }
  Duration wait = restart_backoff_.Next();
  next_restart_ = RealClock().Now() + wait;
  return s.WithContext(
      "restarting PostgreSQL (next try in " +
      std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(wait).count()) + " ms)");
}

ServerState LocalServer::State() {
  ServerState st;
  st.restarts = restarts_.load();
  // A start or a restart holds mu_ for as long as PostgreSQL takes to come up: answer at once
  // instead of making /metrics and /readyz wait for it.
  std::unique_lock lock(mu_, std::try_to_lock);
  if (!lock.owns_lock()) {
    st.detail =
        "PostgreSQL on " + o_.host + ":" + std::to_string(o_.port) + " is being started or stopped";
    return st;
  }
  st.running = child_ && !child_->Poll() && PQping((Dsn("postgres")).c_str()) == PQPING_OK;
  st.detail = st.running
                  ? "PostgreSQL running on " + o_.host + ":" + std::to_string(o_.port)
                  : "PostgreSQL on " + o_.host + ":" + std::to_string(o_.port) + " is not running";
  return st;
}

std::string LocalServer::Dsn(const std::string& database) const {
  return "host=" + o_.host + " port=" + std::to_string(o_.port) +
         " user=" + DsnQuote(o_.superuser) + " password=" + DsnQuote(password_) +
         " dbname=" + DsnQuote(database) + " application_name=tandem";
}

class ExternalServer final : public Server {
 public:
  explicit ExternalServer(std::string dsn) : dsn_(std::move(dsn)) {}
  Status Init() override { return Status::Ok(); }
  Status Start(std::chrono::milliseconds) override { return Status::Ok(); }
  Status Stop() override { return Status::Ok(); }
  Status Supervise() override { return Status::Ok(); }
  ServerState State() override {
    ServerState st;
    st.running = Ping(dsn_, 2);
    st.detail = st.running ? "external PostgreSQL reachable" : "external PostgreSQL unreachable";
    return st;
  }
  // The configured connection string names its database.
  std::string Dsn(const std::string&) const override { return dsn_; }

 private:
  std::string dsn_;
};

}  // namespace

Result<ServerPtr> NewLocalServer(LocalServerOptions opts) {
  if (opts.data_dir.empty() || opts.data_dir[0] != '/') {
    return InvalidArgument("PostgreSQL data directory must be an absolute path");
  }
  if (opts.port <= 0 || opts.port > 65535) return InvalidArgument("PostgreSQL port out of range");
  return ServerPtr(new LocalServer(std::move(opts)));
}

Result<ServerPtr> NewExternalServer(std::string dsn) {
  if (dsn.empty()) return InvalidArgument("empty PostgreSQL connection string");
  return ServerPtr(new ExternalServer(std::move(dsn)));
}

}  // namespace tandem::pg
