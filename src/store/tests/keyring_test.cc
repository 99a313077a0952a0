// The store's keyring on a real PostgreSQL: rotation reseals every secret, retires the old key,
// and loses nothing written meanwhile; another process on the same database (the other region)
// follows the ring.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "harness/pg_harness.h"
#include "store/migrations.h"
#include "store/store.h"

namespace tandem::store {
namespace {

using model::Connection;
using model::Deployment;
using tandem::testing::PgHarness;

class KeyringStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pool_ = std::make_unique<pg::Pool>(PgHarness::Get().NewDatabase(), 6);
    auto c = pool_->Acquire();
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(Migrate(**c).ok());
    key_ = NewSecretKeyBase64();
    store_ = OpenStore();
  }

  std::unique_ptr<Store> OpenStore() {
    auto s = Store::Open(pool_.get(), *SecretBox::FromBase64(key_));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  Deployment Create(const std::string& name) {
    Deployment d;
    d.name = name;
    auto r = store_->CreateDeployment(d);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : Deployment{};
  }

  std::string Raw(const std::string& sql) {
    auto c = pool_->Acquire();
    auto r = (*c)->Exec(sql);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() && r->size() ? r->Text(0, 0) : "";
  }

  std::string key_;
  std::unique_ptr<pg::Pool> pool_;
  std::unique_ptr<Store> store_;
};

TEST_F(KeyringStoreTest, ANewDatabaseSealsUnderItsFirstKey) {
  Deployment d = Create("a");
  ASSERT_TRUE(store_->SetEnv(d.id, {"TOKEN", "t0k", true}).ok());
  auto ring = store_->ListKeys();
  ASSERT_TRUE(ring.ok()) << ring.status().ToString();
  ASSERT_EQ(ring->keys.size(), 1u);
  EXPECT_EQ(ring->keys[0].id, KeyId(1));
  EXPECT_EQ(ring->keys[0].state, "active");
  EXPECT_EQ(ring->keys[0].values, 1);
  EXPECT_EQ(ring->unkeyed_values, 0);
  // The value names key 1 in its header.
  EXPECT_EQ(Raw("SELECT encode(substring(value_enc from 1 for 5), 'hex') FROM env_vars"),
            "0200000001");
}

// A key made in a transaction that then rolled back never reached the database, and the same
// id can be made again, with other bytes, by another process (the other region, after a
// failover): what this process remembers of that id must not be used for it.
TEST_F(KeyringStoreTest, AKeyFromARolledBackWriteIsNotTrustedWhenItsIdComesBack) {
  Deployment a = Create("a");
  ASSERT_TRUE(store_->CreateVariable(a.id, {"dup", "plain", std::nullopt, false}).ok());
  // The first secret ever: sealed under a new key 1, then refused (the key exists), rolled back.
  EXPECT_FALSE(store_->CreateVariable(a.id, {"dup", "s3cret", std::nullopt, true}).ok());
  EXPECT_EQ(Raw("SELECT count(*) FROM keyring"), "0");
  // The other process makes key 1 and seals with it.
  std::unique_ptr<Store> other = OpenStore();
  ASSERT_TRUE(other->CreateVariable(a.id, {"theirs", "t", std::nullopt, true}).ok());
  EXPECT_EQ(Raw("SELECT count(*) FROM keyring"), "1");
  // This one reads what the other sealed, and seals what the other can read.
  auto theirs = store_->GetVariable(a.id, "theirs");
  ASSERT_TRUE(theirs.ok()) << theirs.status().ToString();
  EXPECT_EQ(theirs->value, "t");
  ASSERT_TRUE(store_->CreateVariable(a.id, {"mine", "m", std::nullopt, true}).ok());
  auto mine = other->GetVariable(a.id, "mine");
  ASSERT_TRUE(mine.ok()) << mine.status().ToString();
  EXPECT_EQ(mine->value, "m");
}

TEST_F(KeyringStoreTest, RotationResealsEverySecretAndRetiresTheOldKey) {
  Deployment a = Create("a");
  ASSERT_TRUE(store_
                  ->CreateConnection(a.id, {.conn_id = "db",
                                            .conn_type = "postgres",
                                            .password = "hunter2",
                                            .extra = R"({"k": "x"})"})
                  .ok());
  ASSERT_TRUE(store_->CreateVariable(a.id, {"api_key", "k3y", std::nullopt, true}).ok());
  ASSERT_TRUE(store_->CreateVariable(a.id, {"plain", "v", std::nullopt, false}).ok());
  // A value sealed under the pair's key itself, as before the keyring existed.
  const std::string legacy =
      pg::ByteaParam(SecretBox::FromBase64(key_)->Seal("legacy", "env/" + a.id.value() + "/L"));
  Raw("INSERT INTO env_vars (deployment_id, key, value_enc, is_secret) VALUES ('" + a.id.value() +
      "', 'L', '" + legacy + "', true) RETURNING 1");
  // Another process on the same database, as the other region is, with key 1 loaded.
  std::unique_ptr<Store> other = OpenStore();
  ASSERT_EQ(other->GetVariable(a.id, "api_key")->value, "k3y");
  EXPECT_EQ(store_->ListKeys()->unkeyed_values, 1);
  const std::string key1_before = Raw("SELECT wrapped::text FROM keyring WHERE id = 1");

  auto rot = store_->RotateKey();
  ASSERT_TRUE(rot.ok()) << rot.status().ToString();
  EXPECT_EQ(rot->key.id, KeyId(2));
  EXPECT_EQ(rot->key.state, "active");
  EXPECT_EQ(rot->resealed, 4);  // password, extra, api_key, legacy
  EXPECT_EQ(rot->key.values, 4);
  ASSERT_EQ(rot->retired.size(), 1u);
  EXPECT_EQ(rot->retired[0], KeyId(1));

  auto ring = store_->ListKeys();
  ASSERT_EQ(ring->keys.size(), 2u);
  EXPECT_EQ(ring->keys[1].state, "retired");
  EXPECT_TRUE(ring->keys[1].retired_at.has_value());
  EXPECT_EQ(ring->keys[1].values, 0);
  EXPECT_EQ(ring->unkeyed_values, 0);
  EXPECT_FALSE(key1_before.empty());
  EXPECT_EQ(Raw("SELECT wrapped IS NULL FROM keyring WHERE id = 1"), "t");

  // Nothing lost, read by either process.
  for (Store* s : {store_.get(), other.get()}) {
    EXPECT_EQ(*s->GetConnection(a.id, "db")->password, "hunter2");
    EXPECT_EQ(*s->GetConnection(a.id, "db")->extra, R"({"k": "x"})");
    EXPECT_EQ(s->GetVariable(a.id, "api_key")->value, "k3y");
    EXPECT_EQ(s->GetVariable(a.id, "plain")->value, "v");
    auto env = s->ListEnv(a.id);
    ASSERT_TRUE(env.ok()) << env.status().ToString();
    EXPECT_EQ(env->at(0).value, "legacy");
  }
  // The other process, which loaded key 1 before, seals under key 2.
  ASSERT_TRUE(other->SetEnv(a.id, {"NEW", "n3w", true}).ok());
  EXPECT_EQ(store_->ListKeys()->keys[0].values, 5);
}

TEST_F(KeyringStoreTest, SecretsWrittenDuringARotationAreKeptAndResealed) {
  Deployment d = Create("busy");
  for (int i = 0; i < 450; ++i) {  // more than two reseal batches
    ASSERT_TRUE(store_
                    ->CreateVariable(d.id, {"v" + std::to_string(i), "x" + std::to_string(i),
                                            std::nullopt, true})
                    .ok());
  }
  std::unique_ptr<Store> writer = OpenStore();
  std::atomic<bool> stop{false};
  std::atomic<int> written{0};
  std::thread t([&] {
    for (int i = 0; !stop.load(); ++i) {
      std::string k = "w" + std::to_string(i);
      if (!writer->CreateVariable(d.id, {k, "y" + std::to_string(i), std::nullopt, true}).ok()) {
        return;
      }
      if (i % 3 == 0) {  // and rewrite old ones
        auto up = writer->UpdateVariable(d.id, "v" + std::to_string(i % 450),
                                         [](model::Variable&) { return Status::Ok(); });
        if (!up.ok()) return;
      }
      written = i + 1;
    }
  });
  while (written.load() < 20) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto first = store_->RotateKey();
  auto second = store_->RotateKey();
  stop = true;
  t.join();
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_GT(written.load(), 20);

  auto ring = store_->ListKeys();
  ASSERT_TRUE(ring.ok());
  ASSERT_EQ(ring->keys.size(), 3u);
  EXPECT_EQ(ring->keys[0].state, "active");
  EXPECT_EQ(ring->keys[1].state, "retired");
  EXPECT_EQ(ring->keys[2].state, "retired");
  EXPECT_EQ(ring->keys[0].values, 450 + written.load());
  for (int i = 0; i < 450; ++i) {
    ASSERT_EQ(store_->GetVariable(d.id, "v" + std::to_string(i))->value, "x" + std::to_string(i));
  }
  for (int i = 0; i < written.load(); ++i) {
    ASSERT_EQ(store_->GetVariable(d.id, "w" + std::to_string(i))->value, "y" + std::to_string(i));
  }
}

TEST_F(KeyringStoreTest, AnInterruptedRotationLeavesTheOldKeyUsableUntilTheNextOneEnds) {
  Deployment d = Create("a");
  ASSERT_TRUE(store_->CreateVariable(d.id, {"k", "v1", std::nullopt, true}).ok());
  // What a rotation's first step leaves if the region dies before resealing.
  Raw("UPDATE keyring SET state = 'retiring' WHERE id = 1 RETURNING 1");
  std::unique_ptr<Store> after = OpenStore();  // makes key 2 active
  EXPECT_EQ(after->GetVariable(d.id, "k")->value, "v1");
  auto ring = after->ListKeys();
  ASSERT_EQ(ring->keys.size(), 2u);
  EXPECT_EQ(ring->keys[1].state, "retiring");
  EXPECT_EQ(ring->keys[1].values, 1);

  auto rot = after->RotateKey();
  ASSERT_TRUE(rot.ok()) << rot.status().ToString();
  EXPECT_EQ(rot->retired.size(), 2u);
  EXPECT_EQ(after->GetVariable(d.id, "k")->value, "v1");
}

}  // namespace
}  // namespace tandem::store
