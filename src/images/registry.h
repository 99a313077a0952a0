// A registry of OCI images, as the Registry HTTP API v2 (the OCI distribution spec) exposes it:
// blobs and manifests addressed by repository and digest, manifests also by tag.
//
// Registry is the interface; RegistryClient (registry_client.h) speaks HTTP to a real registry
// and MemoryRegistry (memory_registry.h) is the fake that tests use. Both keep the rules that
// matter to callers: a blob is stored only under the digest of its content, and a manifest is
// accepted only when every blob it names is present (MANIFEST_BLOB_UNKNOWN otherwise).
//
// Errors name the registry, the repository and the digest or tag, and carry the registry's
// error code where it sent one. Codes: NotFound (BLOB_UNKNOWN, MANIFEST_UNKNOWN, NAME_UNKNOWN),
// FailedPrecondition (MANIFEST_BLOB_UNKNOWN), InvalidArgument (DIGEST_INVALID, SIZE_INVALID,
// NAME_INVALID, MANIFEST_INVALID, ...), Unavailable (cannot connect, timeout, 5xx, 429),
// Internal (content whose digest does not match what was asked for, or a malformed answer).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"
#include "images/oci_image.h"

namespace tandem::images {

struct ManifestData {
  std::string media_type;  // the Content-Type it was stored with
  std::string bytes;
  std::string digest;  // of `bytes`, checked
};

class Registry {
 public:
  virtual ~Registry() = default;

  // Where the registry is ("http://127.0.0.1:5000"), for messages.
  virtual const std::string& address() const = 0;

  // OK when the registry answers its API root.
  virtual Status Ping() = 0;
  // The blob's size, or nullopt when the repository does not hold it.
  virtual Result<std::optional<int64_t>> StatBlob(const std::string& repository,
                                                  const std::string& digest) = 0;
  // Stores `data` as `digest`; the registry checks the digest (DIGEST_INVALID).
  virtual Status PutBlob(const std::string& repository, const std::string& digest,
                         std::string_view data) = 0;
  // The blob, checked against `digest` while it is read. Internal naming both digests when the
  // content does not match; TooLarge past `max_bytes`.
  virtual Result<std::string> GetBlob(const std::string& repository, const std::string& digest,
                                      int64_t max_bytes) = 0;
  // Stores a manifest under `reference` (a tag or its own digest) and returns its digest, as
  // the registry computed it and checked against ours.
  virtual Result<std::string> PutManifest(const std::string& repository,
                                          const std::string& reference,
                                          const std::string& media_type,
                                          std::string_view bytes) = 0;
  // The manifest `reference` (a tag or a digest) names. When `reference` is a digest, the
  // content is checked against it.
  virtual Result<ManifestData> GetManifest(const std::string& repository,
                                           const std::string& reference) = 0;
  // The digest of the manifest `reference` names, or nullopt when there is none.
  virtual Result<std::optional<std::string>> StatManifest(const std::string& repository,
                                                          const std::string& reference) = 0;
};
using RegistryPtr = std::unique_ptr<Registry>;

// InvalidArgument unless `name` is a repository name the distribution spec allows
// (lowercase components of [a-z0-9] joined by '.', '_', '__' or '-', separated by '/').
Status ValidateRepository(std::string_view name);
// InvalidArgument unless `tag` is [A-Za-z0-9_][A-Za-z0-9._-]{0,127}.
Status ValidateTag(std::string_view tag);
// A tag or a digest.
Status ValidateReference(std::string_view reference);
bool IsDigestReference(std::string_view reference);

// Pushes `image` to `repository`: the blobs the registry lacks, then the manifest by digest
// and, when `tag` is not empty, by tag.
Status PushImage(Registry& registry, const std::string& repository, const std::string& tag,
                 const Image& image);
// Pulls the image `reference` names and extracts its files (ExtractImage checks every blob).
Result<Files> PullImage(Registry& registry, const std::string& repository,
                        const std::string& reference, const ExtractLimits& limits = {});

}  // namespace tandem::images
