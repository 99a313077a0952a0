#include "images/memory_registry.h"

#include "images/digest.h"

namespace tandem::images {

Status MemoryRegistry::CheckUp() const {
  if (down_) return Unavailable("registry " + address_ + ": cannot connect (it is down)");
  return Status::Ok();
}

Status MemoryRegistry::Ping() {
  std::lock_guard lock(mu_);
  return CheckUp();
}

Result<std::optional<int64_t>> MemoryRegistry::StatBlob(const std::string& repository,
                                                        const std::string& digest) {
  RETURN_IF_ERROR(ValidateRepository(repository));
  RETURN_IF_ERROR(ValidateDigest(digest));
  std::lock_guard lock(mu_);
  RETURN_IF_ERROR(CheckUp());
  auto repo = blobs_.find(repository);
  if (repo == blobs_.end()) return std::optional<int64_t>();
  auto it = repo->second.find(digest);
  if (it == repo->second.end()) return std::optional<int64_t>();
  return std::optional<int64_t>(static_cast<int64_t>(it->second.size()));
}

Status MemoryRegistry::PutBlob(const std::string& repository, const std::string& digest,
                               std::string_view data) {
  RETURN_IF_ERROR(ValidateRepository(repository));
  RETURN_IF_ERROR(ValidateDigest(digest));
  std::string actual = DigestOf(data);
  std::lock_guard lock(mu_);
  RETURN_IF_ERROR(CheckUp());
  if (actual != digest) {
    return InvalidArgument("registry " + address_ + ", repository " + repository + ", blob " +
                           digest + ": DIGEST_INVALID: the content's digest is " + actual);
  }
  blobs_[repository][digest] = std::string(data);
  ++blob_puts_;
  return Status::Ok();
}

Result<std::string> MemoryRegistry::GetBlob(const std::string& repository,
                                            const std::string& digest, int64_t max_bytes) {
  RETURN_IF_ERROR(ValidateRepository(repository));
  RETURN_IF_ERROR(ValidateDigest(digest));
  std::string data;
  {
    std::lock_guard lock(mu_);
    RETURN_IF_ERROR(CheckUp());
    ++blob_gets_;
    auto repo = blobs_.find(repository);
    if (repo == blobs_.end() || repo->second.count(digest) == 0) {
      return NotFound("registry " + address_ + ", repository " + repository + ", blob " + digest +
                      ": BLOB_UNKNOWN");
    }
    data = repo->second[digest];
    if (corrupt_reads_ > 0) {
      --corrupt_reads_;
      if (data.empty()) {
        data = "x";
      } else {
        data[data.size() / 2] = static_cast<char>(data[data.size() / 2] ^ 0x20);
      }
    }
  }
  if (static_cast<int64_t>(data.size()) > max_bytes) {
    return TooLarge("registry " + address_ + ", blob " + digest + ": more than " +
                    std::to_string(max_bytes) + " bytes");
  }
  std::string actual = DigestOf(data);
  if (actual != digest) {
    return Internal("registry " + address_ + ", repository " + repository + ", blob " + digest +
                    ": content digest mismatch: asked for " + digest + ", received " + actual);
  }
  return data;
}

Result<std::string> MemoryRegistry::PutManifest(const std::string& repository,
                                                const std::string& reference,
                                                const std::string& media_type,
                                                std::string_view bytes) {
  RETURN_IF_ERROR(ValidateRepository(repository));
  RETURN_IF_ERROR(ValidateReference(reference));
  const std::string where =
      "registry " + address_ + ", repository " + repository + ", manifest " + reference;
  std::string digest = DigestOf(bytes);
  if (IsDigestReference(reference) && reference != digest) {
    return InvalidArgument(where + ": DIGEST_INVALID: the manifest's digest is " + digest);
  }
  auto parsed = ParseManifest(bytes);
  if (!parsed.ok())
    return InvalidArgument(where + ": MANIFEST_INVALID: " + parsed.status().message());
  std::lock_guard lock(mu_);
  RETURN_IF_ERROR(CheckUp());
  for (const Descriptor& d : parsed->Blobs()) {
    if (blobs_[repository].count(d.digest) == 0) {
      return FailedPrecondition(where + ": MANIFEST_BLOB_UNKNOWN: blob unknown to registry (" +
                                d.digest + ")");
    }
  }
  manifests_[repository][digest] = {media_type, std::string(bytes)};
  if (!IsDigestReference(reference)) tags_[repository][reference] = digest;
  ++manifest_puts_;
  return digest;
}

Result<ManifestData> MemoryRegistry::GetManifest(const std::string& repository,
                                                 const std::string& reference) {
  RETURN_IF_ERROR(ValidateRepository(repository));
  RETURN_IF_ERROR(ValidateReference(reference));
  std::lock_guard lock(mu_);
  RETURN_IF_ERROR(CheckUp());
  std::string digest = reference;
  if (!IsDigestReference(reference)) {
    auto tag = tags_[repository].find(reference);
    if (tag != tags_[repository].end()) digest = tag->second;
  }
  auto it = manifests_[repository].find(digest);
  if (it == manifests_[repository].end()) {
    return NotFound("registry " + address_ + ", repository " + repository + ", manifest " +
                    reference + ": MANIFEST_UNKNOWN");
  }
  return ManifestData{it->second.media_type, it->second.bytes, digest};
}

Result<std::optional<std::string>> MemoryRegistry::StatManifest(const std::string& repository,
                                                                const std::string& reference) {
  auto m = GetManifest(repository, reference);
  if (m.ok()) return std::optional<std::string>(m->digest);
  if (m.status().code() == Code::kNotFound) return std::optional<std::string>();
  return m.status();
}

void MemoryRegistry::SetDown(bool down) {
  std::lock_guard lock(mu_);
  down_ = down;
}

void MemoryRegistry::CorruptNextBlobReads(int n) {
  std::lock_guard lock(mu_);
  corrupt_reads_ = n;
}

void MemoryRegistry::DeleteBlob(const std::string& repository, const std::string& digest) {
  std::lock_guard lock(mu_);
  blobs_[repository].erase(digest);
}

int MemoryRegistry::blob_puts() const {
  std::lock_guard lock(mu_);
  return blob_puts_;
}

int MemoryRegistry::blob_gets() const {
  std::lock_guard lock(mu_);
  return blob_gets_;
}

int MemoryRegistry::manifest_puts() const {
  std::lock_guard lock(mu_);
  return manifest_puts_;
}

}  // namespace tandem::images
