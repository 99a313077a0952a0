// MemoryRegistry: a Registry held in memory, for tests of what is built on the interface
// (replication, push and pull). It keeps the rules a real registry keeps (registry.h): blobs
// stored under the digest of their content, manifests accepted only when their blobs are
// present, tags naming manifests. Fault switches make it unreachable or corrupt what it
// serves, so tests can check how callers cope.
//
// Thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>

#include "images/registry.h"

namespace tandem::images {

class MemoryRegistry final : public Registry {
 public:
  explicit MemoryRegistry(std::string address = "memory://registry")
      : address_(std::move(address)) {}

  const std::string& address() const override { return address_; }
  Status Ping() override;
  Result<std::optional<int64_t>> StatBlob(const std::string& repository,
                                          const std::string& digest) override;
  Status PutBlob(const std::string& repository, const std::string& digest,
                 std::string_view data) override;
  Result<std::string> GetBlob(const std::string& repository, const std::string& digest,
                              int64_t max_bytes) override;
  Result<std::string> PutManifest(const std::string& repository, const std::string& reference,
                                  const std::string& media_type, std::string_view bytes) override;
  Result<ManifestData> GetManifest(const std::string& repository,
                                   const std::string& reference) override;
  Result<std::optional<std::string>> StatManifest(const std::string& repository,
                                                  const std::string& reference) override;

  // Faults. Every call fails Unavailable while down.
  void SetDown(bool down);
  // The next `n` blob reads serve the content with one byte changed.
  void CorruptNextBlobReads(int n);
  void DeleteBlob(const std::string& repository, const std::string& digest);

  // Counters, for tests.
  int blob_puts() const;
  int blob_gets() const;
  int manifest_puts() const;

 private:
  struct Stored {
    std::string media_type, bytes;
  };
  Status CheckUp() const;  // REQUIRES: mu_ is held

  const std::string address_;
  mutable std::mutex mu_;
  // repository -> digest -> content; guarded by mu_.
  std::map<std::string, std::map<std::string, std::string>> blobs_;
  std::map<std::string, std::map<std::string, Stored>> manifests_;  // by digest; guarded by mu_
  std::map<std::string, std::map<std::string, std::string>> tags_;  // tag -> digest; by mu_
  bool down_ = false;                                               // guarded by mu_
  int corrupt_reads_ = 0;                                           // guarded by mu_
  int blob_puts_ = 0, blob_gets_ = 0, manifest_puts_ = 0;           // guarded by mu_
};

}  // namespace tandem::images
