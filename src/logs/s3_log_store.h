// S3LogStore keeps task logs in a bucket of any S3-compatible object store, addressed
// path-style (<endpoint>/<bucket>/<object>) and signed with SigV4.
//
// S3 objects are immutable, so a log is a series of chunk objects, one per append:
// "<key_prefix><key>/<start offset, 20 digits>". Reading lists the chunks and fetches the ones
// that cover the range asked for. The store remembers, for a bounded number of keys, where the
// next append of each starts, so appends do not list every time; before using a remembered
// offset it checks that no chunk starts there yet (another process may have appended), and
// writes with If-None-Match: * so that servers that honour it refuse a racing writer too.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "logs/log_store.h"
#include "logs/s3_http.h"

namespace tandem::logs {

struct S3LogStoreOptions {
  std::string endpoint;  // "http://host:port" or "https://host", nothing after the authority
  std::string bucket;
  std::string region = "us-east-1";
  std::string access_key_id;
  std::string secret_access_key;
  // Objects go under "<key_prefix>/"; empty = the bucket's root. Same rules as a key.
  std::string key_prefix;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{30000};
  int list_page_size = 1000;  // max-keys of each ListObjectsV2 page (1..1000)
};

class S3LogStore final : public LogStore {
 public:
  // Checks the options; does not contact the endpoint (see CheckAccess).
  static Result<std::unique_ptr<S3LogStore>> Open(S3LogStoreOptions options);
  ~S3LogStore() override;

  Status Append(std::string_view key, std::string_view data) override;
  Result<LogChunk> Read(std::string_view key, uint64_t offset, uint64_t max_bytes) override;
  Status Remove(std::string_view key) override;

  // Lists the prefix once: OK when the bucket exists and the credentials may list it.
  Status CheckAccess();

 private:
  struct Chunk {
    uint64_t start = 0;
    uint64_t size = 0;
  };
  // The append state of one key. Its mutex is held for a whole append or remove of the key,
  // so those apply one at a time, in the order they take it.
  struct KeyState {
    std::mutex mu;
    std::optional<uint64_t> next_offset;  // guarded by mu; where the next chunk starts
  };
  explicit S3LogStore(S3LogStoreOptions options);

  std::shared_ptr<KeyState> StateFor(std::string_view key);
  std::string ChunkName(std::string_view key, uint64_t start) const;
  // The URL of an object ("" = the bucket), plus an already canonical query.
  std::string Url(std::string_view object, std::string_view query) const;
  Result<HttpResponse> Send(std::string method, std::string_view object, std::string_view query,
                        std::vector<std::string> headers, std::string_view body);
  Status ErrorFor(std::string_view what, std::string_view object, const HttpResponse& resp) const;
  // Every chunk of `key` in order; empty when the log does not exist.
  Result<std::vector<Chunk>> ListChunks(std::string_view key);
  // Internal unless each chunk starts where the one before it ends.
  Status CheckContiguous(std::string_view key, const std::vector<Chunk>& chunks) const;
  // One page of names and sizes under `prefix` (direct children only).
  Status ListPage(std::string_view prefix, int max_keys, std::string* token,
                  std::vector<std::pair<std::string, uint64_t>>* out);
  // Writes a chunk. False when the server refused it because the name was taken.
  Result<bool> PutChunk(std::string_view key, uint64_t start, std::string_view data,
                        bool replace_empty);
  Result<bool> ChunkExists(std::string_view key, uint64_t start);
  Result<std::string> GetRange(std::string_view key, const Chunk& chunk, uint64_t from,
                               uint64_t to);

  // Constant after construction.
  const S3LogStoreOptions options_;  // key_prefix ends with '/' unless empty

  std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<KeyState>> keys_;  // guarded by mu_
};

}  // namespace tandem::logs
