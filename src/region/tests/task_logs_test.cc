// A region's task logs without the network: what a region receives from its peer, and what a
// region rejoining after a forced failover discards. (Shipping between two real regions is the
// pair end-to-end tests' part.)
#include "region/task_logs.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "base/fs.h"
#include "crypto/secret_box.h"
#include "logs/log_store.h"
#include "replication/chunk.h"

namespace tandem::region {
namespace {

using Json = nlohmann::json;

class TaskLogsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = TempDir::Create("tandem-task-logs");
    ASSERT_TRUE(t.ok());
    tmp_ = std::make_unique<TempDir>(std::move(t).value());
    cfg_.name = "region-a";
    cfg_.state_dir = tmp_->path();
  }

  std::unique_ptr<TaskLogs> Open(bool with_peer) {
    std::optional<TaskLogs::Peer> peer;
    // Nothing listens there: the shipper, paused anyway, never reaches it.
    if (with_peer) peer = TaskLogs::Peer{"http://127.0.0.1:9", "credential", "", [] { return 2; }};
    auto r = TaskLogs::Open(cfg_, peer, nullptr);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : nullptr;
  }

  static Json ChunkJson(const std::string& key, uint64_t offset, const std::string& data,
                        uint32_t checksum) {
    return {{"key", key},
            {"offset", offset},
            {"checksum", replication::ChecksumToHex(checksum)},
            {"data", Base64Encode(data)}};
  }

  static std::string Read(TaskLogs& logs, const std::string& key) {
    auto r = logs.store()->Read(key, 0, 1 << 20);
    return r.ok() ? r->data : "<" + r.status().ToString() + ">";
  }

  std::unique_ptr<TempDir> tmp_;
  RegionConfig cfg_;
};

TEST_F(TaskLogsTest, ReceivedChunksApplyOnceAndGapsAndDamageAreAnswered) {
  auto logs = Open(true);
  ASSERT_NE(logs, nullptr);
  const std::string key = "d/dag_id=x/run_id=r/task_id=t/attempt=1.log";
  Json body = {{"epoch", 2},
               {"from", "region-b"},
               {"chunks",
                {ChunkJson(key, 0, "hello ", replication::Crc32c("hello ")),
                 ChunkJson(key, 6, "world\n", replication::Crc32c("world\n")),
                 ChunkJson(key, 0, "hello ", replication::Crc32c("hello ")),  // again
                 ChunkJson(key, 40, "later", replication::Crc32c("later")),   // a gap
                 ChunkJson(key, 12, "bad", 12345)}}};                           // damaged
  auto r = logs->Receive(body.dump());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  Json results = Json::parse(*r)["results"];
  ASSERT_EQ(results.size(), 5u) << results;
  EXPECT_EQ(results[0]["ok"], true);
  EXPECT_EQ(results[1]["ok"], true);
  EXPECT_EQ(results[1]["size"], 12);
  EXPECT_EQ(results[2]["ok"], true) << "a duplicate is harmless";
  EXPECT_EQ(results[3]["code"], "gap");
  EXPECT_EQ(results[3]["size"], 12) << "the sender resends from what the receiver holds";
  EXPECT_EQ(results[4]["code"], "invalid");
  EXPECT_EQ(Read(*logs, key), "hello world\n");

  EXPECT_FALSE(logs->Receive("{\"chunks\": 3}").ok());
  auto sizes = logs->Sizes(Json{{"keys", {key, "d/none.log"}}}.dump());
  ASSERT_TRUE(sizes.ok()) << sizes.status().ToString();
  EXPECT_EQ(Json::parse(*sizes)["sizes"], (Json{{key, 12}, {"d/none.log", 0}}));
  EXPECT_FALSE(logs->Sizes("{\"keys\": [1]}").ok());
  EXPECT_FALSE(logs->Sizes("[]").ok());
  auto bad = logs->Receive(Json{{"epoch", 2}, {"chunks", {{{"key", key}}}}}.dump());
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(Json::parse(*bad)["results"][0]["code"], "invalid");
}

TEST_F(TaskLogsTest, ARejoiningRegionCutsWhatThePeerNeverReceived) {
  auto logs = Open(true);
  ASSERT_NE(logs, nullptr);
  const std::string received = "d/dag_id=x/run_id=r/task_id=a/attempt=1.log";
  const std::string own = "d/dag_id=x/run_id=r/task_id=b/attempt=1.log";
  // A log the peer sent (it holds it), then this region's own lines on top, never shipped.
  Json body = {{"epoch", 2},
               {"chunks", {ChunkJson(received, 0, "from the peer\n",
                                     replication::Crc32c("from the peer\n"))}}};
  ASSERT_TRUE(logs->Receive(body.dump()).ok());
  ASSERT_TRUE(logs->store()->Append(received, "mine 1\n").ok());
  ASSERT_TRUE(logs->store()->Append(own, "only here\n").ok());
  ASSERT_TRUE(logs->store()->Append(own, "only here too\n").ok());
  std::vector<LogSinkView> v = logs->Views();
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].sink, "peer");
  EXPECT_EQ(v[0].chunks_behind, 3u);

  auto said = logs->DiscardPeerBacklog();
  ASSERT_TRUE(said.ok()) << said.status().ToString();
  // The peer cannot be asked here (nothing listens): cut to what the journal says it acked.
  EXPECT_NE(said->find("31 bytes of task logs the new primary never received were discarded "
                       "from 2 logs"),
            std::string::npos)
      << *said;
  EXPECT_EQ(Read(*logs, received), "from the peer\n");
  auto gone = logs->store()->Read(own, 0, 100);
  EXPECT_TRUE(!gone.ok() || gone->data.empty()) << gone->data;
  EXPECT_EQ(logs->Views()[0].chunks_behind, 0u);
  // Appends go on at the right offsets afterwards.
  ASSERT_TRUE(logs->store()->Append(received, "next\n").ok());
  EXPECT_EQ(Read(*logs, received), "from the peer\nnext\n");
  auto again = logs->DiscardPeerBacklog();
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->find("5 bytes of task logs the new primary never received were discarded "
                        "from 1 logs"),
            std::string::npos)
      << *again;
  EXPECT_EQ(Read(*logs, received), "from the peer\n");
}

TEST_F(TaskLogsTest, AStandaloneRegionHasNoPeerBacklogAndCutsAppendsIntoChunks) {
  cfg_.task_logs.chunk_bytes = 1024;
  auto logs = Open(false);
  ASSERT_NE(logs, nullptr);
  EXPECT_TRUE(logs->Views().empty());
  const std::string key = "d/dag_id=x/run_id=r/task_id=t/attempt=1.log";
  const std::string big(5000, 'x');
  ASSERT_TRUE(logs->store()->Append(key, big).ok());
  EXPECT_EQ(Read(*logs, key), big);
  auto said = logs->DiscardPeerBacklog();
  ASSERT_TRUE(said.ok());
  EXPECT_TRUE(said->empty());
}

}  // namespace
}  // namespace tandem::region
