// Data keys with ids, so that the key sealing secrets at rest can be rotated while the platform
// runs (docs/security.md, "Keys").
//
// A value sealed by a keyring names the key that sealed it:
//
//   version byte 0x02 | key id (4 bytes, big-endian) | 12-byte nonce | ciphertext | 16-byte tag
//
// and the five header bytes are part of the associated data, so a value cannot be passed off as
// sealed under another key. Values of version 0x01 (SecretBox::Seal, no key id) were sealed
// directly under the pair's secret key before the keyring existed; a keyring opens them with
// that key, its `legacy` box, until a rotation reseals them.
//
// The keys themselves live in the metadata database, each sealed ("wrapped") under a key derived
// from the pair's secret key, so both regions hold the same ring through replication; the store
// loads them into a Keyring as it meets their ids.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>

#include "base/status.h"
#include "base/strong_id.h"
#include "crypto/secret_box.h"

namespace tandem {

using KeyId = StrongId<uint32_t, struct KeyIdTag>;

class Keyring {
 public:
  static constexpr size_t kHeaderSize = 5;

  explicit Keyring(SecretBox legacy) : legacy_(std::move(legacy)) {}

  // Adds data key `id` (replacing one of that id), or drops it.
  void Add(KeyId id, SecretBox key);
  void Remove(KeyId id);
  bool Has(KeyId id) const;

  // REQUIRES: Has(id) (NotFound otherwise).
  Result<std::string> Seal(KeyId id, std::string_view plaintext, std::string_view aad) const;
  // Opens a value of either version. NotFound when its key is not in the ring (the caller may
  // load it and try again); FailedPrecondition when it does not open.
  Result<std::string> Open(std::string_view sealed, std::string_view aad) const;

  // The key a sealed value names; nullopt for a version 0x01 value (the pair's key). Fails on a
  // value of neither version.
  static Result<std::optional<KeyId>> KeyOf(std::string_view sealed);
  // The header of values sealed under `id`.
  static std::string Header(KeyId id);

 private:
  const SecretBox legacy_;
  mutable std::shared_mutex mu_;
  std::map<KeyId, SecretBox> keys_;
};

}  // namespace tandem
