// A real S3-compatible server for tests: s3rver (installed from npm into tools/npm by
// scripts/setup.sh) on a free loopback port, with its data in a temporary directory and one
// bucket made at start. The destructor stops it by PID and removes the directory; if the test
// process dies first, the parent-death signal kills it. s3rver accepts the credentials
// S3RVER/S3RVER and refuses unknown access keys, but does not check SigV4 signatures; it runs
// with node's OpenSSL legacy provider, which its paged listings need.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>

#include "base/fs.h"
#include "base/process.h"
#include "logs/s3_log_store.h"

namespace tandem::logs::test {

class S3Server {
 public:
  static constexpr const char* kAccessKeyId = "S3RVER";
  static constexpr const char* kSecretAccessKey = "S3RVER";

  // FailedPrecondition, saying what to install, when node or s3rver is missing.
  static Result<std::unique_ptr<S3Server>> Start(const std::string& bucket);
  ~S3Server();
  S3Server(const S3Server&) = delete;
  S3Server& operator=(const S3Server&) = delete;

  const std::string& endpoint() const { return endpoint_; }  // "http://127.0.0.1:PORT"
  const std::string& bucket() const { return bucket_; }
  pid_t pid() const { return child_->pid(); }
  // Options for a store on this server's bucket under `prefix`, with its credentials.
  S3LogStoreOptions StoreOptions(const std::string& prefix) const;

 private:
  S3Server(TempDir dir, std::string bucket) : dir_(std::move(dir)), bucket_(std::move(bucket)) {}

  std::optional<TempDir> dir_;
  std::string bucket_;
  std::string endpoint_;
  ChildPtr child_;
};

// The s3rver executable: $TANDEM_S3RVER, else tools/npm/node_modules/.bin/s3rver in the
// source tree.
std::string S3rverPath();

}  // namespace tandem::logs::test
