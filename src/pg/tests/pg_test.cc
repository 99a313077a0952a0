#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "base/fs.h"
#include "base/net.h"
#include "base/process.h"
#include "harness/pg_harness.h"
#include "pg/conn.h"
#include "pg/server.h"

namespace tandem::pg {
namespace {

using namespace std::chrono_literals;
using tandem::testing::PgHarness;

TEST(PgConnTest, ParamsResultsAndErrors) {
  auto conn = Conn::Connect(PgHarness::Get().NewDatabase());
  ASSERT_TRUE(conn.ok()) << conn.status().ToString();
  Conn& c = **conn;
  ASSERT_TRUE(c.ExecScript("CREATE TABLE t (k text PRIMARY KEY, v bytea, n int)").ok());
  std::string bytes("\0\x01\xffz", 4);
  auto ins = c.Exec("INSERT INTO t VALUES ($1, $2, $3)", {"a", ByteaParam(bytes), std::nullopt});
  ASSERT_TRUE(ins.ok()) << ins.status().ToString();
  EXPECT_EQ(ins->affected(), 1);
  auto rows = c.Exec("SELECT k, v, n FROM t WHERE k = $1", {"a"});
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1);
  EXPECT_EQ(*DecodeBytea(rows->Text(0, 1)), bytes);
  EXPECT_FALSE(rows->Opt(0, 2).has_value());
  auto dup = c.Exec("INSERT INTO t VALUES ($1, NULL, 1)", {"a"});
  EXPECT_EQ(dup.status().code(), Code::kAlreadyExists);
  EXPECT_EQ(c.Exec("SELEC 1").status().code(), Code::kInternal);
  // libpq would cut a text parameter at a NUL: refused instead of stored shortened.
  EXPECT_EQ(c.Exec("INSERT INTO t VALUES ($1, NULL, 1)", {std::string("b\0c", 3)}).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(c.Exec("SELECT count(*) FROM t")->Int(0, 0), 1);
}

TEST(PgPoolTest, TransactionRollsBackOnError) {
  Pool pool(PgHarness::Get().NewDatabase(), 2);
  ASSERT_TRUE(pool.WithTx([](Conn& c) { return c.ExecScript("CREATE TABLE t (x int)"); }).ok());
  Status s = pool.WithTx([](Conn& c) -> Status {
    RETURN_IF_ERROR(c.Exec("INSERT INTO t VALUES (1)").status());
    return InvalidArgument("changed my mind");
  });
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  auto lease = pool.Acquire();
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ((*lease)->Exec("SELECT count(*) FROM t")->Int(0, 0), 0);
}

TEST(PgPoolTest, ConnectionLeftInATransactionIsNotReused) {
  Pool pool(PgHarness::Get().NewDatabase(), 1);
  {
    auto c = pool.Acquire();
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE((*c)->ExecScript("CREATE TABLE t (x int)").ok());
    ASSERT_TRUE((*c)->ExecScript("BEGIN; INSERT INTO t VALUES (1)").ok());
    // Returned to the pool with the transaction open (as a caller that threw would).
  }
  auto c = pool.Acquire();
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE((*c)->Idle());
  EXPECT_EQ((*c)->Exec("SELECT count(*) FROM t")->Int(0, 0), 0);
}

TEST(PgPoolTest, UnreachableServerIsUnavailable) {
  auto port = tandem::PickFreePort();
  Pool pool("host=127.0.0.1 port=" + std::to_string(*port) + " connect_timeout=1", 1);
  EXPECT_EQ(pool.Acquire().status().code(), Code::kUnavailable);
}

// A second server of its own, so killing it does not disturb the shared one.
class LocalServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto port = PickFreePort();
    ASSERT_TRUE(port.ok());
    opts_.data_dir = PgHarness::Get().dir() + "/own-" + std::to_string(*port) + "/data";
    opts_.port = *port;
    opts_.run_as = tandem::testing::RunAsUser();
    opts_.shared_buffers = "16MB";
    auto s = NewLocalServer(opts_);
    ASSERT_TRUE(s.ok());
    server_ = std::move(s).value();
    ASSERT_TRUE(server_->Init().ok());
  }
  void TearDown() override {
    if (server_) (void)server_->Stop();
  }
  LocalServerOptions opts_;
  ServerPtr server_;
};

TEST_F(LocalServerTest, InitIsIdempotentAndSettingsAreApplied) {
  ASSERT_TRUE(server_->Init().ok());  // second Init keeps the cluster
  ASSERT_TRUE(server_->Start(60s).ok());
  auto c = Conn::Connect(server_->Dsn("postgres"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto r = (*c)->Exec(
      "SELECT current_setting('wal_level'), current_setting('wal_log_hints'), "
      "current_setting('data_checksums')");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->Text(0, 0), "replica");
  EXPECT_EQ(r->Text(0, 1), "on");
  EXPECT_EQ(r->Text(0, 2), "on");
  EXPECT_TRUE(server_->State().running);
}

TEST_F(LocalServerTest, RestartsAfterSigkillWithCommittedDataIntact) {
  ASSERT_TRUE(server_->Start(60s).ok());
  {
    auto c = Conn::Connect(server_->Dsn("postgres"));
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE((*c)->ExecScript("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)").ok());
  }
  auto pid = ReadFile(opts_.data_dir + "/postmaster.pid");
  ASSERT_TRUE(pid.ok());
  ASSERT_EQ(kill(atoi(pid->c_str()), SIGKILL), 0);
  // Supervise is called periodically by its owner; it may need a few calls while the dead
  // server's backends let go of the shared memory.
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (server_->State().restarts == 0 && std::chrono::steady_clock::now() < deadline) {
    (void)server_->Supervise();
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(server_->State().restarts, 1);
  auto c = Conn::Connect(server_->Dsn("postgres"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ((*c)->Exec("SELECT x FROM kept")->Int(0, 0), 42);
}

TEST_F(LocalServerTest, PoolReplacesConnectionsToARestartedServer) {
  ASSERT_TRUE(server_->Start(60s).ok());
  Pool pool(server_->Dsn("postgres"), 1);
  {
    auto c = pool.Acquire();
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE((*c)->Exec("SELECT 1").ok());
  }
  ASSERT_TRUE(server_->Stop().ok());
  ASSERT_TRUE(server_->Start(60s).ok());
  // The pooled connection died with the old server; the pool notices and hands out a new one.
  auto c = pool.Acquire();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE((*c)->Exec("SELECT 1").ok());
}

TEST_F(LocalServerTest, SupervisionKeepsTryingUntilTheServerCanStart) {
  ASSERT_TRUE(server_->Start(60s).ok());
  // Take the server's port while it is down, so restarts fail for a while.
  auto pid = ReadFile(opts_.data_dir + "/postmaster.pid");
  ASSERT_TRUE(pid.ok());
  ASSERT_EQ(kill(atoi(pid->c_str()), SIGKILL), 0);
  int blocker = socket(AF_INET, SOCK_STREAM, 0);
  int yes = 1;  // the dead server's connections linger in TIME_WAIT on this port
  setsockopt(blocker, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(opts_.port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // The old backends may hold the port for a moment after the postmaster died.
  bool bound = false;
  for (int i = 0; i < 500 && !bound; ++i) {
    bound = bind(blocker, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
            listen(blocker, 1) == 0;
    if (!bound) std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(bound);
  for (int i = 0; i < 25; ++i) {
    Status s = server_->Supervise();
    if (!s.ok()) {
      EXPECT_NE(s.message().find("next try in"), std::string::npos) << s.message();
    }
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(server_->State().restarts, 0);
  close(blocker);
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (server_->State().restarts == 0 && std::chrono::steady_clock::now() < deadline) {
    (void)server_->Supervise();
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(server_->State().restarts, 1);
  EXPECT_TRUE(server_->State().running);
}

TEST_F(LocalServerTest, PortInUseIsReportedClearly) {
  // The shared harness server already listens on its port.
  opts_.port = PgHarness::Get().port();
  auto s = NewLocalServer(opts_);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE((*s)->Init().ok());
  Status st = (*s)->Start(10s);
  EXPECT_EQ(st.code(), Code::kUnavailable);
  EXPECT_NE(st.message().find("already in use"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace tandem::pg
