// tandem-task-exec [--nice N] [--parent PID] [--uid UID] -- ARGV...: runs one task for a worker
// and makes its whole process group die with the worker. With --nice, the task runs at that
// niceness (0..19), so a machine full of tasks cannot starve the worker, its heartbeats or the
// region beside it. --parent names the worker, so one that died while this program was starting
// is noticed. With --uid (this program started as root), the task runs as that user and group
// with no supplementary groups, umask 077 and HOME its working directory: a user of its own,
// which cannot read the worker's credential, the region's keys or another deployment's files.
// This program stays root, to kill the group when the worker dies.
//
// The worker starts every task through this small program, in a new session (so the task's
// process group is this program's). It starts ARGV as its child and waits for it, exiting the
// way the child did. When the worker dies — even by SIGKILL — the kernel sends this program
// SIGUSR1 (PR_SET_PDEATHSIG), and it kills the whole group: the task and everything the task
// started. A task that outlived its worker would run twice once the region retries it.
//
// Signals: SIGTERM and SIGINT sent to the group (the worker's timeout, a kill) reach the task
// directly; this program ignores them and keeps waiting, so the task decides how it ends.
// Deliberately tiny (no libraries beyond libc), since one runs beside every task.
#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

// A number in [lo, hi], or -1.
long Number(const char* text, long lo, long hi) {
  char* end = nullptr;
  errno = 0;
  long n = strtol(text, &end, 10);
  if (end == text || *end != '\0' || errno != 0 || n < lo || n > hi) return -1;
  return n;
}

int main(int argc, char** argv) {
  int nice = -1;
  long uid = -1;     // the task's user, when the worker says so
  pid_t parent = 0;  // the worker, when it says so; else whoever started this program
  while (argc >= 3 && strcmp(argv[1], "--") != 0) {
    long n = -1;
    if (strcmp(argv[1], "--nice") == 0) {
      n = Number(argv[2], 0, 19);
      nice = static_cast<int>(n);
    } else if (strcmp(argv[1], "--parent") == 0) {
      n = Number(argv[2], 1, 1L << 30);
      parent = static_cast<pid_t>(n);
    } else if (strcmp(argv[1], "--uid") == 0) {
      n = Number(argv[2], 1, 4294967294L);  // never root, never (uid_t)-1
      uid = n;
    }
    if (n < 0) {
      fprintf(stderr,
              "tandem-task-exec: bad option %s %s (--nice 0..19, --parent PID, --uid 1..)\n",
              argv[1], argv[2]);
      return 127;
    }
    argv += 2;
    argc -= 2;
  }
  if (argc < 3 || strcmp(argv[1], "--") != 0) {
    fprintf(stderr,
            "usage: tandem-task-exec [--nice N] [--parent PID] [--uid UID] -- PROGRAM "
            "[ARGS...]\n");
    return 127;
  }
  sigset_t all, old;
  sigemptyset(&all);
  sigaddset(&all, SIGUSR1);
  sigaddset(&all, SIGTERM);
  sigaddset(&all, SIGINT);
  sigaddset(&all, SIGCHLD);
  sigprocmask(SIG_BLOCK, &all, &old);

  // With --parent, a worker that died before this program got here is seen too (the parent is
  // then already the reaper, and the signal below would never come).
  const pid_t worker = parent != 0 ? parent : getppid();
  prctl(PR_SET_PDEATHSIG, SIGUSR1);
  if (getppid() != worker) return 127;  // the worker died before the line above

  pid_t child = fork();
  if (child < 0) {
    fprintf(stderr, "tandem-task-exec: fork: %s\n", strerror(errno));
    return 127;
  }
  if (child == 0) {
    sigprocmask(SIG_SETMASK, &old, nullptr);
    prctl(PR_SET_PDEATHSIG, 0);
    if (nice >= 0 && setpriority(PRIO_PROCESS, 0, nice) != 0) {
      fprintf(stderr, "tandem-task-exec: cannot set niceness %d: %s\n", nice, strerror(errno));
    }
    if (uid > 0) {
      const uid_t u = static_cast<uid_t>(uid);
      // Groups first: once the uid is dropped, nothing else can be changed.
      if (setgroups(0, nullptr) != 0 || setgid(static_cast<gid_t>(u)) != 0 || setuid(u) != 0 ||
          getuid() != u || geteuid() != u) {
        fprintf(stderr, "tandem-task-exec: cannot run the task as uid %ld: %s\n", uid,
                strerror(errno));
        _exit(127);
      }
      umask(077);
      char cwd[4096];
      if (getcwd(cwd, sizeof cwd) != nullptr) setenv("HOME", cwd, 1);
    }
    execvp(argv[2], argv + 2);
    fprintf(stderr, "tandem-task-exec: cannot run %s: %s\n", argv[2], strerror(errno));
    _exit(127);
  }
  while (true) {
    int sig = 0;
    if (sigwait(&all, &sig) != 0) continue;
    if (sig == SIGUSR1) {
      kill(0, SIGKILL);  // the worker is gone: the whole group goes, this program with it
      _exit(137);
    }
    if (sig != SIGCHLD) continue;  // SIGTERM/SIGINT: the task got them too, and decides
    int status = 0;
    pid_t r = waitpid(child, &status, WNOHANG);
    if (r != child) continue;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    // Die of the same signal, so the worker sees what the task saw.
    int term = WTERMSIG(status);
    signal(term, SIG_DFL);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, term);
    sigprocmask(SIG_UNBLOCK, &one, nullptr);
    raise(term);
    return 128 + term;
  }
}
