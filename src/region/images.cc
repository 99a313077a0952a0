#include "region/images.h"

#include <spdlog/spdlog.h>

#include "images/oci_image.h"
#include "images/registry.h"
#include "images/registry_client.h"
#include "images/registry_server.h"
#include "images/registry_token.h"
#include "images/replicate.h"
#include "store/pipelines.h"

namespace tandem::region {

using namespace std::chrono_literals;

namespace {

constexpr Duration kReplicatorEvery = 1s;
constexpr int kReplicatorBatch = 16;

}  // namespace

Result<std::unique_ptr<RegionImages>> RegionImages::Start(const RegionConfig& cfg,
                                                          const std::string& run_as,
                                                          MetricsRegistry* metrics) {
  if (!cfg.registry) return InvalidArgument("region " + cfg.name + " declares no registry");
  std::unique_ptr<RegionImages> r(new RegionImages());
  r->region_ = cfg.name;
  r->metrics_ = metrics;
  images::RegistryServerOptions o;
  o.binary = cfg.registry->binary;
  o.state_dir = cfg.state_dir + "/registry";
  o.host = cfg.address;
  o.port = cfg.registry->port;
  o.run_as = run_as;
  // The region's own calls on either registry carry tokens it signs itself, for what each
  // call needs; nobody else's reach the registries without the realm's.
  std::function<Result<std::string>(const std::string&)> token;
  if (cfg.tls) {
    o.tls_cert_file = cfg.tls->cert_file;
    o.tls_key_file = cfg.tls->key_file;
    o.trust = cfg.trust();
    o.token_realm = cfg.url() + "/api/v1/registry/token";
    ASSIGN_OR_RETURN(r->signer_,
                     images::RegistryTokenSigner::FromFiles(cfg.tls->cert_file, cfg.tls->key_file));
    token = [signer = r->signer_,
             subject = "region " + cfg.name](const std::string& scope) -> Result<std::string> {
      std::vector<images::RegistryAccess> access;
      if (!scope.empty()) {
        ASSIGN_OR_RETURN(images::RegistryAccess a, images::ParseRegistryScope(scope));
        access.push_back(std::move(a));
      }
      return signer->Sign(subject, access, UnixSeconds(RealClock().Wall()));
    };
  }
  ASSIGN_OR_RETURN(r->server_, images::RegistryServer::Create(o));
  Status s = r->server_->Start(30s);
  if (!s.ok()) return s.WithContext("the region's OCI registry");
  ASSIGN_OR_RETURN(r->own_, images::NewRegistryClient(
                                {.url = r->server_->url(), .trust = cfg.trust(), .token = token}));
  if (cfg.dr && cfg.dr->peer.registry_port > 0) {
    r->peer_name_ = cfg.dr->peer.name;
    r->replicate_timeout_ = std::chrono::seconds(cfg.dr->image_replication_timeout_seconds);
    ASSIGN_OR_RETURN(r->peer_, images::NewRegistryClient({.url = cfg.dr->peer.registry_url(),
                                                          .trust = cfg.trust(),
                                                          .token = token,
                                                          .connect_timeout = 2s,
                                                          .io_timeout = 30s}));
  }
  if (metrics != nullptr) {
    metrics->Describe("tandem_images_unreplicated", "gauge",
                      "Deployed images the standby's registry does not hold yet.");
    metrics->Describe("tandem_image_replication_bytes_total", "counter",
                      "Image bytes copied to the standby's registry.");
    RegionImages* raw = r.get();
    metrics->OnScrape("tandem_images_unreplicated", [raw] {
      return std::vector<std::pair<Labels, double>>{
          {{}, static_cast<double>(raw->Backlog().first)}};
    });
  }
  spdlog::info("OCI registry of {} on {}", cfg.name, r->server_->url());
  return r;
}

RegionImages::~RegionImages() { Stop(); }

void RegionImages::StartReplicator(store::Pipelines* pipelines, std::function<bool()> may_act) {
  if (!peer_ || replicator_.joinable()) return;
  pipelines_ = pipelines;
  may_act_ = std::move(may_act);
  replicator_ = std::thread([this] { ReplicatorLoop(); });
}

void RegionImages::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (replicator_.joinable()) replicator_.join();
  if (server_) (void)server_->Stop();
}

void RegionImages::Supervise() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
  }
  if (server_ && !server_->Running()) {
    spdlog::warn("the OCI registry of {} is down; starting it again", region_);
    Status s = server_->Start(30s);
    if (!s.ok()) spdlog::error("the OCI registry of {}: {}", region_, s.ToString());
  }
}

std::string RegionImages::registry_url() const { return server_->url(); }

Result<std::string> RegionImages::RegistryToken(const std::string& subject,
                                                const std::vector<images::RegistryAccess>& access) {
  if (!signer_) {
    return FailedPrecondition("region " + region_ +
                              "'s registry serves plain HTTP and takes no tokens (give the region "
                              "a tls section)");
  }
  return signer_->Sign(subject, access, UnixSeconds(RealClock().Wall()));
}

Result<RegionImages::Published> RegionImages::Publish(
    const std::string& repository, const std::map<std::string, std::string>& files) {
  RETURN_IF_ERROR(images::ValidateRepository(repository));
  ASSIGN_OR_RETURN(images::Image image, images::BuildImage(files));
  RETURN_IF_ERROR(images::PushImage(*own_, repository, "latest", image));
  Published p{image.digest, static_cast<int64_t>(image.manifest.size())};
  for (const auto& [digest, blob] : image.blobs) p.bytes += static_cast<int64_t>(blob.size());
  return p;
}

Result<std::map<std::string, std::string>> RegionImages::Fetch(const std::string& repository,
                                                               const std::string& digest,
                                                               int64_t* bytes) {
  RETURN_IF_ERROR(images::ValidateRepository(repository));
  if (!images::IsDigestReference(digest)) {
    return InvalidArgument("image digest '" + digest + "' is not sha256:<64 hex digits>");
  }
  ASSIGN_OR_RETURN(images::ManifestData m, own_->GetManifest(repository, digest));
  ASSIGN_OR_RETURN(images::Manifest parsed, images::ParseManifest(m.bytes));
  int64_t total = static_cast<int64_t>(m.bytes.size());
  for (const images::Descriptor& d : parsed.Blobs()) total += d.size;
  if (bytes != nullptr) *bytes = total;
  return images::PullImage(*own_, repository, digest);
}

Status RegionImages::CopyOnce(const std::string& repository, const std::string& digest) {
  Result<images::ReplicateReport> r =
      images::ReplicateImage(*own_, *peer_, repository, digest, "latest");
  if (!r.ok()) return r.status();
  if (metrics_ != nullptr && r->bytes_copied > 0) {
    metrics_->Add("tandem_image_replication_bytes_total", {}, static_cast<double>(r->bytes_copied));
  }
  spdlog::info("image {}@{} replicated to {} ({} blobs, {} bytes copied, {} already there)",
               repository, digest, peer_name_, r->blobs_copied, r->bytes_copied, r->blobs_skipped);
  return Status::Ok();
}

Status RegionImages::Replicate(const std::string& repository, const std::string& digest) {
  if (!peer_) return Status::Ok();
  const MonoTime until = RealClock().Now() + replicate_timeout_;
  Duration pause = 200ms;
  while (true) {
    Status s = CopyOnce(repository, digest);
    // Only an unreachable standby is worth waiting for; anything else will not change.
    if (s.ok() || s.code() != Code::kUnavailable) {
      return s.ok() ? s : s.WithContext("copying to " + peer_name_ + "'s registry");
    }
    if (RealClock().Now() + pause >= until) {
      return Unavailable(
          peer_name_ + "'s registry did not take it within " +
          std::to_string(
              std::chrono::duration_cast<std::chrono::seconds>(replicate_timeout_).count()) +
          " s: " + s.message());
    }
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, pause, [this] { return stopping_; })) return Unavailable("stopping");
    pause = std::min<Duration>(pause * 2, 2s);
  }
}

std::pair<int64_t, std::string> RegionImages::Backlog() const {
  std::lock_guard lock(mu_);
  return {backlog_, last_error_};
}

void RegionImages::ReplicatorLoop() {
  while (true) {
    {
      std::unique_lock lock(mu_);
      if (cv_.wait_for(lock, kReplicatorEvery, [this] { return stopping_; })) return;
    }
    if (!may_act_()) continue;
    Result<std::vector<store::UnreplicatedImage>> todo =
        pipelines_->UnreplicatedImages(kReplicatorBatch);
    if (!todo.ok()) continue;  // PostgreSQL away: the next round asks again
    std::string error;
    int64_t left = static_cast<int64_t>(todo->size());
    for (const store::UnreplicatedImage& u : *todo) {
      Status s = CopyOnce(u.image.repository, u.image.digest);
      if (s.ok())
        s = pipelines_->MarkImageReplicated(u.deployment, u.bundle_version, u.image.digest);
      if (s.ok()) {
        --left;
        continue;
      }
      error = u.image.repository + "@" + u.image.digest + ": " + s.message();
      if (s.code() == Code::kUnavailable) break;  // the standby is away: all would fail
    }
    std::lock_guard lock(mu_);
    backlog_ = left;
    last_error_ = error;
  }
}

}  // namespace tandem::region
