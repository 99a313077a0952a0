#include "base/fs.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "base/net.h"
#include "base/process.h"

namespace tandem {
namespace {

TEST(FsTest, WriteAtomicThenRead) {
  auto dir = TempDir::Create("tandem-fs");
  ASSERT_TRUE(dir.ok());
  std::string p = dir->path() + "/a/b";
  ASSERT_TRUE(MakeDirs(p).ok());
  ASSERT_TRUE(WriteFileAtomic(p + "/f", "data").ok());
  EXPECT_EQ(*ReadFile(p + "/f"), "data");
  EXPECT_EQ(ReadFile(p + "/missing").status().code(), Code::kNotFound);
}

TEST(FsTest, TempDirIsRemoved) {
  std::string path;
  {
    auto dir = TempDir::Create("tandem-fs");
    ASSERT_TRUE(dir.ok());
    path = dir->path();
    ASSERT_TRUE(WriteFileAtomic(path + "/x", "1").ok());
  }
  EXPECT_FALSE(PathExists(path));
}

TEST(FsTest, UnwritableDirectoryIsReported) {
  if (RunningAsRoot()) {
    // Root writes anywhere; a read-only path still refuses.
    EXPECT_FALSE(EnsureWritableDir("/proc/tandem-state").ok());
    return;
  }
  auto dir = TempDir::Create("tandem-fs");
  ASSERT_TRUE(dir.ok());
  chmod(dir->path().c_str(), 0500);
  Status s = EnsureWritableDir(dir->path() + "/state");
  chmod(dir->path().c_str(), 0700);
  EXPECT_FALSE(s.ok());
}

TEST(NetTest, PortInUseIsReported) {
  auto port = PickFreePort();
  ASSERT_TRUE(port.ok());
  EXPECT_TRUE(CheckPortFree("127.0.0.1", *port).ok());
  EXPECT_FALSE(CheckPortFree("127.0.0.1.5", *port).ok());
}

}  // namespace
}  // namespace tandem
