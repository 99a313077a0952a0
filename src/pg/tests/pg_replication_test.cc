// Physical replication between two (or three) real PostgreSQL servers, each in its own
// temporary directory on a free loopback port: base backup and streaming, synchronous commits,
// promotion, and rejoining a former primary by pg_rewind or a base backup. Plus the parsers of
// the tools' output, on output captured from PostgreSQL 15.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <thread>

#include "base/fs.h"
#include "base/net.h"
#include "base/process.h"
#include "harness/pg_harness.h"
#include "pg/conn.h"
#include "pg/replication.h"
#include "pg/server.h"
#include "pg/tools.h"
#include "tls/certificates.h"

namespace tandem::pg {
namespace {

using namespace std::chrono_literals;

// --- LSN text ---------------------------------------------------------------------------------

TEST(LsnTest, FormatsLikePostgreSQL) {
  EXPECT_EQ(FormatLsn(0), "0/0");
  EXPECT_EQ(FormatLsn(0x3018048), "0/3018048");
  EXPECT_EQ(FormatLsn(0x16B374D848), "16/B374D848");
  EXPECT_EQ(FormatLsn(~uint64_t{0}), "FFFFFFFF/FFFFFFFF");
}

TEST(LsnTest, ParsesWhatItFormats) {
  for (uint64_t v : {uint64_t{0}, uint64_t{1}, uint64_t{0x3018048}, uint64_t{0x16B374D848},
                     uint64_t{0x100000000}, ~uint64_t{0}}) {
    auto p = ParseLsn(FormatLsn(v));
    ASSERT_TRUE(p.ok()) << FormatLsn(v);
    EXPECT_EQ(*p, v);
  }
  EXPECT_EQ(*ParseLsn("16/b374d848"), 0x16B374D848u);
  EXPECT_EQ(*ParseLsn("00000000/00000010"), 0x10u);
}

TEST(LsnTest, RefusesWhatIsNotAnLsn) {
  for (const char* bad : {"", "/", "0", "0/", "/0", "G/0", "0/G", "123456789/0", "0/123456789",
                          "1/2/3", " 0/1", "0/1 ", "-1/0", "0x1/0"}) {
    EXPECT_EQ(ParseLsn(bad).status().code(), Code::kInvalidArgument) << "'" << bad << "'";
  }
}

// --- What the tools print ---------------------------------------------------------------------

TEST(ToolsTest, ControlData) {
  auto d = ParseControlData(
      "pg_control version number:            1300\n"
      "Database cluster state:               shut down in recovery\n"
      "Latest checkpoint location:           0/30182C8\n"
      "Latest checkpoint's REDO location:    0/3018290\n"
      "Latest checkpoint's TimeLineID:       2\n"
      "Latest checkpoint's PrevTimeLineID:   2\n"
      "Minimum recovery ending location:     0/3018400\n"
      "Min recovery ending loc's timeline:   2\n"
      "Bytes per WAL segment:                16777216\n");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->state, "shut down in recovery");
  EXPECT_TRUE(d->CleanlyShutDown());
  EXPECT_EQ(d->checkpoint_lsn, 0x30182C8u);
  EXPECT_EQ(d->checkpoint_timeline, 2);
  EXPECT_EQ(d->min_recovery_lsn, 0x3018400u);

  auto crashed = ParseControlData(
      "Database cluster state:               in production\n"
      "Latest checkpoint location:           0/2000060\n"
      "Latest checkpoint's TimeLineID:       1\n");
  ASSERT_TRUE(crashed.ok());
  EXPECT_FALSE(crashed->CleanlyShutDown());
  EXPECT_EQ(ParseControlData("pg_controldata: error: could not open file").status().code(),
            Code::kInternal);
}

TEST(ToolsTest, RewindOutput) {
  auto diverged = ParseRewindOutput(
      "pg_rewind: servers diverged at WAL location 0/3018048 on timeline 1\n"
      "pg_rewind: rewinding from last common checkpoint at 0/2000060 on timeline 1\n"
      "pg_rewind: Done!\n");
  ASSERT_TRUE(diverged.ok()) << diverged.status().ToString();
  EXPECT_TRUE(diverged->rewind_required);
  EXPECT_EQ(diverged->diverged_lsn, 0x3018048u);
  EXPECT_EQ(diverged->diverged_timeline, 1);

  auto none = ParseRewindOutput(
      "pg_rewind: servers diverged at WAL location 0/5000108 on timeline 3\n"
      "pg_rewind: no rewind required\n");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->rewind_required);
  EXPECT_EQ(none->diverged_lsn, 0x5000108u);
  EXPECT_EQ(none->diverged_timeline, 3);

  auto same = ParseRewindOutput(
      "pg_rewind: source and target cluster are on the same timeline\n"
      "pg_rewind: no rewind required\n");
  ASSERT_TRUE(same.ok());
  EXPECT_TRUE(same->same_timeline);
  EXPECT_FALSE(same->rewind_required);

  EXPECT_FALSE(
      ParseRewindOutput("pg_rewind: error: source and target clusters are from different systems")
          .ok());
}

TEST(ToolsTest, WaldumpStats) {
  WalStats s = ParseWaldumpStats(
      "WAL statistics between 0/3018048 and 0/30182C8:\n"
      "Type                                           N      (%)          Record size      (%)\n"
      "----                                           -      ---          -----------      ---\n"
      "Heap/INSERT                                    4 ( 36.36)                  236 ( 12.05)\n"
      "Transaction/COMMIT                             5 ( 45.45)                  170 (  8.68)\n"
      "Transaction/COMMIT_PREPARED                    2 ( 18.18)                   90 (  4.59)\n"
      "Transaction/ABORT                              3 ( 18.18)                   90 (  4.59)\n"
      "                                        --------                      --------\n"
      "Total                                         11                          496\n"
      "pg_waldump: error: error in WAL record at 0/30182C8: invalid record length at 0/3018340: "
      "wanted 24, got 0\n");
  EXPECT_TRUE(s.found);
  EXPECT_EQ(s.commits, 7);
  EXPECT_EQ(s.end_lsn, 0x30182C8u);
  EXPECT_FALSE(ParseWaldumpStats("pg_waldump: error: could not find file").found);
}

TEST(ToolsTest, Quoting) {
  EXPECT_EQ(ConfQuote("host='a' pass\\word"), "'host=''a'' pass\\\\word'");
  EXPECT_EQ(SqlLiteral("it's"), "'it''s'");
  EXPECT_EQ(SynchronousStandbyNames({}), "");
  EXPECT_EQ(SynchronousStandbyNames({"region-b"}), "FIRST 1 (\"region-b\")");
  EXPECT_EQ(SynchronousStandbyNames({"a", "b\"c"}), "FIRST 1 (\"a\", \"b\"\"c\")");
}

TEST(ToolsTest, RemoveSettings) {
  bool changed = false;
  std::string out = RemoveSettings(
      "# Do not edit this file manually!\n"
      "synchronous_commit = 'remote_apply'\n"
      "synchronous_commit_extra = 'x'\n"
      "work_mem = '8MB'\n"
      "  Synchronous_Standby_Names = 'FIRST 1 (\"region-b\")'\n",
      {"synchronous_standby_names", "synchronous_commit"}, &changed);
  EXPECT_TRUE(changed);
  EXPECT_EQ(out,
            "# Do not edit this file manually!\n"
            "synchronous_commit_extra = 'x'\n"
            "work_mem = '8MB'\n");
  RemoveSettings("work_mem = '8MB'\n", {"synchronous_commit"}, &changed);
  EXPECT_FALSE(changed);
}

TEST(ToolsTest, WalReceiverTrouble) {
  EXPECT_TRUE(WalReceiverCannotContinue(
      "FATAL:  could not receive data from WAL stream: ERROR:  requested WAL segment "
      "000000020000000000000003 has already been removed"));
  EXPECT_FALSE(WalReceiverCannotContinue(
      "FATAL:  could not connect to the primary server: connection refused"));
}

TEST(ToolsTest, UpstreamValidation) {
  Upstream up{.host = "127.0.0.11",
              .port = 5432,
              .slot = "tandem_region_b",
              .application_name = "region-b"};
  EXPECT_TRUE(ValidateUpstream(up).ok());
  Upstream bad = up;
  bad.slot = "tandem-region-b";
  EXPECT_EQ(ValidateUpstream(bad).code(), Code::kInvalidArgument);
  bad = up;
  bad.port = 0;
  EXPECT_EQ(ValidateUpstream(bad).code(), Code::kInvalidArgument);
  bad = up;
  bad.application_name = "region\nb";
  EXPECT_EQ(ValidateUpstream(bad).code(), Code::kInvalidArgument);
}

TEST(ExternalServerTest, RefusesReplicationWithAReason) {
  auto s = NewExternalServer("host=127.0.0.1 port=1 dbname=x");
  ASSERT_TRUE(s.ok());
  Upstream up{.host = "h", .port = 1, .slot = "s", .application_name = "a"};
  Status st = (*s)->InitReplica(up, 1s);
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_NE(st.message().find("an external PostgreSQL is replicated by whoever runs it"),
            std::string::npos)
      << st.message();
  EXPECT_EQ((*s)->Promote(1s).status().code(), Code::kFailedPrecondition);
  EXPECT_EQ((*s)->Rejoin(up, 1s).status().code(), Code::kFailedPrecondition);
  EXPECT_EQ((*s)->SetSynchronous({}).code(), Code::kFailedPrecondition);
  EXPECT_EQ((*s)->EnsureSlot("s").code(), Code::kFailedPrecondition);
  EXPECT_EQ((*s)->SetUpstream(std::nullopt).code(), Code::kFailedPrecondition);
}

// --- Real servers -----------------------------------------------------------------------------

// Region a (127.0.0.1) and region b (127.0.0.2), as a pair, each with its own directory under
// one temporary directory; every server is stopped and the directory removed in TearDown.
class ReplicationTest : public ::testing::Test {
 protected:
  static constexpr char kPassword[] = "pair-secret-derived-password";

  void SetUp() override {
    auto dir = TempDir::Create("tandem-pg-replication");
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    root_ = AbsolutePath(dir->Release());
    chmod(root_.c_str(), 0755);  // the run-as user must reach the data directories
  }

  void TearDown() override {
    for (auto& [name, s] : servers_) (void)s->Stop();
    servers_.clear();
    if (!root_.empty()) (void)RemoveAll(root_);
  }

  // A server for region `name` on `host`, not initialised yet.
  Server* Make(const std::string& name, const std::string& host,
               const std::string& password = kPassword) {
    auto port = PickFreePort(host);
    EXPECT_TRUE(port.ok());
    LocalServerOptions o;
    o.data_dir = root_ + "/" + name + "/pg/data";
    o.host = host;
    o.port = *port;
    o.run_as = tandem::testing::RunAsUser();
    o.shared_buffers = "16MB";
    o.max_connections = 20;
    o.password = password;
    if (tls_) {
      // A certificate of the test's own CA for the server's address.
      if (!ca_) {
        auto ca = tls::CreateAuthority("pg test CA", std::chrono::hours(1));
        EXPECT_TRUE(ca.ok());
        ca_ = *ca;
        EXPECT_TRUE(WriteFileAtomic(root_ + "/ca.crt", ca_->certificate).ok());
      }
      auto pem = tls::IssueServerCertificate(*ca_, {name, {}, {host}}, std::chrono::hours(1));
      EXPECT_TRUE(pem.ok());
      o.tls_cert_file = root_ + "/" + name + ".crt";
      o.tls_key_file = root_ + "/" + name + ".key";
      o.tls_ca_file = root_ + "/ca.crt";
      EXPECT_TRUE(WriteFileAtomic(o.tls_cert_file, pem->certificate).ok());
      EXPECT_TRUE(WriteFileAtomic(o.tls_key_file, pem->private_key, 0600).ok());
    }
    auto s = NewLocalServer(o);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    opts_[name] = o;
    Server* raw = s->get();
    servers_[name] = std::move(s).value();
    return raw;
  }

  // A running primary.
  Server* Primary(const std::string& name, const std::string& host) {
    Server* s = Make(name, host);
    Status st = s->Init();
    EXPECT_TRUE(st.ok()) << st.ToString();
    st = s->Start(60s);
    EXPECT_TRUE(st.ok()) << st.ToString();
    return s;
  }

  // How the replica `name` streams from the server `of`.
  Upstream UpstreamOf(const std::string& of, const std::string& name) {
    std::string slot = "tandem_" + name;
    std::replace(slot.begin(), slot.end(), '-', '_');
    return Upstream{
        .host = opts_[of].host, .port = opts_[of].port, .slot = slot, .application_name = name};
  }

  // A running replica of `of`, from a base backup.
  Server* Replica(const std::string& name, const std::string& host, const std::string& of) {
    Server* s = Make(name, host);
    Status st = s->SetUpstream(UpstreamOf(of, name));
    EXPECT_TRUE(st.ok()) << st.ToString();
    st = s->Init();  // with an upstream: no initdb
    EXPECT_TRUE(st.ok()) << st.ToString();
    EXPECT_FALSE(PathExists(opts_[name].data_dir + "/PG_VERSION"));
    st = s->InitReplica(UpstreamOf(of, name), 120s);
    EXPECT_TRUE(st.ok()) << st.ToString();
    st = s->Start(60s);
    EXPECT_TRUE(st.ok()) << st.ToString();
    return s;
  }

  static ConnPtr Connect(Server* s) {
    auto c = Conn::Connect(s->Dsn("postgres"));
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c).value() : nullptr;
  }

  static Status Exec(Server* s, const std::string& sql) {
    auto c = Conn::Connect(s->Dsn("postgres"));
    if (!c.ok()) return c.status();
    return (*c)->ExecScript(sql);
  }

  static int64_t Count(Server* s, const std::string& table) {
    auto c = Conn::Connect(s->Dsn("postgres"));
    if (!c.ok()) return -1;
    auto r = (*c)->Exec("SELECT count(*) FROM " + table);
    return r.ok() ? r->Int(0, 0) : -1;
  }

  static std::string Setting(Server* s, const std::string& name) {
    auto c = Conn::Connect(s->Dsn("postgres"));
    if (!c.ok()) return "<" + c.status().message() + ">";
    auto r = (*c)->Exec("SELECT current_setting($1)", {name});
    return r.ok() ? r->Text(0, 0) : "<" + r.status().message() + ">";
  }

  static bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(10ms);
    }
    return true;
  }

  // True once `replica` streams and has replayed everything `primary` has written.
  static bool CaughtUp(Server* primary, Server* replica) {
    auto p = primary->Sample();
    auto r = replica->Sample();
    return p.ok() && r.ok() && r->streaming && r->replay_lsn >= p->current_lsn;
  }

  static const ReplicaState* FindReplica(const ReplicationSample& s, const std::string& name) {
    for (const auto& r : s.replicas) {
      if (r.application_name == name) return &r;
    }
    return nullptr;
  }

  void Kill(const std::string& name) {
    auto pid = ReadFile(opts_[name].data_dir + "/postmaster.pid");
    ASSERT_TRUE(pid.ok());
    ASSERT_EQ(kill(atoi(pid->c_str()), SIGKILL), 0);
  }

  std::string root_;
  bool tls_ = false;            // servers made from now on serve TLS only
  std::optional<tls::Pem> ca_;  // their CA, made with the first
  std::map<std::string, LocalServerOptions> opts_;
  std::map<std::string, ServerPtr> servers_;
};

TEST_F(ReplicationTest, BaseBackupThenStreaming) {
  Server* a = Primary("region-a", "127.0.0.1");
  ASSERT_TRUE(Exec(a, "CREATE TABLE t (x int)").ok());
  Server* b = Replica("region-b", "127.0.0.2", "region-a");
  ASSERT_FALSE(HasFailure());
  // Idempotent once the cluster exists.
  EXPECT_TRUE(b->InitReplica(UpstreamOf("region-a", "region-b"), 10s).ok());
  // The include line was copied from the primary, and not added twice.
  auto conf = ReadFile(opts_["region-b"].data_dir + "/postgresql.conf");
  ASSERT_TRUE(conf.ok());
  EXPECT_EQ(conf->find("include_if_exists = 'tandem.conf'"),
            conf->rfind("include_if_exists = 'tandem.conf'"));

  auto before = a->Sample();
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  EXPECT_FALSE(before->in_recovery);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(Exec(a, "INSERT INTO t VALUES (" + std::to_string(i) + ")").ok());
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE(WaitFor([&] { return Count(b, "t") == i + 1; }, 1s)) << "row " << i;
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  }
  EXPECT_EQ(Exec(b, "INSERT INTO t VALUES (99)").code(), Code::kFailedPrecondition);  // read-only

  ASSERT_TRUE(WaitFor([&] { return CaughtUp(a, b); }, 10s));
  auto p = a->Sample();
  ASSERT_TRUE(p.ok());
  EXPECT_GT(p->current_lsn, before->current_lsn);
  EXPECT_EQ(p->timeline, 1);
  const ReplicaState* rb = FindReplica(*p, "region-b");
  ASSERT_NE(rb, nullptr);
  EXPECT_EQ(rb->state, "streaming");
  EXPECT_EQ(rb->sync_state, "async");
  auto r = b->Sample();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->in_recovery);
  EXPECT_TRUE(r->streaming);
  EXPECT_EQ(r->timeline, 1);
  EXPECT_GE(r->receive_lsn, r->replay_lsn);
  EXPECT_GE(r->replay_lsn, p->current_lsn);
  EXPECT_TRUE(r->replicas.empty());
  EXPECT_EQ(b->EnsureSlot("tandem_region_a").code(), Code::kFailedPrecondition);
  EXPECT_EQ(b->SetSynchronous({"region-a"}).code(), Code::kFailedPrecondition);

  // Streaming goes on across a restart of the replica.
  ASSERT_TRUE(b->Stop().ok());
  ASSERT_TRUE(Exec(a, "INSERT INTO t VALUES (5)").ok());
  ASSERT_TRUE(b->Start(60s).ok());
  EXPECT_TRUE(WaitFor([&] { return Count(b, "t") == 6; }, 10s));
}

TEST_F(ReplicationTest, SynchronousCommitsWaitForTheStandbyToApplyThem) {
  Server* a = Primary("region-a", "127.0.0.1");
  ASSERT_TRUE(Exec(a, "CREATE TABLE t (x int)").ok());
  Server* b = Replica("region-b", "127.0.0.2", "region-a");
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(a->SetSynchronous({"region-b"}).ok());
  EXPECT_EQ(Setting(a, "synchronous_commit"), "remote_apply");
  ASSERT_TRUE(WaitFor(
      [&] {
        auto s = a->Sample();
        const ReplicaState* r = s.ok() ? FindReplica(*s, "region-b") : nullptr;
        return r != nullptr && r->sync_state == "sync";
      },
      10s));
  // A commit returns only once the standby applied it: it is visible there at once.
  ConnPtr ca = Connect(a);
  ConnPtr cb = Connect(b);
  ASSERT_TRUE(ca && cb);
  for (int i = 1; i <= 20; ++i) {
    ASSERT_TRUE(ca->Exec("INSERT INTO t VALUES ($1)", {std::to_string(i)}).ok());
    EXPECT_EQ(cb->Exec("SELECT count(*) FROM t")->Int(0, 0), i);
  }

  // A standby that is not there holds commits up; an empty list lets them go.
  ASSERT_TRUE(a->SetSynchronous({"nobody"}).ok());
  // A reload reaches each of the server's processes on its own: until region-b's walsender has
  // read the new list, it still counts as the synchronous standby and releases the commit (the
  // suite saw that once in a clean clone). Give the reload a second; then the commit must wait.
  std::this_thread::sleep_for(1s);
  std::atomic<bool> committed{false};
  std::thread writer([&] {
    EXPECT_TRUE(ca->Exec("INSERT INTO t VALUES (100)").ok());
    committed = true;
  });
  std::this_thread::sleep_for(500ms);
  EXPECT_FALSE(committed.load());
  Status s = a->SetSynchronous({});
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(WaitFor([&] { return committed.load(); }, 10s));
  writer.join();
  EXPECT_EQ(Setting(a, "synchronous_standby_names"), "");
  EXPECT_EQ(Setting(a, "synchronous_commit"), "on");
}

TEST_F(ReplicationTest, PromotionMakesTheReplicaWritable) {
  Server* a = Primary("region-a", "127.0.0.1");
  ASSERT_TRUE(Exec(a, "CREATE TABLE t (x int); INSERT INTO t VALUES (1)").ok());
  Server* b = Replica("region-b", "127.0.0.2", "region-a");
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(WaitFor([&] { return CaughtUp(a, b); }, 10s));
  auto before = b->Sample();
  ASSERT_TRUE(before.ok());

  auto p = b->Promote(60s);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->timeline, 2);
  EXPECT_GE(p->lsn, before->replay_lsn);
  EXPECT_GT(p->seconds, 0);
  RecordProperty("promote_seconds", std::to_string(p->seconds));
  EXPECT_TRUE(Exec(b, "INSERT INTO t VALUES (2)").ok());
  EXPECT_EQ(Count(b, "t"), 2);
  EXPECT_FALSE(PathExists(opts_["region-b"].data_dir + "/standby.signal"));

  // Again: nothing to do.
  auto again = b->Promote(60s);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->seconds, 0);
  EXPECT_EQ(again->timeline, 2);
  EXPECT_EQ(again->lsn, p->lsn);

  // It stays a primary across a restart.
  ASSERT_TRUE(b->Stop().ok());
  ASSERT_TRUE(b->Start(60s).ok());
  EXPECT_TRUE(Exec(b, "INSERT INTO t VALUES (3)").ok());
  auto s = b->Sample();
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->in_recovery);
  EXPECT_EQ(s->timeline, 2);
}

TEST_F(ReplicationTest, DivergedOldPrimaryIsRewoundAndItsOwnWritesDiscarded) {
  Server* a = Primary("region-a", "127.0.0.1");
  // No autovacuum on the table: the only commits after the divergence are the test's own.
  ASSERT_TRUE(Exec(a,
                   "CREATE TABLE t (x int) WITH (autovacuum_enabled = off);"
                   "INSERT INTO t SELECT generate_series(1, 1000)")
                  .ok());
  Server* b = Replica("region-b", "127.0.0.2", "region-a");
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(WaitFor([&] { return CaughtUp(a, b); }, 10s));

  // b is promoted while a still runs (a partition): a goes on accepting writes.
  auto p = b->Promote(60s);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_TRUE(b->EnsureSlot("tandem_region_a").ok());
  ASSERT_TRUE(b->EnsureSlot("tandem_region_a").ok());  // idempotent
  ASSERT_TRUE(Exec(b, "INSERT INTO t VALUES (-1)").ok());
  constexpr int kLost = 5;
  for (int i = 0; i < kLost; ++i) {
    ASSERT_TRUE(Exec(a, "INSERT INTO t VALUES (" + std::to_string(2000 + i) + ")").ok());
  }
  EXPECT_EQ(Count(a, "t"), 1000 + kLost);
  Kill("region-a");

  auto info = a->Rejoin(UpstreamOf("region-b", "region-a"), 120s);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  RecordProperty("rejoin_seconds", std::to_string(info->seconds));
  EXPECT_EQ(info->method, "rewind") << info->detail;
  EXPECT_EQ(info->discarded_transactions, kLost) << info->detail;
  EXPECT_GT(info->discarded_bytes, 0);
  EXPECT_EQ(info->diverged_lsn, p->lsn);
  EXPECT_GT(info->seconds, 0);

  // a now has b's history: its own five rows are gone, b's row is there, and it streams.
  EXPECT_TRUE(WaitFor([&] { return Count(a, "t") == 1001; }, 10s)) << Count(a, "t");
  EXPECT_EQ(Count(a, "t WHERE x >= 2000"), 0);
  ASSERT_TRUE(Exec(b, "INSERT INTO t VALUES (-2)").ok());
  EXPECT_TRUE(WaitFor([&] { return Count(a, "t") == 1002; }, 10s));
  EXPECT_TRUE(WaitFor([&] { return CaughtUp(b, a); }, 10s));
  auto s = b->Sample();
  ASSERT_TRUE(s.ok());
  const ReplicaState* ra = FindReplica(*s, "region-a");
  ASSERT_NE(ra, nullptr);
  EXPECT_EQ(ra->state, "streaming");
  auto sa = a->Sample();
  ASSERT_TRUE(sa.ok());
  EXPECT_TRUE(sa->in_recovery);
  EXPECT_EQ(sa->timeline, 2);
  EXPECT_EQ(Exec(a, "INSERT INTO t VALUES (0)").code(), Code::kFailedPrecondition);
  // Its slot for b, from when it was the primary, would only hold WAL now.
  EXPECT_EQ(Count(a, "pg_replication_slots"), 0);
  // And a restart keeps it a replica.
  ASSERT_TRUE(a->Stop().ok());
  ASSERT_TRUE(a->Start(60s).ok());
  EXPECT_EQ(Exec(a, "INSERT INTO t VALUES (0)").code(), Code::kFailedPrecondition);
}

TEST_F(ReplicationTest, CleanSwitchoverLosesNothing) {
  Server* a = Primary("region-a", "127.0.0.1");
  ASSERT_TRUE(Exec(a, "CREATE TABLE t (x int)").ok());
  // Synchronous before the base backup: the replica's copy of postgresql.auto.conf has it.
  ASSERT_TRUE(a->SetSynchronous({"region-b"}).ok());
  Server* b = Replica("region-b", "127.0.0.2", "region-a");
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(Setting(b, "synchronous_standby_names"), "");
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(Exec(a, "INSERT INTO t VALUES (" + std::to_string(i) + ")").ok());
  }

  // Stop the primary cleanly, wait until the replica replayed all it got, promote it.
  ASSERT_TRUE(a->Stop().ok());
  uint64_t replayed = 0;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto s = b->Sample();
        if (!s.ok() || s->streaming || s->replay_lsn < s->receive_lsn) return false;
        bool still = s->replay_lsn == replayed;
        replayed = s->replay_lsn;
        return still;
      },
      30s));
  auto p = b->Promote(60s);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(Count(b, "t"), 10);
  // The promoted server does not wait for a standby named after itself.
  EXPECT_EQ(Setting(b, "synchronous_standby_names"), "");
  EXPECT_TRUE(Exec(b, "INSERT INTO t VALUES (10)").ok());
  ASSERT_TRUE(b->EnsureSlot("tandem_region_a").ok());

  auto info = a->Rejoin(UpstreamOf("region-b", "region-a"), 120s);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  RecordProperty("rejoin_seconds", std::to_string(info->seconds));
  EXPECT_TRUE(info->method == "none" || info->method == "rewind") << info->method;
  EXPECT_EQ(info->discarded_transactions, 0) << info->detail;
  EXPECT_EQ(info->discarded_bytes, 0) << info->detail;
  EXPECT_TRUE(WaitFor([&] { return Count(a, "t") == 11; }, 10s));
  EXPECT_TRUE(WaitFor([&] { return CaughtUp(b, a); }, 10s));
  // Its own synchronous setting stayed behind: a replica has none.
  EXPECT_EQ(Setting(a, "synchronous_standby_names"), "");

  // And back (failback): b stops cleanly, a is promoted, b rejoins.
  ASSERT_TRUE(b->Stop().ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        auto s = a->Sample();
        return s.ok() && !s->streaming && s->replay_lsn >= s->receive_lsn;
      },
      30s));
  ASSERT_TRUE(a->Promote(60s).ok());
  ASSERT_TRUE(a->EnsureSlot("tandem_region_b").ok());
  auto back = b->Rejoin(UpstreamOf("region-a", "region-b"), 120s);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->discarded_transactions, 0) << back->detail;
  ASSERT_TRUE(Exec(a, "INSERT INTO t VALUES (11)").ok());
  EXPECT_TRUE(WaitFor([&] { return Count(b, "t") == 12; }, 10s));
}

// With TLS, every TCP connection is TLS and verified: the base backup, the streaming replica's,
// pg_rewind's and any other client's. A connection without TLS, or that trusts another CA, is
// refused. The region's own connections go through the server's Unix socket, in a directory
// only PostgreSQL's user may enter: they never leave the machine.
TEST_F(ReplicationTest, OverTlsOnlyVerifiedConnectionsGetIn) {
  tls_ = true;
  Server* a = Primary("region-a", "127.0.0.1");
  ASSERT_TRUE(Exec(a, "CREATE TABLE t (x int)").ok());
  Server* b = Replica("region-b", "127.0.0.2", "region-a");
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(Exec(a, "INSERT INTO t VALUES (1)").ok());
  EXPECT_TRUE(WaitFor([&] { return Count(b, "t") == 1; }, 10s));

  const std::string socket_dir = root_ + "/region-a/pg/run";
  EXPECT_NE(a->Dsn("postgres").find("host='" + socket_dir + "'"), std::string::npos)
      << a->Dsn("postgres");
  struct stat st {};
  ASSERT_EQ(lstat(socket_dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  uid_t owner = geteuid();
  if (!tandem::testing::RunAsUser().empty()) {
    auto ids = LookupUser(tandem::testing::RunAsUser());
    ASSERT_TRUE(ids.ok());
    owner = ids->uid;
  }
  EXPECT_EQ(st.st_uid, owner);
  {
    ConnPtr c = Connect(a);
    ASSERT_NE(c, nullptr);
    auto own = c->Exec("SELECT (inet_client_addr() IS NULL)::text");
    ASSERT_TRUE(own.ok()) << own.status().ToString();
    EXPECT_EQ(own->Text(0, 0), "true") << "the region's own connection is not the Unix socket's";
    auto streams = c->Exec(
        "SELECT count(*) FROM pg_stat_replication r JOIN pg_stat_ssl s ON s.pid = r.pid "
        "WHERE s.ssl AND r.application_name = 'region-b'");
    ASSERT_TRUE(streams.ok()) << streams.status().ToString();
    EXPECT_EQ(streams->Int(0, 0), 1) << "the replica does not stream over TLS";
  }
  const LocalServerOptions& o = opts_["region-a"];
  const std::string tcp = "host=" + o.host + " port=" + std::to_string(o.port) +
                          " user=tandem dbname=postgres password=" + std::string(kPassword);
  auto verified = Conn::Connect(tcp + " sslmode=verify-full sslrootcert=" + root_ + "/ca.crt");
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  auto ssl = (*verified)->Exec("SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
  ASSERT_TRUE(ssl.ok()) << ssl.status().ToString();
  EXPECT_EQ(ssl->Text(0, 0), "true");
  auto refused = Conn::Connect(tcp + " sslmode=disable");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("no encryption"), std::string::npos)
      << refused.status().ToString();
  auto other = tls::CreateAuthority("someone else", std::chrono::hours(1));
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(WriteFileAtomic(root_ + "/other.crt", other->certificate).ok());
  auto untrusted = Conn::Connect(tcp + " sslmode=verify-full sslrootcert=" + root_ + "/other.crt");
  ASSERT_FALSE(untrusted.ok());
  EXPECT_NE(untrusted.status().message().find("certificate verify failed"), std::string::npos)
      << untrusted.status().ToString();

  // A switchover and a rejoin by pg_rewind, whose source connection is verified too.
  ASSERT_TRUE(a->Stop().ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        auto s = b->Sample();
        return s.ok() && !s->streaming && s->replay_lsn >= s->receive_lsn;
      },
      30s));
  ASSERT_TRUE(b->Promote(60s).ok());
  ASSERT_TRUE(Exec(b, "INSERT INTO t VALUES (2)").ok());
  ASSERT_TRUE(b->EnsureSlot("tandem_region_a").ok());
  auto info = a->Rejoin(UpstreamOf("region-b", "region-a"), 120s);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_TRUE(WaitFor([&] { return Count(a, "t") == 2; }, 10s));
}

TEST_F(ReplicationTest, RejoinFallsBackToABaseBackupWhenRewindCannot) {
  Server* a = Primary("region-a", "127.0.0.1");
  ASSERT_TRUE(Exec(a, "CREATE TABLE only_in_a (x int)").ok());
  // Another cluster altogether, made with initdb: pg_rewind refuses it.
  Server* c = Primary("region-c", "127.0.0.3");
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(Exec(c, "CREATE TABLE only_in_c (x int); INSERT INTO only_in_c VALUES (7)").ok());

  auto info = a->Rejoin(UpstreamOf("region-c", "region-a"), 120s);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  RecordProperty("rejoin_seconds", std::to_string(info->seconds));
  EXPECT_EQ(info->method, "base_backup");
  EXPECT_EQ(info->discarded_transactions, -1);
  EXPECT_NE(info->detail.find("different systems"), std::string::npos) << info->detail;
  EXPECT_FALSE(PathExists(opts_["region-a"].data_dir + ".partial"));
  EXPECT_FALSE(PathExists(opts_["region-a"].data_dir + ".old"));

  EXPECT_EQ(Count(a, "only_in_c"), 1);
  EXPECT_EQ(Count(a, "only_in_a"), -1);
  ASSERT_TRUE(Exec(c, "INSERT INTO only_in_c VALUES (8)").ok());
  EXPECT_TRUE(WaitFor([&] { return Count(a, "only_in_c") == 2; }, 10s));
  EXPECT_TRUE(WaitFor([&] { return CaughtUp(c, a); }, 10s));
}

TEST_F(ReplicationTest, ANewPasswordReachesThePrimarysRole) {
  Server* a = Primary("region-a", "127.0.0.1");
  ASSERT_TRUE(Exec(a, "CREATE TABLE t (x int)").ok());
  ASSERT_TRUE(a->Stop().ok());
  servers_.erase("region-a");

  // The same directory, another password (the pair's secret key changed).
  LocalServerOptions o = opts_["region-a"];
  o.password = "a-new-password";
  auto s = NewLocalServer(o);
  ASSERT_TRUE(s.ok());
  Server* again = s->get();
  servers_["region-a"] = std::move(s).value();
  ASSERT_TRUE(again->Init().ok());
  EXPECT_EQ(*ReadFile(root_ + "/region-a/pg/pg.password"), "a-new-password");
  ASSERT_TRUE(again->Start(60s).ok());
  EXPECT_NE(again->Dsn("postgres").find("a-new-password"), std::string::npos);
  EXPECT_EQ(Count(again, "t"), 0);
  EXPECT_FALSE(PathExists(root_ + "/region-a/pg/pg.password.old"));
  // A restart needs nothing more.
  ASSERT_TRUE(again->Stop().ok());
  ASSERT_TRUE(again->Start(60s).ok());
  EXPECT_EQ(Count(again, "t"), 0);
}

}  // namespace
}  // namespace tandem::pg
