// How a process is run, from start to report:
//
// 1. Start: posix_spawn (glibc's is vfork-based, cheap enough for thousands of tasks) with
//    POSIX_SPAWN_SETSID, so the process leads a new session and process group whose id is its
//    pid. stdin is /dev/null, stdout and stderr are two pipes whose read ends we keep
//    (close-on-exec, non-blocking); every other descriptor is closed in the child.
// 2. Poll: poll(2) over every open read end, at most 64 KiB per descriptor per wakeup. Exits are
//    found with waitid(WNOWAIT), which leaves the process a zombie: while it is unreaped its pid
//    (and so its process group id) cannot be reused, so killpg() can never reach a stranger.
//    Because nothing wakes poll(2) when a process exits while a grandchild holds its pipes open,
//    each wait is cut into steps of at most kExitCheckInterval, and a process whose pipes are
//    open is asked about once per kExitCheckInterval; since a process closes its pipes a moment
//    before it becomes a zombie, one whose pipes both reached end-of-file is asked at every step,
//    and steps are kExitSoonInterval for a while after that.
// 3. Report: once the process has exited and its pipes reach end-of-file (or kExitDrainGrace
//    after the exit, when something else still holds them), whatever is left in its group is
//    killed, the pipes are drained and closed, the zombie is reaped, its temporary working
//    directory is removed, and the Exit is returned. A task therefore never leaves processes
//    behind in its group (Airflow reaps a task's process group the same way).
//
// Timeouts and Kill() send SIGTERM to the group, then SIGKILL kKillGrace later.
#include "worker/runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <utility>

#include "base/fs.h"

namespace tandem::worker {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr size_t kReadChunk = size_t{64} << 10;
constexpr size_t kMaxLastLine = size_t{64} << 10;
constexpr milliseconds kKillGrace{5000};
constexpr milliseconds kExitDrainGrace{500};
constexpr milliseconds kExitCheckInterval{100};
constexpr milliseconds kExitSoonInterval{2};
constexpr milliseconds kExitSoonFor{200};
// At report time, at most this much more is read from a pipe something else kept writing to.
constexpr size_t kMaxFinalDrain = size_t{1} << 20;
constexpr const char* kDefaultPath = "/usr/bin:/bin";
// Longer waits are cut to this (the caller polls again).
constexpr milliseconds kMaxWait{60 * 1000};

std::string Errno(std::string_view what, int err) {
  return std::string(what) + ": " + strerror(err);
}

// The value of PATH in `env` (the first, as getenv would find), or the default.
std::string PathOf(const std::vector<std::string>& env) {
  for (const std::string& kv : env) {
    if (kv.starts_with("PATH=")) return kv.substr(5);
  }
  return kDefaultPath;
}

// Where argv[0] is run from. A name with a '/' is used as it is (a relative one resolves in the
// process's working directory); otherwise the absolute directories of `path` are searched in
// order (relative entries are skipped: they would mean our directory, not the task's).
Result<std::string> Resolve(const std::string& name, const std::string& path) {
  if (name.find('/') != std::string::npos) return name;
  size_t start = 0;
  while (start <= path.size()) {
    size_t colon = path.find(':', start);
    if (colon == std::string::npos) colon = path.size();
    std::string dir = path.substr(start, colon - start);
    start = colon + 1;
    if (dir.empty() || dir.front() != '/') continue;
    std::string candidate = dir;
    candidate.append("/").append(name);
    struct stat st;
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return NotFound("cannot find " + name + " in PATH=" + path);
}

// The last non-empty line of a stream fed in pieces, without keeping the stream.
class LastLine {
 public:
  void Feed(std::string_view data) {
    while (!data.empty()) {
      size_t nl = data.find('\n');
      std::string_view part = data.substr(0, nl);
      if (current_.size() < kMaxLastLine) {
        current_.append(part.substr(0, kMaxLastLine - current_.size()));
      }
      if (nl == std::string_view::npos) return;
      data.remove_prefix(nl + 1);
      StripCr(&current_);
      if (!current_.empty()) last_.swap(current_);
      current_.clear();
    }
  }
  std::string Get() const {
    std::string pending = current_;
    StripCr(&pending);
    return pending.empty() ? last_ : pending;
  }

 private:
  static void StripCr(std::string* s) {
    if (!s->empty() && s->back() == '\r') s->pop_back();
  }
  std::string last_;     // the last complete non-empty line
  std::string current_;  // the line being received, truncated at kMaxLastLine
};

void CloseFd(int* fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

// Reads once from a non-blocking pipe into `buf` (kReadChunk bytes). The byte count, 0 when
// nothing is there now, -1 at end-of-file or on an error.
ssize_t ReadSome(int fd, char* buf) {
  ssize_t n;
  do {
    n = read(fd, buf, kReadChunk);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EAGAIN) return 0;
  return n == 0 ? -1 : n;
}

}  // namespace

struct Runner::Proc {
  std::string key;
  pid_t pid = -1;  // also the process group id; valid until reaped
  int out_fd = -1;
  int err_fd = -1;
  std::optional<TempDir> temp_dir;
  Clock::time_point started;
  std::optional<Clock::time_point> deadline;  // from the spec's timeout
  std::optional<Clock::time_point> kill_at;   // SIGKILL due; set when SIGTERM is sent
  bool sigkill_sent = false;
  bool timed_out = false;
  std::optional<Clock::time_point> exited_at;  // seen by waitid(WNOWAIT); still a zombie
  bool reaped_elsewhere = false;  // someone else waited for it (SIGCHLD ignored, waitpid(-1))
  std::optional<Clock::time_point> pipes_closed_at;  // both reached end-of-file
  // When waitid is next asked about it while its pipes are open (see Poll).
  Clock::time_point next_exit_check{};
  LastLine last_line;

  bool pipes_open() const { return out_fd >= 0 || err_fd >= 0; }

  void Signal(int sig) const {
    if (!reaped_elsewhere) killpg(pid, sig);  // else the group id may be someone else's
  }

  void Terminate(Clock::time_point now) {
    if (kill_at) return;
    Signal(SIGTERM);
    kill_at = now + kKillGrace;
  }

  // Reads once from `*fd` through `buf` (kReadChunk bytes) onto `out`, closing `*fd` at
  // end-of-file. How many bytes came.
  size_t ReadPipe(int* fd, char* buf, std::string* out) {
    ssize_t n = ReadSome(*fd, buf);
    if (n < 0) {
      CloseFd(fd);
      if (!pipes_open()) pipes_closed_at = Clock::now();
      return 0;
    }
    std::string_view data(buf, static_cast<size_t>(n));
    out->append(data);
    if (fd == &out_fd) last_line.Feed(data);
    return data.size();
  }

  void CloseAll() {
    CloseFd(&out_fd);
    CloseFd(&err_fd);
  }
};

void RemoveTaskDir(const std::string& dir) {
  if (RemoveAll(dir).ok()) return;
  namespace fs = std::filesystem;
  std::error_code ec;
  chmod(dir.c_str(), 0700);
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (it->is_directory(ec) && !it->is_symlink(ec)) chmod(it->path().c_str(), 0700);
  }
  (void)RemoveAll(dir);
}

Runner::Runner(std::string task_root) : task_root_(std::move(task_root)) {}

Runner::~Runner() {
  for (auto& [key, p] : procs_) {
    p->Signal(SIGKILL);
    p->CloseAll();
  }
  for (auto& [key, p] : procs_) {
    while (waitpid(p->pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    if (p->temp_dir) RemoveTaskDir(p->temp_dir->Release());
  }
}

Status Runner::Start(const ProcessSpec& spec) {
  if (spec.argv.empty()) return InvalidArgument("process " + spec.key + " has no argv");
  if (spec.key.empty()) return InvalidArgument("a process needs a key");
  if (procs_.contains(spec.key)) {
    return InvalidArgument("a process with key " + spec.key + " is already running");
  }
  ASSIGN_OR_RETURN(std::string program, Resolve(spec.argv[0], PathOf(spec.env)));

  auto proc = std::make_unique<Proc>();
  proc->key = spec.key;
  std::string cwd = spec.cwd;
  std::vector<std::string> env_entries = spec.env;
  if (cwd.empty()) {
    auto dir =
        task_root_.empty() ? TempDir::Create("tandem-task") : TempDir::CreateIn(task_root_, "task");
    if (!dir.ok()) return dir.status();
    cwd = dir->path();
    proc->temp_dir.emplace(std::move(dir).value());
    if (spec.uid && chown(cwd.c_str(), *spec.uid, *spec.uid) != 0) {
      return Internal(Errno("cannot give " + cwd + " to uid " + std::to_string(*spec.uid), errno));
    }
    // What the task writes to temporary files stays in its directory, removed with it, and out
    // of reach of other deployments' tasks (a shared /tmp is readable across users).
    std::erase_if(env_entries, [](const std::string& e) { return e.starts_with("TMPDIR="); });
    env_entries.push_back("TMPDIR=" + cwd);
  }

  int out[2] = {-1, -1};
  int err[2] = {-1, -1};
  auto close_pipes = [&] {
    for (int* fd : {&out[0], &out[1], &err[0], &err[1]}) CloseFd(fd);
  };
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    int e = errno;
    close_pipes();
    return Internal(Errno("cannot start " + spec.key + ": pipe", e));
  }
  fcntl(out[0], F_SETFL, O_NONBLOCK);
  fcntl(err[0], F_SETFL, O_NONBLOCK);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 34)
  // Descriptors other code in this process opened without O_CLOEXEC stay out of the task.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
#endif
  posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigset_t all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);  // SIGPIPE ignored here is not ignored there
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<char*> argv;
  argv.reserve(spec.argv.size() + 1);
  for (const std::string& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  envp.reserve(env_entries.size() + 1);
  for (const std::string& e : env_entries) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  pid_t pid = -1;
  int rc = posix_spawn(&pid, program.c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  CloseFd(&out[1]);
  CloseFd(&err[1]);
  if (rc != 0) {
    close_pipes();
    return Internal(Errno("cannot start " + program + " in " + cwd, rc));
  }
  proc->pid = pid;
  proc->out_fd = out[0];
  proc->err_fd = err[0];
  proc->started = Clock::now();
  if (spec.timeout.count() > 0) proc->deadline = proc->started + spec.timeout;
  procs_.emplace(spec.key, std::move(proc));
  return Status::Ok();
}

void Runner::Kill(const std::string& key) {
  auto it = procs_.find(key);
  if (it != procs_.end()) it->second->Terminate(Clock::now());
}

size_t Runner::running() const { return procs_.size(); }

std::optional<pid_t> Runner::pid(const std::string& key) const {
  auto it = procs_.find(key);
  if (it == procs_.end()) return std::nullopt;
  return it->second->pid;
}

void Runner::Poll(milliseconds timeout, std::vector<Output>* output, std::vector<Exit>* exits) {
  const Clock::time_point until = Clock::now() + std::clamp(timeout, milliseconds(0), kMaxWait);
  // (key, stream) -> output, in this call; `order` keeps the order they first arrived in.
  std::map<std::pair<std::string, int>, std::string> arrived;
  std::vector<std::pair<std::string, int>> order;
  auto sink = [&](const std::string& key, int stream) -> std::string* {
    auto [it, fresh] = arrived.try_emplace({key, stream});
    if (fresh) order.push_back(it->first);
    return &it->second;
  };
  std::vector<pollfd> fds;
  std::vector<std::pair<Proc*, int*>> owners;  // parallel to fds
  std::vector<char> buf(kReadChunk);
  bool first = true;
  while (true) {
    Clock::time_point now = Clock::now();
    if (!first && now >= until) break;
    first = false;

    // When the next thing is due: the caller's deadline, a timer, or an exit check.
    Clock::time_point wake = until;
    fds.clear();
    owners.clear();
    for (auto& [key, p] : procs_) {
      if (!p->exited_at) {
        bool soon = p->pipes_closed_at && now < *p->pipes_closed_at + kExitSoonFor;
        wake = std::min(wake, soon ? now + kExitSoonInterval : std::max(now, p->next_exit_check));
      }
      if (p->exited_at) wake = std::min(wake, *p->exited_at + kExitDrainGrace);
      if (p->deadline && !p->kill_at) wake = std::min(wake, *p->deadline);
      if (p->kill_at && !p->sigkill_sent) wake = std::min(wake, *p->kill_at);
      for (int* fd : {&p->out_fd, &p->err_fd}) {
        if (*fd < 0) continue;
        fds.push_back(pollfd{*fd, POLLIN, 0});
        owners.emplace_back(p.get(), fd);
      }
    }
    auto wait = std::chrono::ceil<milliseconds>(std::max(wake - now, Clock::duration::zero()));
    int ready = poll(fds.data(), fds.size(), static_cast<int>(std::min(wait, kMaxWait).count()));
    if (ready < 0 && errno != EINTR) ready = 0;  // EINVAL/ENOMEM: the checks below still run
    now = Clock::now();

    for (size_t i = 0; ready > 0 && i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      auto [p, fd] = owners[i];
      p->ReadPipe(fd, buf.data(), sink(p->key, fd == &p->err_fd ? 2 : 1));
    }

    std::vector<std::string> done;
    for (auto& [key, p] : procs_) {
      // A process whose pipes are open is asked about every kExitCheckInterval (a grandchild
      // may hold them after it exited), one whose pipes closed at every step: with hundreds of
      // tasks writing, steps come for every line, and a waitid per task per step cost more
      // than the lines.
      if (!p->exited_at && (p->pipes_closed_at || now >= p->next_exit_check)) {
        p->next_exit_check = now + kExitCheckInterval;
        siginfo_t info{};
        int r = waitid(P_PID, static_cast<id_t>(p->pid), &info, WEXITED | WNOHANG | WNOWAIT);
        if (r == 0 && info.si_pid == p->pid) {
          p->exited_at = now;
        } else if (r < 0 && errno == ECHILD) {
          p->reaped_elsewhere = true;  // reported with exit_code -1 and signal 0
          p->exited_at = now;
        }
      }
      if (p->exited_at) {
        if (!p->pipes_open() || now >= *p->exited_at + kExitDrainGrace) done.push_back(key);
        continue;
      }
      if (p->deadline && now >= *p->deadline && !p->kill_at) {
        p->timed_out = true;
        p->Terminate(now);
      }
      if (p->kill_at && now >= *p->kill_at && !p->sigkill_sent) {
        p->Signal(SIGKILL);
        p->sigkill_sent = true;
      }
    }

    for (const std::string& key : done) {
      auto node = procs_.extract(key);
      Proc& p = *node.mapped();
      // Still a zombie, so the group id is ours: nothing of the task outlives its report.
      p.Signal(SIGKILL);
      for (int* fd : {&p.out_fd, &p.err_fd}) {
        std::string* out = sink(key, fd == &p.err_fd ? 2 : 1);
        size_t drained = 0;
        while (*fd >= 0 && drained < kMaxFinalDrain) {
          size_t n = p.ReadPipe(fd, buf.data(), out);
          if (n == 0) break;  // nothing more now, or end-of-file
          drained += n;
        }
      }
      p.CloseAll();
      Exit e;
      e.key = key;
      int ws = 0;
      pid_t r = -1;
      while (!p.reaped_elsewhere && (r = waitpid(p.pid, &ws, 0)) < 0 && errno == EINTR) {
      }
      if (r == p.pid && WIFEXITED(ws)) {
        e.exit_code = WEXITSTATUS(ws);
      } else if (r == p.pid && WIFSIGNALED(ws)) {
        e.signal = WTERMSIG(ws);
      }
      e.timed_out = p.timed_out;
      e.last_stdout_line = p.last_line.Get();
      e.duration = std::chrono::duration_cast<milliseconds>(*p.exited_at - p.started);
      if (p.temp_dir) RemoveTaskDir(p.temp_dir->Release());
      exits->push_back(std::move(e));
    }

    bool got_output = std::any_of(arrived.begin(), arrived.end(),
                                  [](const auto& kv) { return !kv.second.empty(); });
    if (got_output || !done.empty()) break;
  }
  for (const auto& [key, stream] : order) {
    std::string& data = arrived[{key, stream}];
    if (!data.empty()) output->push_back(Output{key, std::move(data), stream});
  }
}

}  // namespace tandem::worker
