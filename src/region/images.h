// A region's deployed images: its OCI registry (Debian's docker-registry, started from a
// generated config on the region's address, its storage under <state_dir>/registry, stopped
// with the region), bundles packaged and read back as images, and the image replicator.
//
// A deploy copies its image to the standby's registry before it completes (Replicate, retried
// up to pair.image_replication_timeout_seconds); a deploy that allowed an unreplicated image
// leaves its bundle version marked so, and the replicator thread of the active region copies
// every such image as soon as the standby's registry answers, digests checked on both sides.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "api/context.h"
#include "base/clock.h"
#include "base/metrics.h"
#include "base/status.h"
#include "region/config.h"

namespace tandem::images {
class Registry;
class RegistryServer;
}  // namespace tandem::images
namespace tandem::store {
class Pipelines;
}

namespace tandem::region {

class RegionImages final : public api::BundleImages {
 public:
  // Starts the registry the config declares (cfg.registry must be set). `run_as`: the system
  // user it runs as when the region runs as root.
  static Result<std::unique_ptr<RegionImages>> Start(const RegionConfig& cfg,
                                                     const std::string& run_as,
                                                     MetricsRegistry* metrics);
  ~RegionImages() override;
  RegionImages(const RegionImages&) = delete;
  RegionImages& operator=(const RegionImages&) = delete;

  // The replicator: while `may_act` says this region is the active one, copies the images
  // `pipelines` lists as unreplicated. Only in a pair whose peer runs a registry.
  void StartReplicator(store::Pipelines* pipelines, std::function<bool()> may_act);
  void Stop();

  // Restarts the registry if it died (the region's supervisor calls it).
  void Supervise();

  std::string registry_url() const override;
  bool has_standby() const override { return peer_ != nullptr; }
  Result<Published> Publish(const std::string& repository,
                            const std::map<std::string, std::string>& files) override;
  Result<std::map<std::string, std::string>> Fetch(const std::string& repository,
                                                   const std::string& digest,
                                                   int64_t* bytes) override;
  Status Replicate(const std::string& repository, const std::string& digest) override;
  bool takes_tokens() const override { return signer_ != nullptr; }
  Result<std::string> RegistryToken(const std::string& subject,
                                    const std::vector<images::RegistryAccess>& access) override;

  // Images the standby lacks, and the last reason one could not be copied ("" after success).
  std::pair<int64_t, std::string> Backlog() const;

 private:
  RegionImages() = default;
  void ReplicatorLoop();
  Status CopyOnce(const std::string& repository, const std::string& digest);

  std::string region_;
  Duration replicate_timeout_{};
  std::unique_ptr<images::RegistryServer> server_;
  // Signs registry tokens with the region's TLS key; null without TLS (no registry auth).
  std::shared_ptr<const images::RegistryTokenSigner> signer_;
  std::unique_ptr<images::Registry> own_;
  std::unique_ptr<images::Registry> peer_;  // null: no standby registry
  std::string peer_name_;
  MetricsRegistry* metrics_ = nullptr;

  store::Pipelines* pipelines_ = nullptr;
  std::function<bool()> may_act_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;         // guarded by mu_
  int64_t backlog_ = 0;           // guarded by mu_
  std::string last_error_;        // guarded by mu_
  std::thread replicator_;
};

}  // namespace tandem::region
