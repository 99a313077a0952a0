#include "store/store.h"

#include <gtest/gtest.h>

#include "harness/pg_harness.h"
#include "store/migrations.h"

namespace tandem::store {
namespace {

using model::Connection;
using model::Deployment;
using model::PageRequest;
using model::Variable;
using tandem::testing::PgHarness;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dsn_ = PgHarness::Get().NewDatabase();
    pool_ = std::make_unique<pg::Pool>(dsn_, 4);
    auto c = pool_->Acquire();
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(Migrate(**c).ok());
    key_ = NewSecretKeyBase64();
    auto s = Store::Open(pool_.get(), *SecretBox::FromBase64(key_));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }

  Deployment Create(const std::string& name) {
    Deployment d;
    d.name = name;
    auto r = store_->CreateDeployment(d);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : Deployment{};
  }

  // Reads a column straight from the database, bypassing the store.
  std::string Raw(const std::string& sql) {
    auto c = pool_->Acquire();
    auto r = (*c)->Exec(sql);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r->size() ? r->Text(0, 0) : "";
  }

  std::string dsn_, key_;
  std::unique_ptr<pg::Pool> pool_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, MigrateIsIdempotentAndRefusesNewerSchema) {
  auto c = pool_->Acquire();
  EXPECT_EQ(*Migrate(**c), LatestSchemaVersion());
  EXPECT_EQ(*Migrate(**c), LatestSchemaVersion());
  ASSERT_TRUE((*c)->ExecScript("INSERT INTO schema_migrations VALUES (9999, 'future', now())")
                  .ok());
  auto r = Migrate(**c);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("9999"), std::string::npos);
}

TEST_F(StoreTest, DeploymentLifecycle) {
  Deployment d = Create("etl");
  EXPECT_EQ(d.id.value().size(), 36u);
  EXPECT_EQ(d.ns.rfind("etl-", 0), 0u);
  EXPECT_EQ(d.config.default_pool_slots, 128);
  EXPECT_EQ(store_->GetDeployment("etl")->id, d.id);
  EXPECT_EQ(store_->GetDeployment(d.id.value())->name, "etl");

  auto dup = store_->CreateDeployment(d);
  EXPECT_EQ(dup.status().code(), Code::kAlreadyExists);

  auto up = store_->UpdateDeployment("etl", [](Deployment& x) {
    x.name = "etl2";
    x.config.default_pool_slots = 7;
    x.id = DeploymentId("ignored");
    return Status::Ok();
  });
  ASSERT_TRUE(up.ok()) << up.status().ToString();
  EXPECT_EQ(up->id, d.id);
  EXPECT_EQ(up->ns, d.ns);  // the namespace never changes
  EXPECT_EQ(store_->GetPool(d.id, "default_pool")->slots, 7);

  ASSERT_TRUE(store_->DeleteDeployment("etl2").ok());
  EXPECT_EQ(store_->GetDeployment(d.id.value()).status().code(), Code::kNotFound);
  EXPECT_EQ(store_->DeleteDeployment("etl2").code(), Code::kNotFound);
  // The name is free again; the id is not reused.
  Deployment again = Create("etl2");
  EXPECT_NE(again.id, d.id);
  EXPECT_EQ(Raw("SELECT count(*) FROM deployments"), "2");
}

TEST_F(StoreTest, FailedUpdateChangesNothing) {
  Deployment d = Create("a");
  Create("b");
  auto r = store_->UpdateDeployment("a", [](Deployment& x) {
    x.name = "b";
    x.description = "changed";
    return Status::Ok();
  });
  EXPECT_EQ(r.status().code(), Code::kAlreadyExists);
  EXPECT_EQ(store_->GetDeployment("a")->description, "");
  auto refused = store_->UpdateDeployment("a", [](Deployment& x) {
    x.description = "changed";
    return InvalidArgument("no");
  });
  EXPECT_FALSE(refused.ok());
  EXPECT_EQ(store_->GetDeployment(d.id.value())->description, "");
}

TEST_F(StoreTest, ListPagesFiltersAndOrders) {
  for (const char* n : {"c-one", "a-two", "b-three"}) Create(n);
  auto all = store_->ListDeployments({});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->total, 3);
  EXPECT_EQ(all->items[0].name, "a-two");
  auto page = store_->ListDeployments({.limit = 1, .offset = 1, .order_by = "-name"});
  EXPECT_EQ(page->items.size(), 1u);
  EXPECT_EQ(page->items[0].name, "b-three");
  EXPECT_EQ(page->total, 3);
  EXPECT_EQ(store_->ListDeployments({.pattern = "t"})->total, 2);
  EXPECT_EQ(store_->ListDeployments({.order_by = "bogus"}).status().code(),
            Code::kInvalidArgument);
}

TEST_F(StoreTest, SecretsAreSealedAtRest) {
  Deployment d = Create("s");
  Connection c{.conn_id = "db", .conn_type = "postgres", .host = "h", .login = "u",
               .password = "hunter2", .extra = R"({"token": "zyx-token"})", .port = 5432};
  ASSERT_TRUE(store_->CreateConnection(d.id, c).ok());
  ASSERT_TRUE(store_->CreateVariable(d.id, {"api_key", "k3y", std::nullopt, true}).ok());
  ASSERT_TRUE(store_->CreateVariable(d.id, {"plain", "v", "desc", false}).ok());
  ASSERT_TRUE(store_->SetEnv(d.id, {"DB_PASS", "s3cret", true}).ok());

  // Nothing secret is in the database in plain text.
  std::string dump = Raw("SELECT string_agg(t::text, '|') FROM (SELECT * FROM connections) t") +
                     Raw("SELECT string_agg(t::text, '|') FROM (SELECT * FROM variables) t") +
                     Raw("SELECT string_agg(t::text, '|') FROM (SELECT * FROM env_vars) t");
  // Also hunter2 hex-encoded; ciphertext is hex too, so only a long run proves anything.
  for (const char* secret : {"hunter2", "zyx-token", "k3y", "s3cret", "68756e74657232"}) {
    EXPECT_EQ(dump.find(secret), std::string::npos) << secret;
  }
  EXPECT_NE(dump.find("plain"), std::string::npos);

  EXPECT_EQ(*store_->GetConnection(d.id, "db")->password, "hunter2");
  EXPECT_EQ(store_->GetVariable(d.id, "api_key")->value, "k3y");
  EXPECT_EQ(store_->ListEnv(d.id)->at(0).value, "s3cret");

  // Reopening with another key is refused.
  auto other = Store::Open(pool_.get(), *SecretBox::FromBase64(NewSecretKeyBase64()));
  EXPECT_EQ(other.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(other.status().message().find("secret key does not match"), std::string::npos);
  EXPECT_TRUE(Store::Open(pool_.get(), *SecretBox::FromBase64(key_)).ok());
}

TEST_F(StoreTest, ConnectionsVariablesPools) {
  Deployment d = Create("r");
  ASSERT_TRUE(store_->CreateConnection(d.id, {.conn_id = "x", .conn_type = "http"}).ok());
  EXPECT_EQ(store_->CreateConnection(d.id, {.conn_id = "x", .conn_type = "http"}).code(),
            Code::kAlreadyExists);
  auto up = store_->UpdateConnection(d.id, "x", [](Connection& c) {
    c.host = "example";
    return Status::Ok();
  });
  ASSERT_TRUE(up.ok()) << up.status().ToString();
  EXPECT_EQ(*store_->GetConnection(d.id, "x")->host, "example");
  EXPECT_EQ(store_->GetConnection(d.id, "nope").status().code(), Code::kNotFound);
  EXPECT_NE(store_->GetConnection(d.id, "nope").status().message().find("connection_id: `nope`"),
            std::string::npos);
  ASSERT_TRUE(store_->DeleteConnection(d.id, "x").ok());
  EXPECT_EQ(store_->DeleteConnection(d.id, "x").code(), Code::kNotFound);

  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(store_->CreateVariable(d.id, {"k" + std::to_string(i), "v", {}, false}).ok());
  }
  auto vars = store_->ListVariables(d.id, {.limit = 2, .offset = 3});
  ASSERT_TRUE(vars.ok());
  EXPECT_EQ(vars->total, 5);
  ASSERT_EQ(vars->items.size(), 2u);
  EXPECT_EQ(vars->items[0].key, "k3");

  EXPECT_EQ(store_->ListPools(d.id, {})->total, 1);  // default_pool
  ASSERT_TRUE(store_->CreatePool(d.id, {"gpu", 2, "GPUs", false}).ok());
  EXPECT_EQ(store_->DeletePool(d.id, "default_pool").code(), Code::kFailedPrecondition);
  auto rename = store_->UpdatePool(d.id, "default_pool", [](model::Pool& p) {
    p.name = "other";
    return Status::Ok();
  });
  EXPECT_EQ(rename.status().code(), Code::kFailedPrecondition);
  ASSERT_TRUE(store_->DeletePool(d.id, "gpu").ok());

  // Other deployments do not see these.
  Deployment e = Create("other");
  EXPECT_EQ(store_->ListVariables(e.id, {})->total, 0);
}

// A request resolves its deployment, then writes: a delete committed in between must make the
// write fail, not leave rows under a tombstone.
TEST_F(StoreTest, NothingIsWrittenUnderADeletedDeployment) {
  Deployment d = Create("gone");
  ASSERT_TRUE(store_->DeleteDeployment("gone").ok());
  EXPECT_EQ(store_->CreateVariable(d.id, {"k", "v", {}, false}).code(), Code::kNotFound);
  EXPECT_EQ(store_->SetEnv(d.id, {"K", "v", true}).code(), Code::kNotFound);
  EXPECT_EQ(store_->CreateConnection(d.id, {.conn_id = "c", .conn_type = "http"}).code(),
            Code::kNotFound);
  EXPECT_EQ(store_->CreatePool(d.id, {"p", 1, {}, false}).code(), Code::kNotFound);
  EXPECT_EQ(Raw("SELECT (SELECT count(*) FROM variables) + (SELECT count(*) FROM env_vars) + "
                "(SELECT count(*) FROM connections) + (SELECT count(*) FROM pools)"),
            "0");
}

TEST_F(StoreTest, UnreachableDatabaseIsUnavailable) {
  pool_.reset(new pg::Pool("host=127.0.0.1 port=1 connect_timeout=1", 1));
  auto s = Store::Open(pool_.get(), *SecretBox::FromBase64(key_));
  EXPECT_EQ(s.status().code(), Code::kUnavailable);
}

}  // namespace
}  // namespace tandem::store
