#include "base/process.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <thread>

#include "base/fs.h"

namespace tandem {
namespace {

using namespace std::chrono_literals;

TEST(ProcessTest, RunCommandCapturesOutputAndExitCode) {
  auto r = RunCommand({.argv = {"/bin/sh", "-c", "echo hello; exit 3"}}, 5s);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->exit.exited);
  EXPECT_EQ(r->exit.code, 3);
  EXPECT_EQ(r->output, "hello\n");
}

TEST(ProcessTest, MissingProgramIsAnError) {
  auto c = Child::Spawn({.argv = {"/nonexistent/program"}});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("/nonexistent/program"), std::string::npos);
}

TEST(ProcessTest, StopEscalatesToKill) {
  // The child ignores SIGTERM, so Stop has to SIGKILL it after the grace period.
  auto dir = TempDir::Create("tandem-proc");
  ASSERT_TRUE(dir.ok());
  std::string ready = dir->path() + "/ready";
  auto c = Child::Spawn(
      {.argv = {"/bin/sh", "-c", "trap '' TERM; touch " + ready + "; sleep 30"}});
  ASSERT_TRUE(c.ok());
  pid_t pid = (*c)->pid();
  for (int i = 0; i < 1000 && !PathExists(ready); ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(PathExists(ready));  // the trap is in place
  ExitInfo e = (*c)->Stop(SIGTERM, 200ms);
  EXPECT_FALSE(e.exited);
  EXPECT_EQ(e.code, SIGKILL);
  EXPECT_FALSE(ProcessAlive(pid));
}

TEST(ProcessTest, EnvironmentIsPassed) {
  auto r = RunCommand({.argv = {"/bin/sh", "-c", "printf %s \"$TANDEM_X\""},
                       .env_extra = {{"TANDEM_X", "42"}}},
                      5s);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->output, "42");
}

TEST(ProcessTest, CommandThatHangsIsKilledAtTimeout) {
  auto r = RunCommand({.argv = {"/bin/sleep", "30"}}, 200ms);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
}

}  // namespace
}  // namespace tandem
