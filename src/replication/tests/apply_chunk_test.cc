#include "replication/apply_chunk.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>

#include "base/fs.h"

namespace tandem::replication {
namespace {

class ApplyChunkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("tandem-apply-chunk");
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_.emplace(std::move(dir).value());
    auto store = logs::DirLogStore::Open(dir_->path() + "/logs");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
  }

  std::string Contents(const std::string& key) {
    auto c = store_->Read(key, 0, 1 << 20);
    if (!c.ok()) return "<" + c.status().ToString() + ">";
    return c->data;
  }

  std::optional<TempDir> dir_;
  std::unique_ptr<logs::DirLogStore> store_;
};

TEST_F(ApplyChunkTest, AppendsAtTheEndAndCreatesTheObject) {
  ApplyResult r = ApplyChunk(*store_, MakeChunk("d/t.log", 0, "one\n"));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.receiver_size, 4u);
  r = ApplyChunk(*store_, MakeChunk("d/t.log", 4, "two\n"));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.receiver_size, 8u);
  EXPECT_EQ(Contents("d/t.log"), "one\ntwo\n");
}

TEST_F(ApplyChunkTest, DuplicatesChangeNothing) {
  ASSERT_TRUE(store_->Append("d/t.log", "one\ntwo\n").ok());
  for (const Chunk& c : {MakeChunk("d/t.log", 0, "one\ntwo\n"), MakeChunk("d/t.log", 4, "two\n"),
                         MakeChunk("d/t.log", 0, "one\n"), MakeChunk("d/t.log", 8, "")}) {
    ApplyResult r = ApplyChunk(*store_, c);
    EXPECT_TRUE(r.status.ok()) << r.status.ToString();
    EXPECT_EQ(r.receiver_size, 8u);
  }
  EXPECT_EQ(Contents("d/t.log"), "one\ntwo\n");
}

TEST_F(ApplyChunkTest, CompletesATornEarlierWrite) {
  // An earlier apply of "two\nthree\n" stopped after "tw".
  ASSERT_TRUE(store_->Append("d/t.log", "one\ntw").ok());
  ApplyResult r = ApplyChunk(*store_, MakeChunk("d/t.log", 4, "two\nthree\n"));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.receiver_size, 14u);
  EXPECT_EQ(Contents("d/t.log"), "one\ntwo\nthree\n");
}

TEST_F(ApplyChunkTest, AGapIsRefusedWithTheReceiversSize) {
  ASSERT_TRUE(store_->Append("d/t.log", "one\n").ok());
  ApplyResult r = ApplyChunk(*store_, MakeChunk("d/t.log", 8, "three\n"));
  EXPECT_EQ(r.status.code(), Code::kFailedPrecondition);
  EXPECT_TRUE(r.gap());
  EXPECT_EQ(r.receiver_size, 4u);
  EXPECT_NE(r.status.message().find("resend from 4"), std::string::npos) << r.status.message();
  // An object the receiver does not have at all.
  r = ApplyChunk(*store_, MakeChunk("d/new.log", 5, "x"));
  EXPECT_TRUE(r.gap());
  EXPECT_EQ(r.receiver_size, 0u);
  EXPECT_EQ(Contents("d/t.log"), "one\n");
  EXPECT_EQ(store_->Read("d/new.log", 0, 10).status().code(), Code::kNotFound);
}

TEST_F(ApplyChunkTest, DifferentBytesAreAConflictAndWriteNothing) {
  ASSERT_TRUE(store_->Append("d/t.log", "one\ntwo\n").ok());
  ApplyResult r = ApplyChunk(*store_, MakeChunk("d/t.log", 4, "TWO\nthree\n"));
  EXPECT_EQ(r.status.code(), Code::kAlreadyExists);
  EXPECT_TRUE(r.conflict());
  EXPECT_EQ(r.receiver_size, 8u);
  EXPECT_NE(r.status.message().find("at byte 4"), std::string::npos) << r.status.message();
  // The same with the difference past a matching prefix of the present tail.
  r = ApplyChunk(*store_, MakeChunk("d/t.log", 4, "twX\nthree\n"));
  EXPECT_TRUE(r.conflict());
  EXPECT_NE(r.status.message().find("at byte 6"), std::string::npos) << r.status.message();
  EXPECT_EQ(Contents("d/t.log"), "one\ntwo\n");
}

TEST_F(ApplyChunkTest, ABadChecksumWritesNothing) {
  Chunk c = MakeChunk("d/t.log", 0, "one\n");
  c.data = "0ne\n";
  ApplyResult r = ApplyChunk(*store_, c);
  EXPECT_EQ(r.status.code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->Read("d/t.log", 0, 10).status().code(), Code::kNotFound);
  c = MakeChunk("../escape.log", 0, "x");
  EXPECT_EQ(ApplyChunk(*store_, c).status.code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace tandem::replication
