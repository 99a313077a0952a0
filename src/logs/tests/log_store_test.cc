#include "logs/log_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "base/fs.h"
#include "logs/tests/log_store_contract.h"

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

TEST_F(DirLogStoreTest, CreatesFilesAndDirectoriesPrivately) {
  ASSERT_TRUE(store_->Append("d/run/t.log", "hello").ok());
  EXPECT_EQ(ReadAll("d/run/t.log"), "hello");
  struct stat st;
  ASSERT_EQ(stat((root_ + "/d/run/t.log").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777 & ~0640U, 0U);  // at most 0640
  ASSERT_EQ(stat((root_ + "/d/run").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777 & ~0750U, 0U);  // at most 0750
}

TEST_F(DirLogStoreTest, BadKeysDoNotEscapeTheRoot) {
  for (const std::string& key : {std::string("../escape"), std::string("a/../../escape")}) {
    EXPECT_EQ(store_->Append(key, "x").code(), Code::kInvalidArgument);
  }
  EXPECT_FALSE(PathExists(dir_->path() + "/escape"));
}

// Run once with openat2 and once walking the key a directory at a time (kernels without it).
class DirLogStoreLinkTest : public DirLogStoreTest, public ::testing::WithParamInterface<bool> {
 protected:
  void SetUp() override {
    SetOpenat2ForTesting(GetParam());
    DirLogStoreTest::SetUp();
  }
  void TearDown() override { SetOpenat2ForTesting(true); }
};

TEST_P(DirLogStoreLinkTest, RefusesSymbolicLinksInTheTree) {
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

TEST_P(DirLogStoreLinkTest, CreatesDirectoriesAndReadsBack) {
  ASSERT_TRUE(store_->Append("dep/dag_id=a/run_id=r/task_id=t/attempt=1.log", "one ").ok());
  ASSERT_TRUE(store_->Append("dep/dag_id=a/run_id=r/task_id=t/attempt=1.log", "two").ok());
  EXPECT_EQ(ReadAll("dep/dag_id=a/run_id=r/task_id=t/attempt=1.log"), "one two");
  EXPECT_EQ(store_->Read("dep/dag_id=a/none.log", 0, 10).status().code(), Code::kNotFound);
  EXPECT_TRUE(store_->Remove("dep/dag_id=a/run_id=r/task_id=t/attempt=1.log").ok());
  EXPECT_EQ(store_->Read("dep/dag_id=a/run_id=r/task_id=t/attempt=1.log", 0, 10).status().code(),
            Code::kNotFound);
}

INSTANTIATE_TEST_SUITE_P(OpenPaths, DirLogStoreLinkTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Openat2" : "Walk"; });

TEST_F(DirLogStoreTest, RefusesWhatIsNotAFile) {
  ASSERT_EQ(mkfifo((root_ + "/fifo").c_str(), 0600), 0);
  EXPECT_FALSE(store_->Read("fifo", 0, 10).ok());  // and does not block
  ASSERT_TRUE(store_->Append("dir/x.log", "x").ok());
  EXPECT_FALSE(store_->Read("dir", 0, 10).ok());
  EXPECT_FALSE(store_->Append("dir/x.log/y", "x").ok());
}

TEST_F(DirLogStoreTest, AKeptFileRemovedBehindItsBackIsOpenedAgain) {
  ASSERT_TRUE(store_->Append("d/run/a.log", "one\n").ok());
  EXPECT_EQ(ReadAll("d/run/a.log"), "one\n");
  // Pruned by hand while the store holds it open: the next append creates the file again
  // rather than writing into the removed one.
  ASSERT_EQ(unlink((root_ + "/d/run/a.log").c_str()), 0);
  EXPECT_EQ(store_->Read("d/run/a.log", 0, 10).status().code(), Code::kNotFound);
  ASSERT_TRUE(store_->Append("d/run/a.log", "two\n").ok());
  EXPECT_EQ(ReadAll("d/run/a.log"), "two\n");
  auto on_disk = ReadFile(root_ + "/d/run/a.log");
  ASSERT_TRUE(on_disk.ok());
  EXPECT_EQ(*on_disk, "two\n");
  // Remove() forgets the kept file too.
  ASSERT_TRUE(store_->Remove("d/run/a.log").ok());
  EXPECT_EQ(store_->Read("d/run/a.log", 0, 10).status().code(), Code::kNotFound);
}

TEST_F(DirLogStoreTest, MoreLogsThanItKeepsOpenAllStayWhole) {
  auto small = DirLogStore::Open(root_ + "/small", 2);
  ASSERT_TRUE(small.ok()) << small.status().ToString();
  for (int round = 0; round < 3; ++round) {
    for (int k = 0; k < 5; ++k) {
      ASSERT_TRUE((*small)->Append("k" + std::to_string(k) + ".log", std::to_string(round)).ok());
    }
  }
  for (int k = 0; k < 5; ++k) {
    auto c = (*small)->Read("k" + std::to_string(k) + ".log", 0, 100);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    EXPECT_EQ(c->data, "012");
  }
}

// The LogStore contract against files under a temporary directory.
class DirBackend final : public test::ContractBackend {
 public:
  static Result<std::unique_ptr<test::ContractBackend>> Make() {
    ASSIGN_OR_RETURN(TempDir dir, TempDir::Create("tandem-logs-contract"));
    auto backend = std::unique_ptr<DirBackend>(new DirBackend(std::move(dir)));
    ASSIGN_OR_RETURN(backend->store_, DirLogStore::Open(backend->root()));
    return std::unique_ptr<test::ContractBackend>(std::move(backend));
  }
  LogStore& store() override { return *store_; }
  Result<LogStorePtr> OpenAnother() override {
    ASSIGN_OR_RETURN(auto other, DirLogStore::Open(root()));
    return LogStorePtr(std::move(other));
  }

 private:
  explicit DirBackend(TempDir dir) : dir_(std::move(dir)) {}
  std::string root() const { return dir_.path() + "/logs"; }
  TempDir dir_;
  std::unique_ptr<DirLogStore> store_;
};

using test::LogStoreContractTest;
INSTANTIATE_TEST_SUITE_P(Dir, LogStoreContractTest,
                         ::testing::Values(test::ContractParam{"dir", &DirBackend::Make}),
                         test::ContractParamName);

}  // namespace
}  // namespace tandem::logs
