#include "scheduler/bundle_cache.h"

namespace tandem::scheduler {

Result<BundlePtr> BundleCache::Get(const DeploymentId& d, const std::string& digest) {
  Key key{d.value(), digest};
  {
    std::lock_guard lock(mu_);
    auto it = map_.find(key);
    if (it != map_.end()) {
      order_.splice(order_.begin(), order_, it->second.second);
      return it->second.first;
    }
  }
  // Parsed outside the lock; two threads may parse the same version once each, harmlessly.
  ASSIGN_OR_RETURN(auto files, pipelines_->BundleFiles(d, digest));
  auto bundle = std::make_shared<const dag::Bundle>(dag::ParseBundle(files));
  std::lock_guard lock(mu_);
  PutLocked(key, bundle);
  return BundlePtr(bundle);
}

void BundleCache::Put(const DeploymentId& d, const std::string& digest, BundlePtr bundle) {
  std::lock_guard lock(mu_);
  PutLocked({d.value(), digest}, std::move(bundle));
}

void BundleCache::PutLocked(const Key& key, BundlePtr bundle) {
  auto it = map_.find(key);
  if (it != map_.end()) {
    order_.erase(it->second.second);
    map_.erase(it);
  }
  order_.push_front(key);
  map_[key] = {std::move(bundle), order_.begin()};
  while (map_.size() > capacity_) {
    map_.erase(order_.back());
    order_.pop_back();
  }
}

}  // namespace tandem::scheduler
