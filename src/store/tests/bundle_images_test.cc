// Bundle versions and the OCI images they were deployed as: recorded with the deploy, kept
// when the same image comes again, reset when another one does, and listed for the image
// replicator until the standby holds them.
#include <gtest/gtest.h>

#include "dag/bundle.h"
#include "harness/pg_harness.h"
#include "store/migrations.h"
#include "store/pipelines.h"
#include "store/store.h"

namespace tandem::store {
namespace {

using tandem::testing::PgHarness;

const std::map<std::string, std::string> kFiles = {
    {"dags.yaml", "hello:\n  schedule: null\n  tasks:\n    hi:\n      operator: empty\n"}};

class BundleImagesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pool_ = std::make_unique<pg::Pool>(PgHarness::Get().NewDatabase(), 2);
    auto c = pool_->Acquire();
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(Migrate(**c).ok());
    auto s = Store::Open(pool_.get(), *SecretBox::FromBase64(NewSecretKeyBase64()));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    p_ = std::make_unique<Pipelines>(pool_.get());
    model::Deployment d;
    d.name = "etl";
    auto r = store_->CreateDeployment(d);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    d_ = r->id;
  }

  std::string Deploy(const std::map<std::string, std::string>& files,
                     const std::optional<BundleImage>& image) {
    dag::Bundle b = dag::ParseBundle(files);
    auto r = p_->Deploy(d_, files, b, image);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->bundle_version : "";
  }

  std::vector<std::string> Unreplicated() {
    auto u = p_->UnreplicatedImages(100);
    EXPECT_TRUE(u.ok()) << u.status().ToString();
    std::vector<std::string> out;
    for (const UnreplicatedImage& x : u.ok() ? *u : std::vector<UnreplicatedImage>{}) {
      out.push_back(x.image.digest);
    }
    return out;
  }

  std::unique_ptr<pg::Pool> pool_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Pipelines> p_;
  DeploymentId d_;
};

const std::string kDigestA = "sha256:" + std::string(64, 'a');
const std::string kDigestB = "sha256:" + std::string(64, 'b');

TEST_F(BundleImagesTest, AVersionWithoutAnImageHasNone) {
  const std::string v = Deploy(kFiles, std::nullopt);
  auto img = p_->VersionImage(d_, v);
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  EXPECT_FALSE(img->has_value());
  EXPECT_TRUE(Unreplicated().empty());
  EXPECT_EQ(p_->VersionImage(d_, "nope").status().code(), Code::kNotFound);
}

TEST_F(BundleImagesTest, UnreplicatedImagesAreListedUntilMarked) {
  const std::string v = Deploy(kFiles, BundleImage{"etl-abc123/bundle", kDigestA, 1234, false});
  auto img = p_->VersionImage(d_, v);
  ASSERT_TRUE(img.ok() && img->has_value());
  EXPECT_EQ((*img)->repository, "etl-abc123/bundle");
  EXPECT_EQ((*img)->digest, kDigestA);
  EXPECT_EQ((*img)->bytes, 1234);
  EXPECT_FALSE((*img)->replicated);
  EXPECT_EQ(Unreplicated(), std::vector<std::string>{kDigestA});

  // A mark for another digest changes nothing; the right one takes it off the list.
  ASSERT_TRUE(p_->MarkImageReplicated(d_, v, kDigestB).ok());
  EXPECT_EQ(Unreplicated(), std::vector<std::string>{kDigestA});
  ASSERT_TRUE(p_->MarkImageReplicated(d_, v, kDigestA).ok());
  EXPECT_TRUE(Unreplicated().empty());
  EXPECT_TRUE((*p_->VersionImage(d_, v))->replicated);

  // The same image deployed again keeps its mark; another image of the same files loses it.
  Deploy(kFiles, BundleImage{"etl-abc123/bundle", kDigestA, 1234, false});
  EXPECT_TRUE((*p_->VersionImage(d_, v))->replicated);
  Deploy(kFiles, BundleImage{"etl-abc123/bundle", kDigestB, 99, false});
  EXPECT_FALSE((*p_->VersionImage(d_, v))->replicated);
  EXPECT_EQ(Unreplicated(), std::vector<std::string>{kDigestB});
}

TEST_F(BundleImagesTest, AReplicatedDeployIsNotListed) {
  const std::string v = Deploy(kFiles, BundleImage{"etl-abc123/bundle", kDigestA, 10, true});
  EXPECT_TRUE((*p_->VersionImage(d_, v))->replicated);
  EXPECT_TRUE(Unreplicated().empty());
}

}  // namespace
}  // namespace tandem::store
