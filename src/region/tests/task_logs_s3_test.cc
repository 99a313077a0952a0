// A region's task logs with an object store (task_logs.backend: s3) against a real
// S3-compatible server: chunks reach the bucket as they are written, a log the local
// directory lacks is read from the bucket, and while the store is unreachable chunks wait on
// local disk up to the bound — then appends fail with a message naming the sink — and go up
// once it is back.
#include <gtest/gtest.h>

#include <thread>

#include "base/fs.h"
#include "logs/log_store.h"
#include "logs/s3_log_store.h"
#include "logs/tests/s3_server.h"
#include "region/task_logs.h"

namespace tandem::region {
namespace {

using namespace std::chrono_literals;
using logs::test::S3Server;

const std::string kKey = "d/dag_id=x/run_id=r/task_id=t/attempt=1.log";

template <typename F>
bool Eventually(F f, Duration timeout = 20s) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (f()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return f();
}

class TaskLogsS3Test : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = S3Server::Start("logs");
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    s3_ = std::move(s).value();
    auto t = TempDir::Create("tandem-task-logs-s3");
    ASSERT_TRUE(t.ok());
    tmp_ = std::make_unique<TempDir>(std::move(t).value());
    cfg_.name = "region-a";
    cfg_.state_dir = tmp_->path();
    cfg_.task_logs.backend = "s3";
    S3Settings o;
    o.endpoint = s3_->endpoint();
    o.bucket = s3_->bucket();
    o.access_key_id = S3Server::kAccessKeyId;
    o.secret_access_key = S3Server::kSecretAccessKey;
    o.prefix = "tandem/";
    cfg_.task_logs.s3 = o;
  }

  // What the bucket holds of `key`, read with a store of its own.
  std::string InBucket(const std::string& key) {
    auto store = logs::S3LogStore::Open(s3_->StoreOptions("tandem"));
    if (!store.ok()) return "<" + store.status().ToString() + ">";
    auto r = (*store)->Read(key, 0, 1 << 20);
    return r.ok() ? r->data : "";
  }

  std::unique_ptr<S3Server> s3_;
  std::unique_ptr<TempDir> tmp_;
  RegionConfig cfg_;
};

TEST_F(TaskLogsS3Test, ChunksReachTheBucketAndAreReadBackFromIt) {
  auto logs = TaskLogs::Open(cfg_, std::nullopt, nullptr);
  ASSERT_TRUE(logs.ok()) << logs.status().ToString();
  ASSERT_TRUE((*logs)->store()->Append(kKey, "one\n").ok());
  ASSERT_TRUE((*logs)->store()->Append(kKey, "two\n").ok());
  EXPECT_TRUE(Eventually([&] { return InBucket(kKey) == "one\ntwo\n"; })) << InBucket(kKey);
  EXPECT_TRUE(Eventually([&] { return (*logs)->Views().at(0).chunks_behind == 0; }));
  EXPECT_EQ((*logs)->Views().at(0).sink, "s3");
  (*logs)->Stop();
  logs->reset();

  // A region whose directory lost the log (a new disk) reads it from the bucket.
  ASSERT_TRUE(RemoveAll(tmp_->path() + "/logs").ok());
  auto again = TaskLogs::Open(cfg_, std::nullopt, nullptr);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  auto r = (*again)->store()->Read(kKey, 0, 100);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->data, "one\ntwo\n");
}

TEST_F(TaskLogsS3Test, AnUnreachableStoreKeepsChunksUpToTheBoundThenAppendsFail) {
  S3Settings gone = *cfg_.task_logs.s3;
  gone.endpoint = "http://127.0.0.1:9";  // nothing listens
  cfg_.task_logs.s3 = gone;
  cfg_.task_logs.spool_bound_bytes = 1 << 20;
  auto logs = TaskLogs::Open(cfg_, std::nullopt, nullptr);
  ASSERT_TRUE(logs.ok()) << logs.status().ToString();
  const std::string line(size_t{64} * 1024, 'x');
  Status refused;
  int appended = 0;
  for (int i = 0; i < 40 && refused.ok(); ++i) {
    refused = (*logs)->store()->Append(kKey, line);
    if (refused.ok()) ++appended;
  }
  ASSERT_FALSE(refused.ok()) << "a 1 MiB bound took " << appended << " chunks of 64 KiB";
  EXPECT_NE(refused.message().find("log replication to s3"), std::string::npos)
      << refused.ToString();
  EXPECT_NE(refused.message().find("over the bound"), std::string::npos) << refused.ToString();
  // Nothing written before the bound is lost: it is all on local disk, and said to be behind.
  auto r = (*logs)->store()->Read(kKey, 0, 64 << 20);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->data.size(), line.size() * appended);
  std::vector<LogSinkView> v = (*logs)->Views();
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].chunks_behind, static_cast<uint64_t>(appended));
  EXPECT_TRUE(Eventually([&] { return !(*logs)->Views()[0].last_error.empty(); }))
      << "status says why";
  (*logs)->Stop();
  logs->reset();

  // The store is back (the config points at it again): everything goes up, appends resume.
  S3Settings back = gone;
  back.endpoint = s3_->endpoint();
  cfg_.task_logs.s3 = back;
  auto again = TaskLogs::Open(cfg_, std::nullopt, nullptr);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(Eventually([&] { return (*again)->Views()[0].chunks_behind == 0; }, 60s))
      << (*again)->Views()[0].last_error;
  EXPECT_EQ(InBucket(kKey).size(), line.size() * appended);
  EXPECT_TRUE((*again)->store()->Append(kKey, "more\n").ok());
}

}  // namespace
}  // namespace tandem::region
