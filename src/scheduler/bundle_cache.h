// Parsed bundle versions, kept in memory: parsing is pure and a version never changes, so each
// (deployment, digest) is parsed once and shared. Bounded (least recently used out first).
// Thread-safe.
#pragma once

#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "base/status.h"
#include "base/strong_id.h"
#include "dag/bundle.h"
#include "store/pipelines.h"

namespace tandem::scheduler {

using BundlePtr = std::shared_ptr<const dag::Bundle>;

class BundleCache {
 public:
  // `pipelines` must outlive the cache.
  BundleCache(store::Pipelines* pipelines, size_t capacity)
      : pipelines_(pipelines), capacity_(capacity) {}

  Result<BundlePtr> Get(const DeploymentId& d, const std::string& digest);
  // For a deploy, which has just parsed the files itself.
  void Put(const DeploymentId& d, const std::string& digest, BundlePtr bundle);

 private:
  using Key = std::pair<std::string, std::string>;
  void PutLocked(const Key& key, BundlePtr bundle);  // REQUIRES: mu_ held

  store::Pipelines* const pipelines_;
  const size_t capacity_;
  std::mutex mu_;
  std::list<Key> order_;                                               // guarded by mu_
  std::map<Key, std::pair<BundlePtr, std::list<Key>::iterator>> map_;  // guarded by mu_
};

}  // namespace tandem::scheduler
