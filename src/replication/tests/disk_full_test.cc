// A full disk under the region's logs and log journal: appends fail with a clear error, nothing
// is journaled that is not in the store, and writing resumes when space is freed.
//
// The disk is a 256 KiB tmpfs mounted in a mount namespace of the test's own thread (unshare),
// so it needs root (CAP_SYS_ADMIN); without it the test is skipped and says why.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>

#include "base/clock.h"
#include "base/fs.h"
#include "logs/log_store.h"
#include "replication/chunk.h"
#include "replication/log_journal.h"
#include "replication/replicating_log_store.h"

namespace tandem::replication {
namespace {

class DiskFullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
    auto dir = TempDir::Create("tandem-disk-full");
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_.emplace(std::move(dir).value());
    disk_ = dir_->path() + "/disk";
    ASSERT_TRUE(MakeDirs(disk_, 0750).ok());
    if (unshare(CLONE_NEWNS) != 0) {
      GTEST_SKIP() << "cannot make a mount namespace: " << strerror(errno);
    }
    ASSERT_EQ(mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0) << strerror(errno);
    ASSERT_EQ(mount("tandem-test", disk_.c_str(), "tmpfs", 0, "size=256k"), 0) << strerror(errno);
    mounted_ = true;
  }
  void TearDown() override {
    store_.reset();
    journal_.reset();
    inner_.reset();
    if (mounted_) umount2(disk_.c_str(), MNT_DETACH);
  }

  void Open() {
    auto inner = logs::DirLogStore::Open(disk_ + "/logs");
    ASSERT_TRUE(inner.ok()) << inner.status().ToString();
    inner_ = std::move(inner).value();
    JournalOptions jo;
    jo.cursors = {{"peer", true}};
    jo.sync_interval = Duration::zero();
    auto journal = LogJournal::Open(disk_ + "/journal", jo, RealClock());
    ASSERT_TRUE(journal.ok()) << journal.status().ToString();
    journal_ = std::move(journal).value();
    store_ = std::make_unique<ReplicatingLogStore>(*inner_, *journal_);
  }

  std::optional<TempDir> dir_;
  std::string disk_;
  bool mounted_ = false;
  std::unique_ptr<logs::DirLogStore> inner_;
  LogJournalPtr journal_;
  std::unique_ptr<ReplicatingLogStore> store_;
};

TEST_F(DiskFullTest, AppendsFailClearlyAndResumeWhenSpaceIsFreed) {
  ASSERT_NO_FATAL_FAILURE(Open());
  const std::string line(4000, 'x');
  Status failed;
  int written = 0;
  for (int i = 0; i < 200 && failed.ok(); ++i) {
    failed = store_->Append("d/dag_id=a/run_id=r/task_id=t/attempt=" + std::to_string(i % 3) +
                                ".log",
                            line);
    if (failed.ok()) ++written;
  }
  ASSERT_FALSE(failed.ok()) << "256 KiB held 200 appends of 4,000 bytes";
  EXPECT_GT(written, 10);
  EXPECT_NE(failed.message().find("No space left on device"), std::string::npos)
      << failed.ToString();

  // Every journaled chunk is in the store with the bytes it was journaled with; whatever a
  // failed append left behind is not journaled (the receiver asks for it as a gap).
  auto pending = journal_->ReadPending("peer", 100000, uint64_t{1} << 30);
  ASSERT_TRUE(pending.ok()) << pending.status().ToString();
  EXPECT_EQ(pending->records.size(), static_cast<size_t>(written));
  for (const JournalRecord& r : pending->records) {
    auto bytes = inner_->Read(r.key, r.offset, r.length);
    ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
    EXPECT_EQ(Crc32c(bytes->data), r.checksum) << r.key << " at " << r.offset;
  }

  // Space freed (the logs of one try removed): appends go on, at the object's real end.
  ASSERT_TRUE(store_->Remove("d/dag_id=a/run_id=r/task_id=t/attempt=0.log").ok());
  ASSERT_TRUE(journal_->Acknowledge("peer", journal_->last_seq()).ok());
  ASSERT_TRUE(journal_->Trim().ok());
  const std::string key = "d/dag_id=a/run_id=r/task_id=t/attempt=1.log";
  Status again = store_->Append(key, "after\n");
  ASSERT_TRUE(again.ok()) << again.ToString();
  auto head = inner_->Read(key, 0, 0);
  ASSERT_TRUE(head.ok());
  auto last = journal_->ReadPending("peer", 10, 1 << 20);
  ASSERT_TRUE(last.ok());
  ASSERT_EQ(last->records.size(), 1u);
  EXPECT_EQ(last->records[0].offset + last->records[0].length, head->size);
}

}  // namespace
}  // namespace tandem::replication
