#include "logs/tests/log_store_contract.h"

#include <random>
#include <thread>
#include <vector>

namespace tandem::logs::test {

void LogStoreContractTest::SetUp() {
  auto backend = GetParam().make();
  ASSERT_TRUE(backend.ok()) << backend.status().ToString();
  backend_ = std::move(backend).value();
}

std::string LogStoreContractTest::ReadAll(LogStore& s, const std::string& key, uint64_t piece) {
  std::string out;
  while (true) {
    auto chunk = s.Read(key, out.size(), piece);
    EXPECT_TRUE(chunk.ok()) << key << ": " << chunk.status().ToString();
    if (!chunk.ok()) return out;
    EXPECT_EQ(chunk->next_offset, out.size() + chunk->data.size());
    out += chunk->data;
    if (chunk->data.empty() || out.size() >= chunk->size) return out;
  }
}

namespace {

TEST_P(LogStoreContractTest, AppendsAndReadsBack) {
  ASSERT_TRUE(store().Append("d/run/t.log", "hello ").ok());
  ASSERT_TRUE(store().Append("d/run/t.log", "world\n").ok());
  ASSERT_TRUE(store().Append("d/run/t.log", "").ok());
  EXPECT_EQ(ReadAll("d/run/t.log"), "hello world\n");

  // An empty append still creates the object, and later data follows it.
  ASSERT_TRUE(store().Append("empty.log", "").ok());
  auto empty = store().Read("empty.log", 0, 10);
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_EQ(empty->size, 0U);
  EXPECT_EQ(empty->data, "");
  ASSERT_TRUE(store().Append("empty.log", "").ok());
  ASSERT_TRUE(store().Append("empty.log", "x").ok());
  ASSERT_TRUE(store().Append("empty.log", "y").ok());
  EXPECT_EQ(ReadAll("empty.log"), "xy");

  // Binary data survives.
  std::string binary("\0\x01\xff\n", 4);
  ASSERT_TRUE(store().Append("bin", binary).ok());
  EXPECT_EQ(ReadAll("bin"), binary);
}

TEST_P(LogStoreContractTest, ReadsFromOffsets) {
  ASSERT_TRUE(store().Append("k", "01234").ok());
  ASSERT_TRUE(store().Append("k", "56789").ok());
  auto c = store().Read("k", 3, 4);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->data, "3456");
  EXPECT_EQ(c->next_offset, 7U);
  EXPECT_EQ(c->size, 10U);

  c = store().Read("k", c->next_offset, 100);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->data, "789");
  EXPECT_EQ(c->next_offset, 10U);

  // At and past the end: empty, and the object's size still reported.
  for (uint64_t off : {10U, 11U, 1000U}) {
    c = store().Read("k", off, 100);
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->data, "");
    EXPECT_EQ(c->next_offset, off);
    EXPECT_EQ(c->size, 10U);
  }
  c = store().Read("k", 0, 0);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->data, "");
  EXPECT_EQ(c->next_offset, 0U);

  // A reader that follows next_offset sees what is appended later.
  ASSERT_TRUE(store().Append("k", "ab").ok());
  c = store().Read("k", 10, 100);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->data, "ab");
  EXPECT_EQ(c->size, 12U);
}

TEST_P(LogStoreContractTest, LargeAppendsReadInPieces) {
  std::mt19937 rng(7);
  std::string big(5 << 20, '\0');
  for (char& ch : big) ch = static_cast<char>(rng());
  ASSERT_TRUE(store().Append("big.log", "head|").ok());
  ASSERT_TRUE(store().Append("big.log", big).ok());
  ASSERT_TRUE(store().Append("big.log", "|tail").ok());
  const std::string want = "head|" + big + "|tail";
  EXPECT_TRUE(ReadAll(store(), "big.log") == want);
  // Pieces that start and end inside chunks.
  EXPECT_TRUE(ReadAll(store(), "big.log", (1 << 20) + 7) == want);
  auto mid = store().Read("big.log", 3, 10);
  ASSERT_TRUE(mid.ok());
  EXPECT_EQ(mid->data, want.substr(3, 10));
}

TEST_P(LogStoreContractTest, ManySmallAppends) {
  std::string want;
  for (int i = 0; i < 60; ++i) {
    std::string line = "line " + std::to_string(i) + std::string(static_cast<size_t>(i % 7), '.');
    ASSERT_TRUE(store().Append("many.log", line).ok()) << i;
    want += line;
  }
  EXPECT_EQ(ReadAll("many.log"), want);
  // Every offset and a few lengths, across chunk boundaries.
  for (uint64_t off = 0; off <= want.size(); off += 13) {
    for (uint64_t len : {1U, 9U, 40U}) {
      auto c = store().Read("many.log", off, len);
      ASSERT_TRUE(c.ok()) << c.status().ToString();
      EXPECT_EQ(c->data, want.substr(off, len)) << off << "+" << len;
      EXPECT_EQ(c->size, want.size());
    }
  }
}

TEST_P(LogStoreContractTest, MissingObjectsAreNotFoundAndRemoveIsIdempotent) {
  EXPECT_EQ(store().Read("nope.log", 0, 10).status().code(), Code::kNotFound);
  EXPECT_EQ(store().Read("no/such/dir.log", 0, 10).status().code(), Code::kNotFound);
  EXPECT_TRUE(store().Remove("no/such/dir.log").ok());

  ASSERT_TRUE(store().Append("a/b.log", "x").ok());
  ASSERT_TRUE(store().Append("a/b.log", "y").ok());
  EXPECT_TRUE(store().Remove("a/b.log").ok());
  EXPECT_EQ(store().Read("a/b.log", 0, 10).status().code(), Code::kNotFound);
  EXPECT_TRUE(store().Remove("a/b.log").ok());
  // A removed object starts again from nothing.
  ASSERT_TRUE(store().Append("a/b.log", "z").ok());
  EXPECT_EQ(ReadAll("a/b.log"), "z");
}

TEST_P(LogStoreContractTest, EveryOperationRefusesBadKeys) {
  for (const std::string& key :
       {std::string(""), std::string("/etc/passwd"), std::string("../escape"),
        std::string("a/../../escape"), std::string("a//b"), std::string("a\\b"),
        std::string("a/./b"), std::string("a/"), std::string("a\0b", 3)}) {
    SCOPED_TRACE(::testing::PrintToString(key));
    EXPECT_EQ(store().Append(key, "x").code(), Code::kInvalidArgument);
    EXPECT_EQ(store().Read(key, 0, 10).status().code(), Code::kInvalidArgument);
    EXPECT_EQ(store().Remove(key).code(), Code::kInvalidArgument);
  }
}

TEST_P(LogStoreContractTest, TaskLogKeysWork) {
  auto key = TaskLogKey("0b6e", "etl.daily", "scheduled__2024-01-01T00:00:00+00:00", "load", 2);
  ASSERT_TRUE(key.ok());
  ASSERT_TRUE(store().Append(*key, "a").ok());
  ASSERT_TRUE(store().Append(*key, "b").ok());
  EXPECT_EQ(ReadAll(*key), "ab");
  auto other = TaskLogKey("0b6e", "etl.daily", "manual~1", "load", 3);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(store().Read(*other, 0, 10).status().code(), Code::kNotFound);
}

TEST_P(LogStoreContractTest, AnotherWritersAppendsAreKept) {
  auto other = backend_->OpenAnother();
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  ASSERT_TRUE(store().Append("shared.log", "1").ok());
  ASSERT_TRUE((*other)->Append("shared.log", "2").ok());
  ASSERT_TRUE(store().Append("shared.log", "3").ok());
  ASSERT_TRUE((*other)->Append("shared.log", "4").ok());
  EXPECT_EQ(ReadAll("shared.log"), "1234");
  EXPECT_EQ(ReadAll(**other, "shared.log"), "1234");
  // A remove by one is seen by the other.
  ASSERT_TRUE((*other)->Remove("shared.log").ok());
  EXPECT_EQ(store().Read("shared.log", 0, 1).status().code(), Code::kNotFound);
}

TEST_P(LogStoreContractTest, ConcurrentAppendsToDistinctKeysAndOneKey) {
  constexpr int kThreads = 6;
  constexpr int kAppends = 25;
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t] {
      const std::string own = "dep/dag_id=d/run_id=r/task_id=t" + std::to_string(t) + "/a.log";
      const std::string line = std::string(100, static_cast<char>('a' + t)) + "\n";
      for (int i = 0; i < kAppends; ++i) {
        EXPECT_TRUE(store().Append(own, std::to_string(i) + "\n").ok());
        EXPECT_TRUE(store().Append("dep/shared.log", line).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    std::string want;
    for (int i = 0; i < kAppends; ++i) want += std::to_string(i) + "\n";
    EXPECT_EQ(ReadAll("dep/dag_id=d/run_id=r/task_id=t" + std::to_string(t) + "/a.log"), want);
  }
  // Each append to the shared key lands whole.
  std::string shared = ReadAll("dep/shared.log");
  ASSERT_EQ(shared.size(), size_t{kThreads} * kAppends * 101);
  for (size_t off = 0; off < shared.size(); off += 101) {
    ASSERT_EQ(shared.substr(off, 100), std::string(100, shared[off])) << off;
    ASSERT_EQ(shared[off + 100], '\n');
  }
}

}  // namespace
}  // namespace tandem::logs::test
