// Content digests as OCI writes them: "sha256:" followed by 64 lowercase hex digits. Only
// sha256 is produced or accepted (it is what the OCI image spec requires of registries).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"

namespace tandem::images {

// "sha256:<hex>" of `data`.
std::string DigestOf(std::string_view data);

// InvalidArgument unless `digest` is "sha256:" and 64 lowercase hex digits.
Status ValidateDigest(std::string_view digest);

// An incremental sha256, for content that arrives in pieces (a blob read from the network).
// Not thread-safe.
class Sha256Digester {
 public:
  Sha256Digester();
  ~Sha256Digester();
  Sha256Digester(const Sha256Digester&) = delete;
  Sha256Digester& operator=(const Sha256Digester&) = delete;

  void Update(std::string_view data);
  // "sha256:<hex>" of everything given so far. REQUIRES: called once.
  std::string Finish();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace tandem::images
