// Task logs: one object per task try, written in chunks while the task runs and readable at any
// time. LogStore is the interface; DirLogStore keeps objects as files under a root directory,
// and S3LogStore (s3_log_store.h) keeps them in an S3-compatible bucket.
//
// Keys are relative paths built by TaskLogKey; a store refuses any key that is absolute,
// contains "." or ".." components, empty components, backslashes or NUL characters, so a key
// can never name something outside the store. Implementations are thread-safe; appends to one
// key are applied in call order.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"

namespace tandem::logs {

struct LogChunk {
  std::string data;
  uint64_t next_offset = 0;  // where the next read continues
  uint64_t size = 0;         // the object's size when read
};

class LogStore {
 public:
  virtual ~LogStore() = default;
  // Appends `data` to the object `key`, creating it (and its parents) when absent.
  virtual Status Append(std::string_view key, std::string_view data) = 0;
  // Up to `max_bytes` from `offset`. NotFound when the object does not exist; an offset past
  // the end gives empty data.
  virtual Result<LogChunk> Read(std::string_view key, uint64_t offset, uint64_t max_bytes) = 0;
  // Removes the object; OK when it did not exist.
  virtual Status Remove(std::string_view key) = 0;
};
using LogStorePtr = std::unique_ptr<LogStore>;

// "<deployment_id>/dag_id=<dag>/run_id=<run>/task_id=<task>/attempt=<try>.log". The ids are
// checked (dag::Validate*Id rules: no '/', no ".."); InvalidArgument otherwise.
Result<std::string> TaskLogKey(std::string_view deployment_id, std::string_view dag_id,
                               std::string_view run_id, std::string_view task_id, int try_number);

// InvalidArgument unless `key` is a safe relative key (see above).
Status CheckKey(std::string_view key);

// For tests: whether DirLogStore may use openat2 (it falls back to walking the key when the
// kernel lacks it; this forces that path). Process-wide.
void SetOpenat2ForTesting(bool use);

class Fd;

// Files under `root`, which is created when absent (mode 0750). Logs recently appended to or
// read are kept open (at most `open_files`, least recently used closed first): a running task's
// log is appended to at every worker flush and read back by the replication shipper, and opening
// it walks its path each time. A kept file found unlinked (pruned by hand) is opened again.
class DirLogStore final : public LogStore {
 public:
  static Result<std::unique_ptr<DirLogStore>> Open(std::string root, size_t open_files = 4096);
  ~DirLogStore() override;
  DirLogStore(const DirLogStore&) = delete;
  DirLogStore& operator=(const DirLogStore&) = delete;

  Status Append(std::string_view key, std::string_view data) override;
  Result<LogChunk> Read(std::string_view key, uint64_t offset, uint64_t max_bytes) override;
  Status Remove(std::string_view key) override;

 private:
  struct OpenFiles;
  DirLogStore(int root_fd, size_t open_files);
  // The file of `key` from the kept ones, or opened (read-write, appending; created with
  // `create`) and kept.
  Result<std::shared_ptr<Fd>> OpenKept(std::string_view key, bool create);
  const int root_fd_;  // the root, opened once; objects are opened beneath it
  const std::unique_ptr<OpenFiles> files_;
};

}  // namespace tandem::logs
