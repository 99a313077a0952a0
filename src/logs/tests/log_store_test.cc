#include "logs/log_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "base/fs.h"

namespace tandem::logs {
namespace {

class DirLogStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("tandem-logs-test");
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_.emplace(std::move(dir).value());
    root_ = dir_->path() + "/logs";
    auto store = DirLogStore::Open(root_);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
  }

  std::string ReadAll(const std::string& key) {
    auto chunk = store_->Read(key, 0, 1 << 30);
    EXPECT_TRUE(chunk.ok()) << chunk.status().ToString();
    return chunk.ok() ? chunk->data : "";
  }

  std::optional<TempDir> dir_;
  std::string root_;
  std::unique_ptr<DirLogStore> store_;
};

TEST(TaskLogKeyTest, BuildsAirflowsLayout) {
  auto key = TaskLogKey("0b6e", "etl.daily", "scheduled__2024-01-01T00:00:00+00:00", "load", 2);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(*key,
            "0b6e/dag_id=etl.daily/run_id=scheduled__2024-01-01T00:00:00+00:00/task_id=load/"
            "attempt=2.log");
  EXPECT_TRUE(CheckKey(*key).ok());
  EXPECT_TRUE(TaskLogKey("d", "dag", "manual~1", "t", 0).ok());
}

TEST(TaskLogKeyTest, RejectsEveryBadIdKind) {
  const std::string long_id(251, 'a');
  const std::vector<std::string> bad = {"",      "a/b", "..",   "a..b", std::string("a\0b", 3),
                                        long_id, "a b", "a\\b", "é"};
  for (const std::string& id : bad) {
    SCOPED_TRACE(testing::PrintToString(id));
    EXPECT_EQ(TaskLogKey(id, "d", "r", "t", 1).status().code(), Code::kInvalidArgument);
    EXPECT_EQ(TaskLogKey("x", id, "r", "t", 1).status().code(), Code::kInvalidArgument);
    EXPECT_EQ(TaskLogKey("x", "d", id, "t", 1).status().code(), Code::kInvalidArgument);
    EXPECT_EQ(TaskLogKey("x", "d", "r", id, 1).status().code(), Code::kInvalidArgument);
  }
  // Run ids alone may hold ':', '+', '~'.
  for (const char* id : {"a:b", "a+b", "a~b"}) {
    EXPECT_TRUE(TaskLogKey("x", "d", id, "t", 1).ok()) << id;
    EXPECT_FALSE(TaskLogKey("x", id, "r", "t", 1).ok()) << id;
    EXPECT_FALSE(TaskLogKey("x", "d", "r", id, 1).ok()) << id;
  }
  EXPECT_TRUE(TaskLogKey("x", std::string(250, 'a'), "r", "t", 1).ok());
  EXPECT_FALSE(TaskLogKey(".", "d", "r", "t", 1).ok());  // a "." component
  EXPECT_FALSE(TaskLogKey("x", "d", "r", "t", -1).ok());
}

TEST(CheckKeyTest, RefusesKeysThatCouldLeaveTheStore) {
  EXPECT_TRUE(CheckKey("a").ok());
  EXPECT_TRUE(CheckKey("a/b.c/d..e").ok());
  for (const std::string& key :
       {std::string(""), std::string("/a"), std::string("a//b"), std::string("a/"),
        std::string("./a"), std::string("a/./b"), std::string("../a"), std::string("a/.."),
        std::string("a\\b"), std::string("a\0b", 3)}) {
    EXPECT_EQ(CheckKey(key).code(), Code::kInvalidArgument) << testing::PrintToString(key);
  }
}

TEST_F(DirLogStoreTest, AppendsAndReadsBack) {
  ASSERT_TRUE(store_->Append("d/run/t.log", "hello ").ok());
  ASSERT_TRUE(store_->Append("d/run/t.log", "world\n").ok());
  ASSERT_TRUE(store_->Append("d/run/t.log", "").ok());
  EXPECT_EQ(ReadAll("d/run/t.log"), "hello world\n");

  struct stat st;
  ASSERT_EQ(stat((root_ + "/d/run/t.log").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777 & ~0640U, 0U);  // at most 0640
  ASSERT_EQ(stat((root_ + "/d/run").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777 & ~0750U, 0U);  // at most 0750

  // An empty append still creates the object.
  ASSERT_TRUE(store_->Append("empty.log", "").ok());
  auto empty = store_->Read("empty.log", 0, 10);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->size, 0U);
  EXPECT_EQ(empty->data, "");

  // Binary data survives.
  std::string binary("\0\x01\xff\n", 4);
  ASSERT_TRUE(store_->Append("bin", binary).ok());
  EXPECT_EQ(ReadAll("bin"), binary);
}

TEST_F(DirLogStoreTest, ReadsFromOffsets) {
  ASSERT_TRUE(store_->Append("k", "0123456789").ok());
  auto c = store_->Read("k", 3, 4);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->data, "3456");
  EXPECT_EQ(c->next_offset, 7U);
  EXPECT_EQ(c->size, 10U);

  c = store_->Read("k", c->next_offset, 100);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->data, "789");
  EXPECT_EQ(c->next_offset, 10U);

  // At and past the end: empty, and the object's size still reported.
  for (uint64_t off : {10U, 11U, 1000U}) {
    c = store_->Read("k", off, 100);
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->data, "");
    EXPECT_EQ(c->next_offset, off);
    EXPECT_EQ(c->size, 10U);
  }
  c = store_->Read("k", 0, 0);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->data, "");
  EXPECT_EQ(c->next_offset, 0U);

  // A reader that follows next_offset sees what is appended later.
  ASSERT_TRUE(store_->Append("k", "ab").ok());
  c = store_->Read("k", 10, 100);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->data, "ab");
  EXPECT_EQ(c->size, 12U);
}

TEST_F(DirLogStoreTest, MissingObjectsAreNotFoundAndRemoveIsIdempotent) {
  EXPECT_EQ(store_->Read("nope.log", 0, 10).status().code(), Code::kNotFound);
  EXPECT_EQ(store_->Read("no/such/dir.log", 0, 10).status().code(), Code::kNotFound);
  EXPECT_TRUE(store_->Remove("no/such/dir.log").ok());

  ASSERT_TRUE(store_->Append("a/b.log", "x").ok());
  EXPECT_TRUE(store_->Remove("a/b.log").ok());
  EXPECT_EQ(store_->Read("a/b.log", 0, 10).status().code(), Code::kNotFound);
  EXPECT_TRUE(store_->Remove("a/b.log").ok());
}

TEST_F(DirLogStoreTest, EveryOperationRefusesBadKeys) {
  for (const std::string& key :
       {std::string(""), std::string("/etc/passwd"), std::string("../escape"),
        std::string("a/../../escape"), std::string("a//b"), std::string("a\\b"),
        std::string("a\0b", 3)}) {
    SCOPED_TRACE(testing::PrintToString(key));
    EXPECT_EQ(store_->Append(key, "x").code(), Code::kInvalidArgument);
    EXPECT_EQ(store_->Read(key, 0, 10).status().code(), Code::kInvalidArgument);
    EXPECT_EQ(store_->Remove(key).code(), Code::kInvalidArgument);
  }
  EXPECT_FALSE(PathExists(dir_->path() + "/escape"));
}

TEST_F(DirLogStoreTest, RefusesSymbolicLinksInTheTree) {
  const std::string outside = dir_->path() + "/outside";
  ASSERT_TRUE(MakeDirs(outside, 0750).ok());
  ASSERT_TRUE(WriteFileAtomic(outside + "/secret", "secret").ok());

  // A directory link in the middle of a key.
  ASSERT_EQ(symlink(outside.c_str(), (root_ + "/dep").c_str()), 0);
  EXPECT_EQ(store_->Append("dep/new.log", "x").code(), Code::kPermissionDenied);
  EXPECT_EQ(store_->Read("dep/secret", 0, 10).status().code(), Code::kPermissionDenied);
  EXPECT_EQ(store_->Remove("dep/secret").code(), Code::kPermissionDenied);
  EXPECT_FALSE(PathExists(outside + "/new.log"));
  EXPECT_TRUE(PathExists(outside + "/secret"));

  // A link as the object itself.
  ASSERT_TRUE(MakeDirs(root_ + "/d", 0750).ok());
  ASSERT_EQ(symlink((outside + "/secret").c_str(), (root_ + "/d/t.log").c_str()), 0);
  EXPECT_EQ(store_->Append("d/t.log", "x").code(), Code::kPermissionDenied);
  EXPECT_EQ(store_->Read("d/t.log", 0, 10).status().code(), Code::kPermissionDenied);
  EXPECT_EQ(*ReadFile(outside + "/secret"), "secret");
}

TEST_F(DirLogStoreTest, RefusesWhatIsNotAFile) {
  ASSERT_EQ(mkfifo((root_ + "/fifo").c_str(), 0600), 0);
  EXPECT_FALSE(store_->Read("fifo", 0, 10).ok());  // and does not block
  ASSERT_TRUE(store_->Append("dir/x.log", "x").ok());
  EXPECT_FALSE(store_->Read("dir", 0, 10).ok());
  EXPECT_FALSE(store_->Append("dir/x.log/y", "x").ok());
}

TEST_F(DirLogStoreTest, ConcurrentAppendsToDistinctKeysAndOneKey) {
  constexpr int kThreads = 8;
  constexpr int kAppends = 200;
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t] {
      const std::string own = "dep/dag_id=d/run_id=r/task_id=t" + std::to_string(t) + "/a.log";
      const std::string line = std::string(100, static_cast<char>('a' + t)) + "\n";
      for (int i = 0; i < kAppends; ++i) {
        EXPECT_TRUE(store_->Append(own, std::to_string(i) + "\n").ok());
        EXPECT_TRUE(store_->Append("dep/shared.log", line).ok());
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
}  // namespace tandem::logs
