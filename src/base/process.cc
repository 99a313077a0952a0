#include "base/process.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

extern char** environ;

namespace tandem {
namespace {

ExitInfo FromWaitStatus(int ws) {
  ExitInfo e;
  if (WIFEXITED(ws)) {
    e.exited = true;
    e.code = WEXITSTATUS(ws);
  } else if (WIFSIGNALED(ws)) {
    e.code = WTERMSIG(ws);
  }
  return e;
}

// Everything the child needs, prepared before fork (no allocation after fork).
struct Prepared {
  std::vector<std::string> argv_s, env_s;
  std::vector<char*> argv, env;
};

Prepared Prepare(const SpawnOptions& opts) {
  Prepared p;
  p.argv_s = opts.argv;
  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : opts.env_extra) env[k] = v;
  for (const auto& [k, v] : env) p.env_s.push_back(std::string(k).append("=").append(v));
  for (auto& s : p.argv_s) p.argv.push_back(s.data());
  p.argv.push_back(nullptr);
  for (auto& s : p.env_s) p.env.push_back(s.data());
  p.env.push_back(nullptr);
  return p;
}

}  // namespace

std::string ExitInfo::Describe() const {
  if (exited) return "exited with status " + std::to_string(code);
  return std::string("killed by signal ") + strsignal(code);
}

Result<std::unique_ptr<Child>> Child::Spawn(const SpawnOptions& opts) {
  if (opts.argv.empty()) return InvalidArgument("no program to run");
  std::optional<UserIds> ids;
  if (opts.user) {
    ASSIGN_OR_RETURN(ids, LookupUser(*opts.user));
  }
  Prepared p = Prepare(opts);
  int in_fd = -1;
  if (!opts.input_path.empty()) {
    in_fd = open(opts.input_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (in_fd < 0) return NotFound("cannot open " + opts.input_path + ": " + strerror(errno));
  }
  int out_fd = -1;
  if (!opts.output_path.empty()) {
    out_fd = open(opts.output_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (out_fd < 0) {
      Status s = PermissionDenied("cannot open " + opts.output_path + ": " + strerror(errno));
      if (in_fd >= 0) close(in_fd);
      return s;
    }
    if (ids && fchown(out_fd, ids->uid, ids->gid) != 0) {
      // Not fatal: the child only writes through the inherited descriptor.
    }
  }
  // A pipe closed on exec tells the parent whether exec succeeded.
  int errpipe[2];
  if (pipe2(errpipe, O_CLOEXEC) != 0) {
    Status s = Internal(std::string("pipe: ") + strerror(errno));
    if (out_fd >= 0) close(out_fd);
    if (in_fd >= 0) close(in_fd);
    return s;
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    Status s = Internal(std::string("fork: ") + strerror(errno));
    if (out_fd >= 0) close(out_fd);
    if (in_fd >= 0) close(in_fd);
    close(errpipe[0]);
    close(errpipe[1]);
    return s;
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls from here.
    auto fail = [&](int err) {
      (void)!write(errpipe[1], &err, sizeof err);
      _exit(127);
    };
    setpgid(0, 0);  // own process group, so a terminal's ^C reaches only its owner
    int devnull = open("/dev/null", O_RDWR);
    dup2(in_fd >= 0 ? in_fd : devnull, 0);
    int o = out_fd >= 0 ? out_fd : devnull;
    dup2(o, 1);
    dup2(o, 2);
    // Nothing else of ours leaks into the child (sockets, connections), however it was opened.
    close_range(3, static_cast<unsigned>(errpipe[1]) - 1, 0);
    close_range(static_cast<unsigned>(errpipe[1]) + 1, ~0U, 0);
    if (ids) {
      if (setgroups(0, nullptr) != 0 || setgid(ids->gid) != 0 || setuid(ids->uid) != 0) {
        fail(errno);
      }
    }
    if (opts.death_signal != 0) {
      prctl(PR_SET_PDEATHSIG, opts.death_signal);
      if (getppid() != parent) _exit(1);
    }
    if (!opts.cwd.empty() && chdir(opts.cwd.c_str()) != 0) fail(errno);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    // An ignored SIGPIPE (tandem ignores it: see main.cc) would outlive exec.
    signal(SIGPIPE, SIG_DFL);
    execve(p.argv[0], p.argv.data(), p.env.data());
    fail(errno);
  }
  close(errpipe[1]);
  if (out_fd >= 0) close(out_fd);
  if (in_fd >= 0) close(in_fd);
  int child_err = 0;
  ssize_t n;
  do {
    n = read(errpipe[0], &child_err, sizeof child_err);
  } while (n < 0 && errno == EINTR);
  close(errpipe[0]);
  if (n == sizeof child_err) {
    waitpid(pid, nullptr, 0);
    return Internal("cannot start " + opts.argv[0] + ": " + strerror(child_err));
  }
  return std::unique_ptr<Child>(new Child(pid));
}

std::optional<ExitInfo> Child::Poll() {
  if (exit_) return exit_;
  int ws = 0;
  pid_t r = waitpid(pid_, &ws, WNOHANG);
  if (r == pid_) exit_ = FromWaitStatus(ws);
  return exit_;
}

std::optional<ExitInfo> Child::Wait(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto step = std::chrono::milliseconds(2);
  while (true) {
    if (auto e = Poll()) return e;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(step);
    step = std::min(step * 2, std::chrono::milliseconds(50));
  }
}

bool Child::Signal(int sig) {
  if (exit_) return false;
  return kill(pid_, sig) == 0;
}

ExitInfo Child::Stop(int sig, std::chrono::milliseconds grace) {
  if (auto e = Poll()) return *e;
  Signal(sig);
  if (auto e = Wait(grace)) return *e;
  kill(pid_, SIGKILL);
  int ws = 0;
  waitpid(pid_, &ws, 0);
  exit_ = FromWaitStatus(ws);
  return *exit_;
}

Result<RunOutput> RunCommand(const SpawnOptions& opts, std::chrono::milliseconds timeout) {
  char tmpl[] = "/tmp/tandem-run-XXXXXX";
  int fd = mkstemp(tmpl);
  if (fd < 0) return Internal(std::string("mkstemp: ") + strerror(errno));
  close(fd);
  SpawnOptions o = opts;
  o.output_path = tmpl;
  auto child = Child::Spawn(o);
  if (!child.ok()) {
    unlink(tmpl);
    return child.status();
  }
  RunOutput out;
  auto e = (*child)->Wait(timeout);
  if (!e) {
    out.exit = (*child)->Stop(SIGKILL, std::chrono::milliseconds(1000));
  } else {
    out.exit = *e;
  }
  if (FILE* f = fopen(tmpl, "r")) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.output.append(buf, n);
    fclose(f);
  }
  unlink(tmpl);
  if (!e) {
    return Unavailable(opts.argv[0] + " did not finish within " + std::to_string(timeout.count()) +
                       " ms: " + out.output);
  }
  return out;
}

Result<UserIds> LookupUser(const std::string& name) {
  struct passwd pw;
  struct passwd* res = nullptr;
  std::vector<char> buf(16384);
  if (getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &res) != 0 || res == nullptr) {
    return NotFound("no such system user: " + name +
                    " (scripts/setup.sh creates it; or set postgres.managed.run_as)");
  }
  return UserIds{pw.pw_uid, pw.pw_gid};
}

bool RunningAsRoot() { return geteuid() == 0; }

void RaiseFileLimit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

Result<std::optional<UserIds>> ServerUser(const std::string& what, const std::string& run_as) {
  if (run_as.empty()) {
    if (RunningAsRoot()) {
      return FailedPrecondition(what + " is not run as root: name an unprivileged system user " +
                                "for it to run as");
    }
    return std::optional<UserIds>();
  }
  auto ids = LookupUser(run_as);
  if (!ids.ok()) {
    return FailedPrecondition("cannot run " + what + " as user '" + run_as +
                              "': " + ids.status().message());
  }
  return std::optional<UserIds>(*ids);
}

bool ProcessAlive(pid_t pid) { return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM); }

}  // namespace tandem
