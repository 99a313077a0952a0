// Replication and push/pull against MemoryRegistry: the protocol's decisions, without processes.
// The same scenarios run against real registries in registry_e2e_test.cc.
#include "images/replicate.h"

#include <gtest/gtest.h>

#include "base/random.h"
#include "images/memory_registry.h"

namespace tandem::images {
namespace {

constexpr char kRepo[] = "deployments/etl";

class ReplicateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    image_ = BuildImage({{"dags.yaml", "dags: []\n"}, {"data.bin", RandomBytes(5000)}}).value();
    ASSERT_TRUE(PushImage(source_, kRepo, "v1", image_).ok());
    options_.retry_pause = Duration(0);
  }

  MemoryRegistry source_{"memory://a"};
  MemoryRegistry target_{"memory://b"};
  Image image_;
  ReplicateOptions options_;
  FakeClock clock_;
};

TEST_F(ReplicateTest, CopiesThenCopiesNothing) {
  auto first = ReplicateImage(source_, target_, kRepo, image_.digest, "v1", options_, clock_);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->blobs_copied, 2);
  EXPECT_EQ(first->blobs_skipped, 0);
  EXPECT_TRUE(first->manifest_copied);
  EXPECT_GT(first->bytes_copied, 5000);
  EXPECT_EQ(target_.StatManifest(kRepo, "v1")->value_or(""), image_.digest);
  auto files = PullImage(target_, kRepo, "v1");
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  EXPECT_EQ(files->at("dags.yaml"), "dags: []\n");

  int puts = target_.blob_puts() + target_.manifest_puts();
  auto second = ReplicateImage(source_, target_, kRepo, image_.digest, "v1", options_, clock_);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->blobs_copied, 0);
  EXPECT_EQ(second->blobs_skipped, 2);
  EXPECT_EQ(second->bytes_copied, 0);
  EXPECT_FALSE(second->manifest_copied);
  EXPECT_EQ(target_.blob_puts() + target_.manifest_puts(), puts);
}

TEST_F(ReplicateTest, ResumesWhereAnEarlierRunStopped) {
  const Descriptor& config = image_.parsed.config;
  ASSERT_TRUE(target_.PutBlob(kRepo, config.digest, image_.blobs.at(config.digest)).ok());
  auto r = ReplicateImage(source_, target_, kRepo, image_.digest, "", options_, clock_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->blobs_skipped, 1);
  EXPECT_EQ(r->blobs_copied, 1);
  EXPECT_EQ(target_.StatManifest(kRepo, image_.digest)->value_or(""), image_.digest);
}

TEST_F(ReplicateTest, ABlobThatDoesNotMatchIsFetchedAgain) {
  source_.CorruptNextBlobReads(1);
  auto r = ReplicateImage(source_, target_, kRepo, image_.digest, "v1", options_, clock_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->refetches, 1);
  EXPECT_EQ(r->blobs_copied, 2);
  EXPECT_EQ(source_.blob_gets(), 3);
}

TEST_F(ReplicateTest, ABlobThatNeverMatchesFailsClearlyAndLeavesNoManifest) {
  source_.CorruptNextBlobReads(100);
  auto r = ReplicateImage(source_, target_, kRepo, image_.digest, "v1", options_, clock_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInternal);
  const std::string msg = r.status().message();
  EXPECT_NE(msg.find("did not arrive intact in 3 fetches"), std::string::npos) << msg;
  EXPECT_NE(msg.find("asked for " + image_.parsed.config.digest), std::string::npos) << msg;
  EXPECT_EQ(source_.blob_gets(), 3);
  EXPECT_EQ(target_.blob_puts(), 0);
  EXPECT_FALSE(target_.StatManifest(kRepo, image_.digest)->has_value());
}

TEST_F(ReplicateTest, AMissingSourceBlobIsNotFoundAndLeavesNoManifest) {
  source_.DeleteBlob(kRepo, image_.parsed.layers[0].digest);
  auto r = ReplicateImage(source_, target_, kRepo, image_.digest, "v1", options_, clock_);
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_NE(r.status().message().find(image_.parsed.layers[0].digest), std::string::npos);
  EXPECT_EQ(source_.blob_gets(), 2);  // not fetched again: it is not there
  EXPECT_FALSE(target_.StatManifest(kRepo, image_.digest)->has_value());
}

TEST_F(ReplicateTest, ATargetThatIsDownIsUnavailable) {
  target_.SetDown(true);
  auto r = ReplicateImage(source_, target_, kRepo, image_.digest, "v1", options_, clock_);
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_NE(r.status().message().find("memory://b"), std::string::npos);
}

TEST_F(ReplicateTest, AManifestNamingMissingBlobsIsRefused) {
  Image other = BuildImage({{"dags.yaml", "other"}}).value();
  auto r = target_.PutManifest(kRepo, other.digest, kOciManifestType, other.manifest);
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("MANIFEST_BLOB_UNKNOWN"), std::string::npos);
}

TEST_F(ReplicateTest, RefusesBadNames) {
  EXPECT_EQ(ReplicateImage(source_, target_, "Bad/Name", image_.digest, "", options_, clock_)
                .status()
                .code(),
            Code::kInvalidArgument);
  EXPECT_EQ(ReplicateImage(source_, target_, kRepo, "latest", "", options_, clock_).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(ReplicateImage(source_, target_, kRepo, image_.digest, "bad tag", options_, clock_)
                .status()
                .code(),
            Code::kInvalidArgument);
}

TEST(RegistryNamesTest, FollowTheDistributionGrammar) {
  for (const char* ok : {"a", "tandem/etl", "a-b/c.d/e__f", "x0/y--z"}) {
    EXPECT_TRUE(ValidateRepository(ok).ok()) << ok;
  }
  for (const char* bad : {"", "A", "a/", "/a", "a//b", "a/-b", "a..b", "a/b/../c", "a:b"}) {
    EXPECT_FALSE(ValidateRepository(bad).ok()) << bad;
  }
  EXPECT_TRUE(ValidateTag("v1.2_3-rc").ok());
  EXPECT_FALSE(ValidateTag(".hidden").ok());
  EXPECT_FALSE(ValidateTag(std::string(129, 'a')).ok());
}

}  // namespace
}  // namespace tandem::images
