#include "worker/runner.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/fs.h"
#include "base/text.h"

namespace tandem::worker {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

const std::vector<std::string> kEnv = {"PATH=/usr/bin:/bin"};

ProcessSpec Spec(std::string key, std::vector<std::string> argv, std::string cwd = "") {
  ProcessSpec s;
  s.key = std::move(key);
  s.argv = std::move(argv);
  s.env = kEnv;
  s.cwd = std::move(cwd);
  return s;
}

ProcessSpec Sh(std::string key, std::string script) {
  return Spec(std::move(key), {"sh", "-c", std::move(script)});
}

struct Finished {
  std::map<std::string, std::string> output;
  std::map<std::string, Exit> exits;
  std::map<std::string, Clock::time_point> reported_at;
};

// Polls until `runner` has nothing left or `limit` passes.
Finished RunAll(Runner& runner, milliseconds limit = milliseconds(10000)) {
  Finished f;
  auto until = Clock::now() + limit;
  while (runner.running() > 0 && Clock::now() < until) {
    std::vector<Output> out;
    std::vector<Exit> exits;
    runner.Poll(milliseconds(200), &out, &exits);
    for (auto& o : out) {
      EXPECT_FALSE(f.exits.contains(o.key)) << "output after the exit of " << o.key;
      f.output[o.key] += o.data;
    }
    for (auto& e : exits) {
      EXPECT_FALSE(f.exits.contains(e.key)) << "reported twice: " << e.key;
      f.reported_at[e.key] = Clock::now();
      f.exits[e.key] = std::move(e);
    }
  }
  EXPECT_EQ(runner.running(), 0U) << "still running after " << limit.count() << " ms";
  return f;
}

Exit RunOne(const ProcessSpec& spec, std::string* output = nullptr) {
  Runner runner;
  Status s = runner.Start(spec);
  EXPECT_TRUE(s.ok()) << s.ToString();
  Finished f = RunAll(runner);
  if (output != nullptr) *output = f.output[spec.key];
  return f.exits[spec.key];
}

// Gone, or a zombie waiting for init: either way not running.
bool Gone(pid_t pid) {
  if (kill(pid, 0) != 0) return errno == ESRCH;
  auto stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (!stat.ok()) return true;
  size_t paren = stat->rfind(')');
  return paren != std::string::npos && paren + 2 < stat->size() && (*stat)[paren + 2] == 'Z';
}

bool GoneWithin(pid_t pid, milliseconds limit) {
  auto until = Clock::now() + limit;
  while (!Gone(pid)) {
    if (Clock::now() > until) return false;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return true;
}

// This process has no child left unreaped.
void ExpectNoChildren() {
  errno = 0;
  EXPECT_EQ(waitpid(-1, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST(RunnerTest, ReportsExitCodes) {
  Runner runner;
  ASSERT_TRUE(runner.Start(Sh("zero", "exit 0")).ok());
  ASSERT_TRUE(runner.Start(Sh("ninety-nine", "exit 99")).ok());
  ASSERT_TRUE(runner.Start(Sh("three", "exit 3")).ok());
  ASSERT_TRUE(runner.Start(Spec("true", {"true"})).ok());
  EXPECT_EQ(runner.running(), 4U);
  EXPECT_TRUE(runner.pid("zero").has_value());
  EXPECT_FALSE(runner.pid("nope").has_value());
  Finished f = RunAll(runner);
  EXPECT_EQ(f.exits["zero"].exit_code, 0);
  EXPECT_EQ(f.exits["ninety-nine"].exit_code, 99);
  EXPECT_EQ(f.exits["three"].exit_code, 3);
  EXPECT_EQ(f.exits["true"].exit_code, 0);
  for (auto& [key, e] : f.exits) {
    EXPECT_EQ(e.key, key);
    EXPECT_EQ(e.signal, 0);
    EXPECT_FALSE(e.timed_out);
    EXPECT_GE(e.duration.count(), 0);
  }
  EXPECT_FALSE(runner.pid("zero").has_value());
  ExpectNoChildren();
}

TEST(RunnerTest, ReportsDeathBySignal) {
  Exit e = RunOne(Sh("k", "kill -SEGV $$"));
  EXPECT_EQ(e.exit_code, -1);
  EXPECT_EQ(e.signal, SIGSEGV);
  EXPECT_FALSE(e.timed_out);
}

TEST(RunnerTest, CollectsStdoutAndStderrAsTheyArrive) {
  std::string out;
  RunOne(Sh("io", "echo out1; sleep 0.05; echo err1 >&2; sleep 0.05; echo out2"), &out);
  EXPECT_EQ(out, "out1\nerr1\nout2\n");

  // More than one read's worth, all of it, in order.
  RunOne(Sh("big", "i=0; while [ $i -lt 20000 ]; do echo line$i; i=$((i+1)); done"), &out);
  std::ostringstream want;
  for (int i = 0; i < 20000; ++i) want << "line" << i << "\n";
  EXPECT_EQ(out, want.str());
}

// Each Output is one stream's (stdout 1, stderr 2), so what reads a stream — the worker's
// secrets masker — sees it whole, whatever the other wrote between.
TEST(RunnerTest, TellsTheStreamsApart) {
  Runner r;
  ASSERT_TRUE(r.Start(Sh("s", "printf 'out-a'; echo err >&2; sleep 0.05; echo 'out-b'")).ok());
  std::map<int, std::string> by_stream;
  auto until = Clock::now() + milliseconds(10000);
  while (r.running() > 0 && Clock::now() < until) {
    std::vector<Output> out;
    std::vector<Exit> exits;
    r.Poll(milliseconds(200), &out, &exits);
    for (const Output& o : out) by_stream[o.stream] += o.data;
  }
  EXPECT_EQ(by_stream[1], "out-aout-b\n");
  EXPECT_EQ(by_stream[2], "err\n");
}

TEST(RunnerTest, LastStdoutLine) {
  EXPECT_EQ(RunOne(Sh("a", "printf 'a\\nb\\n'")).last_stdout_line, "b");
  EXPECT_EQ(RunOne(Sh("a", "printf 'a\\nb'")).last_stdout_line, "b");
  EXPECT_EQ(RunOne(Sh("a", "printf 'a\\nb\\n\\n\\n'")).last_stdout_line, "b");
  EXPECT_EQ(RunOne(Sh("a", "printf 'a\\r\\n'")).last_stdout_line, "a");
  EXPECT_EQ(RunOne(Sh("a", "echo out; echo err >&2")).last_stdout_line, "out");
  EXPECT_EQ(RunOne(Sh("a", "echo err >&2")).last_stdout_line, "");
  EXPECT_EQ(RunOne(Sh("a", "true")).last_stdout_line, "");
  // Split across reads.
  EXPECT_EQ(RunOne(Sh("a", "printf 'x\\nhel'; sleep 0.05; printf 'lo\\n'; sleep 0.05; echo"))
                .last_stdout_line,
            "hello");
  // A long line is cut at 64 KiB.
  std::string out;
  Exit e = RunOne(Sh("a", "echo first; head -c 100000 /dev/zero | tr '\\0' x; echo"), &out);
  EXPECT_EQ(out.size(), 6U + 100001U);
  EXPECT_EQ(e.last_stdout_line, std::string(size_t{64} << 10, 'x'));
}

TEST(RunnerTest, PassesExactlyTheGivenEnvironment) {
  // In a directory of its own (a fresh one would add its TMPDIR).
  ProcessSpec spec = Spec("env", {"env"}, "/");
  spec.env = {"PATH=/usr/bin:/bin", "FOO=bar baz", "EMPTY="};
  std::string out;
  EXPECT_EQ(RunOne(spec, &out).exit_code, 0);
  EXPECT_EQ(out, "PATH=/usr/bin:/bin\nFOO=bar baz\nEMPTY=\n");

  // argv[0] is found in the spec's PATH, not ours.
  auto bin = TempDir::Create("tandem-runner-test");
  ASSERT_TRUE(bin.ok());
  ASSERT_TRUE(WriteFileAtomic(bin->path() + "/mytool", "#!/bin/sh\necho mine\n", 0755).ok());
  spec = Spec("tool", {"mytool"});
  spec.env = {"PATH=/nonexistent:relative:" + bin->path()};
  EXPECT_EQ(RunOne(spec, &out).exit_code, 0);
  EXPECT_EQ(out, "mine\n");

  // Without PATH: /usr/bin:/bin.
  spec = Spec("nopath", {"env"}, "/");
  spec.env = {};
  EXPECT_EQ(RunOne(spec, &out).exit_code, 0);
  EXPECT_EQ(out, "");
}

TEST(RunnerTest, RunsInTheGivenDirectoryOrAFreshOneRemovedAfter) {
  auto dir = TempDir::Create("tandem-runner-test");
  ASSERT_TRUE(dir.ok());
  std::string out;
  RunOne(Spec("pwd", {"pwd"}, dir->path()), &out);
  EXPECT_EQ(out, dir->path() + "\n");
  EXPECT_TRUE(PathExists(dir->path()));

  // A temporary one, even with read-only directories left in it.
  Exit e = RunOne(Sh("tmp", "pwd; mkdir -p a/b; touch a/b/f; chmod 555 a a/b"), &out);
  EXPECT_EQ(e.exit_code, 0);
  ASSERT_FALSE(out.empty());
  std::string tmp = out.substr(0, out.size() - 1);
  EXPECT_NE(tmp.find("/tandem-task-"), std::string::npos) << tmp;
  EXPECT_FALSE(PathExists(tmp));
}

TEST(RunnerTest, AFreshDirectoryIsMadeInTheTaskRootAndIsTheTasksTmpdir) {
  auto root = TempDir::Create("tandem-runner-root");
  ASSERT_TRUE(root.ok());
  Runner runner(root->path());
  ProcessSpec spec = Sh("t", "pwd; echo \"$TMPDIR\"; mktemp");
  spec.env.push_back("TMPDIR=/somewhere/else");
  ASSERT_TRUE(runner.Start(spec).ok());
  Finished f = RunAll(runner);
  EXPECT_EQ(f.exits["t"].exit_code, 0);
  std::vector<std::string> lines = SplitNonEmpty(f.output["t"], '\n');
  ASSERT_EQ(lines.size(), 3U) << f.output["t"];
  EXPECT_EQ(lines[0].rfind(root->path() + "/task-", 0), 0U) << lines[0];
  EXPECT_EQ(lines[1], lines[0]);  // TMPDIR given by the spec is replaced
  EXPECT_EQ(lines[2].rfind(lines[0] + "/", 0), 0U) << lines[2];
  EXPECT_FALSE(PathExists(lines[0]));
}

TEST(RunnerTest, RefusesWhatCannotStart) {
  Runner runner;
  EXPECT_EQ(runner.Start(Spec("x", {})).code(), Code::kInvalidArgument);
  EXPECT_EQ(runner.Start(Spec("", {"true"})).code(), Code::kInvalidArgument);
  ASSERT_TRUE(runner.Start(Spec("dup", {"sleep", "5"})).ok());
  EXPECT_EQ(runner.Start(Spec("dup", {"true"})).code(), Code::kInvalidArgument);
  EXPECT_EQ(runner.Start(Spec("missing", {"no-such-program-here"})).code(), Code::kNotFound);
  EXPECT_EQ(runner.Start(Spec("nodir", {"true"}, "/no/such/dir")).code(), Code::kInternal);
  EXPECT_EQ(runner.Start(Spec("noexec", {"/etc/passwd"})).code(), Code::kInternal);
  EXPECT_EQ(runner.running(), 1U);
  runner.Kill("dup");
  runner.Kill("unknown");  // a no-op
  Finished f = RunAll(runner);
  EXPECT_EQ(f.exits["dup"].signal, SIGTERM);
  ExpectNoChildren();
}

TEST(RunnerTest, KillStopsTheGroup) {
  Runner runner;
  ASSERT_TRUE(runner.Start(Sh("k", "sleep 30 & echo $!; sleep 30")).ok());
  // Wait for the grandchild's pid.
  std::string out;
  auto until = Clock::now() + milliseconds(5000);
  while (out.find('\n') == std::string::npos && Clock::now() < until) {
    std::vector<Output> o;
    std::vector<Exit> e;
    runner.Poll(milliseconds(100), &o, &e);
    for (auto& x : o) out += x.data;
  }
  pid_t grandchild = std::stoi(out);
  runner.Kill("k");
  Finished f = RunAll(runner, milliseconds(3000));
  EXPECT_EQ(f.exits["k"].signal, SIGTERM);
  EXPECT_FALSE(f.exits["k"].timed_out);
  EXPECT_TRUE(GoneWithin(grandchild, milliseconds(1000)));
  ExpectNoChildren();
}

TEST(RunnerTest, TimeoutKillsAProcessAndItsTree) {
  Runner runner;
  ProcessSpec sleeper = Spec("sleep", {"sleep", "30"});
  sleeper.timeout = milliseconds(200);
  ASSERT_TRUE(runner.Start(sleeper).ok());
  ProcessSpec tree = Spec("tree", {"bash", "-c", "sleep 30 & echo $!; sleep 30; wait"});
  tree.timeout = milliseconds(300);
  ASSERT_TRUE(runner.Start(tree).ok());
  ProcessSpec quick = Sh("quick", "exit 0");
  quick.timeout = milliseconds(5000);
  ASSERT_TRUE(runner.Start(quick).ok());

  auto start = Clock::now();
  Finished f = RunAll(runner, milliseconds(4000));
  EXPECT_LT(Clock::now() - start, milliseconds(2000));
  EXPECT_TRUE(f.exits["sleep"].timed_out);
  EXPECT_EQ(f.exits["sleep"].signal, SIGTERM);
  EXPECT_GE(f.exits["sleep"].duration.count(), 200);
  EXPECT_TRUE(f.exits["tree"].timed_out);
  EXPECT_FALSE(f.exits["quick"].timed_out);
  EXPECT_EQ(f.exits["quick"].exit_code, 0);
  pid_t grandchild = std::stoi(f.exits["tree"].last_stdout_line);
  EXPECT_TRUE(GoneWithin(grandchild, milliseconds(1000))) << grandchild;
  ExpectNoChildren();
}

TEST(RunnerTest, WhatIgnoresSigtermIsKilledWhenTheExitIsReported) {
  Runner runner;
  ProcessSpec spec = Sh("t", "(trap '' TERM; sleep 30) & echo $!; sleep 30");
  spec.timeout = milliseconds(200);
  ASSERT_TRUE(runner.Start(spec).ok());
  Finished f = RunAll(runner, milliseconds(3000));
  EXPECT_TRUE(f.exits["t"].timed_out);
  pid_t stubborn = std::stoi(f.exits["t"].last_stdout_line);
  EXPECT_TRUE(GoneWithin(stubborn, milliseconds(1000)));
}

TEST(RunnerTest, EscalatesToSigkillAfterFiveSeconds) {
  Runner runner;
  ProcessSpec spec = Sh("t", "trap 'echo term' TERM; while true; do sleep 0.05; done");
  spec.timeout = milliseconds(100);
  ASSERT_TRUE(runner.Start(spec).ok());
  auto start = Clock::now();
  Finished f = RunAll(runner, milliseconds(8000));
  auto took = Clock::now() - start;
  EXPECT_GE(took, milliseconds(5000));
  EXPECT_LT(took, milliseconds(7000));
  EXPECT_TRUE(f.exits["t"].timed_out);
  EXPECT_EQ(f.exits["t"].signal, SIGKILL);
  EXPECT_NE(f.output["t"].find("term\n"), std::string::npos) << f.output["t"];  // the trap ran
}

TEST(RunnerTest, AGrandchildHoldingStdoutDoesNotDelayTheExit) {
  Runner runner;
  ASSERT_TRUE(runner.Start(Sh("g", "sleep 30 & echo $!; echo bye")).ok());
  auto start = Clock::now();
  Finished f = RunAll(runner, milliseconds(5000));
  EXPECT_LT(f.reported_at["g"] - start, milliseconds(1500));
  EXPECT_EQ(f.exits["g"].exit_code, 0);
  EXPECT_EQ(f.exits["g"].last_stdout_line, "bye");
  pid_t grandchild = std::stoi(f.output["g"]);
  EXPECT_TRUE(GoneWithin(grandchild, milliseconds(1000)));
}

TEST(RunnerTest, RunsTwoHundredAtOnce) {
  Runner runner;
  constexpr int kProcs = 200;
  for (int i = 0; i < kProcs; ++i) {
    ASSERT_TRUE(runner
                    .Start(Sh("p" + std::to_string(i),
                              "echo " + std::to_string(i) + "; exit " + std::to_string(i % 7)))
                    .ok())
        << i;
  }
  EXPECT_EQ(runner.running(), size_t{kProcs});
  Finished f = RunAll(runner, milliseconds(20000));
  ASSERT_EQ(f.exits.size(), size_t{kProcs});
  for (int i = 0; i < kProcs; ++i) {
    std::string key = "p" + std::to_string(i);
    EXPECT_EQ(f.exits[key].exit_code, i % 7) << key;
    EXPECT_EQ(f.output[key], std::to_string(i) + "\n") << key;
    EXPECT_EQ(f.exits[key].last_stdout_line, std::to_string(i)) << key;
  }
  ExpectNoChildren();
}

TEST(RunnerTest, DestructionKillsAndReapsEverything) {
  std::vector<pid_t> pids;
  std::string tmp;
  {
    Runner runner;
    ASSERT_TRUE(runner.Start(Sh("a", "sleep 30 & echo $! >&2; sleep 30")).ok());
    ASSERT_TRUE(runner.Start(Sh("b", "trap '' TERM; pwd; sleep 30")).ok());
    ASSERT_TRUE(runner.Start(Sh("c", "exit 0")).ok());
    pids = {*runner.pid("a"), *runner.pid("b"), *runner.pid("c")};
    auto until = Clock::now() + milliseconds(3000);
    while ((tmp.empty() || pids.size() < 4) && Clock::now() < until) {
      std::vector<Output> o;
      std::vector<Exit> e;
      runner.Poll(milliseconds(100), &o, &e);
      for (auto& x : o) {
        if (x.key == "a") pids.push_back(std::stoi(x.data));
        if (x.key == "b") tmp = x.data.substr(0, x.data.size() - 1);
      }
    }
    ASSERT_EQ(pids.size(), 4U);
    ASSERT_TRUE(PathExists(tmp));
  }
  for (pid_t pid : pids) EXPECT_TRUE(GoneWithin(pid, milliseconds(1000))) << pid;
  EXPECT_FALSE(PathExists(tmp));
  ExpectNoChildren();
}

TEST(RunnerTest, AProcessReapedBehindItsBackIsStillReported) {
  struct sigaction ignore {};
  struct sigaction old {};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(sigaction(SIGCHLD, &ignore, &old), 0);  // the kernel reaps children itself
  Exit e = RunOne(Sh("r", "echo hi; exit 3"));
  sigaction(SIGCHLD, &old, nullptr);
  EXPECT_EQ(e.exit_code, -1);
  EXPECT_EQ(e.signal, 0);
  EXPECT_EQ(e.last_stdout_line, "hi");
}

TEST(RunnerTest, PollWithNothingRunningWaits) {
  Runner runner;
  std::vector<Output> o;
  std::vector<Exit> e;
  auto start = Clock::now();
  runner.Poll(milliseconds(50), &o, &e);
  EXPECT_GE(Clock::now() - start, milliseconds(50));
  runner.Poll(milliseconds(0), &o, &e);
  EXPECT_TRUE(o.empty());
  EXPECT_TRUE(e.empty());
}

}  // namespace
}  // namespace tandem::worker
