// Image replication: copies one image (a repository and a manifest digest) from a source
// registry to a target registry, as the image replicator does from the active region to the
// standby.
//
// Protocol, for each blob the manifest names (config first, then layers):
//   1. HEAD on the target; a blob present with the expected size is skipped.
//   2. GET from the source, checking its digest while reading. Content whose digest does not
//      match is discarded and fetched again, up to `max_fetch_attempts` times in all.
//   3. PUT to the target (which checks the digest once more).
// Then the manifest is PUT by digest and by tag (skipped when the target already answers the
// digest for both), and the target must answer the same digest for the tag.
//
// Idempotent and resumable: a run that stopped halfway left only whole blobs behind (a
// registry stores a blob only once its digest checks), so the next run copies what is missing.
// The manifest goes last, so the target never names an image whose blobs it lacks.
#pragma once

#include <cstdint>
#include <string>

#include "base/clock.h"
#include "base/status.h"
#include "images/registry.h"

namespace tandem::images {

struct ReplicateOptions {
  int max_fetch_attempts = 3;  // per blob, for content whose digest does not match
  // Pause before fetching again (doubling each time). Tests pass zero.
  Duration retry_pause = std::chrono::milliseconds(100);
};

struct ReplicateReport {
  std::string digest;  // the manifest's
  int blobs_copied = 0;
  int blobs_skipped = 0;  // already on the target
  int64_t bytes_copied = 0;
  int refetches = 0;  // fetches repeated because content did not match its digest
  bool manifest_copied = false;
};

// Copies `repository@digest` from `source` to `target`, tagging it `tag` there when `tag` is
// not empty. Errors say which registry failed and what it said; a blob that never arrived
// intact is Internal naming both digests; a target that cannot be reached is Unavailable.
// Clock: only for the pause between fetches.
Result<ReplicateReport> ReplicateImage(Registry& source, Registry& target,
                                       const std::string& repository, const std::string& digest,
                                       const std::string& tag, const ReplicateOptions& options = {},
                                       Clock& clock = RealClock());

}  // namespace tandem::images
