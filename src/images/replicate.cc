#include "images/replicate.h"

#include <set>

#include "images/digest.h"

namespace tandem::images {
namespace {

// The blob from `source`, fetched again while its content does not match its digest.
Result<std::string> FetchVerified(Registry& source, const std::string& repository,
                                  const Descriptor& d, const ReplicateOptions& options,
                                  Clock& clock, ReplicateReport* report) {
  Duration pause = options.retry_pause;
  Status last;
  for (int attempt = 1; attempt <= std::max(1, options.max_fetch_attempts); ++attempt) {
    if (attempt > 1) {
      ++report->refetches;
      clock.SleepFor(pause);
      pause *= 2;
    }
    auto blob = source.GetBlob(repository, d.digest, d.size);
    if (blob.ok()) {
      if (static_cast<int64_t>(blob->size()) == d.size) return blob;
      last = Internal("registry " + source.address() + ", repository " + repository + ", blob " +
                      d.digest + ": " + std::to_string(blob->size()) +
                      " bytes, the manifest says " + std::to_string(d.size));
      continue;
    }
    last = blob.status();
    // Corrupt or cut-short content may come out right the next time; an answer that the blob
    // is not there, or that the request is wrong, will not.
    if (last.code() != Code::kInternal && last.code() != Code::kUnavailable) return last;
  }
  return last.WithContext("blob " + d.digest + " did not arrive intact in " +
                          std::to_string(std::max(1, options.max_fetch_attempts)) + " fetches");
}

}  // namespace

Result<ReplicateReport> ReplicateImage(Registry& source, Registry& target,
                                       const std::string& repository, const std::string& digest,
                                       const std::string& tag, const ReplicateOptions& options,
                                       Clock& clock) {
  RETURN_IF_ERROR(ValidateRepository(repository));
  RETURN_IF_ERROR(ValidateDigest(digest));
  if (!tag.empty()) RETURN_IF_ERROR(ValidateTag(tag));
  ReplicateReport report;
  report.digest = digest;

  ASSIGN_OR_RETURN(ManifestData manifest, source.GetManifest(repository, digest));
  auto parsed = ParseManifest(manifest.bytes);
  if (!parsed.ok()) {
    return parsed.status().WithContext("registry " + source.address() + ", repository " +
                                       repository + ", manifest " + digest);
  }
  if (manifest.media_type.empty()) {
    manifest.media_type = parsed->media_type.empty() ? kOciManifestType : parsed->media_type;
  }
  std::set<std::string> done;
  for (const Descriptor& d : parsed->Blobs()) {
    if (!done.insert(d.digest).second) continue;
    ASSIGN_OR_RETURN(std::optional<int64_t> present, target.StatBlob(repository, d.digest));
    if (present && *present == d.size) {
      ++report.blobs_skipped;
      continue;
    }
    ASSIGN_OR_RETURN(std::string data,
                     FetchVerified(source, repository, d, options, clock, &report));
    RETURN_IF_ERROR(target.PutBlob(repository, d.digest, data));
    ++report.blobs_copied;
    report.bytes_copied += static_cast<int64_t>(data.size());
  }

  ASSIGN_OR_RETURN(std::optional<std::string> by_digest, target.StatManifest(repository, digest));
  std::optional<std::string> by_tag;
  if (!tag.empty()) {
    ASSIGN_OR_RETURN(by_tag, target.StatManifest(repository, tag));
  }
  if (!by_digest) {
    RETURN_IF_ERROR(
        target.PutManifest(repository, digest, manifest.media_type, manifest.bytes).status());
    report.manifest_copied = true;
  }
  if (!tag.empty() && by_tag != digest) {
    RETURN_IF_ERROR(
        target.PutManifest(repository, tag, manifest.media_type, manifest.bytes).status());
    report.manifest_copied = true;
    ASSIGN_OR_RETURN(by_tag, target.StatManifest(repository, tag));
    if (by_tag != digest) {
      return Internal("registry " + target.address() + ", repository " + repository + ": tag " +
                      tag + " names " + by_tag.value_or("nothing") + " after replicating " +
                      digest);
    }
  }
  if (!by_digest) {
    ASSIGN_OR_RETURN(by_digest, target.StatManifest(repository, digest));
    if (by_digest != digest) {
      return Internal("registry " + target.address() + ", repository " + repository +
                      ": manifest " + digest + " is not there after it was stored");
    }
  }
  report.bytes_copied += report.manifest_copied ? static_cast<int64_t>(manifest.bytes.size()) : 0;
  return report;
}

}  // namespace tandem::images
