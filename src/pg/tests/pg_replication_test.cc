// LSN text and the parsers of the tools' output, on output captured from PostgreSQL 15.
#include <gtest/gtest.h>

#include "pg/replication.h"
#include "pg/tools.h"

namespace tandem::pg {
namespace {

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

}  // namespace
}  // namespace tandem::pg
