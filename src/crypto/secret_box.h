// Authenticated encryption of secrets at rest: AES-256-GCM (OpenSSL).
//
// Sealed format: version byte 0x01 | 12-byte random nonce | ciphertext | 16-byte tag.
// The associated data binds a ciphertext to where it is stored (for example
// "connection/<deployment id>/<conn id>/password"), so a sealed value copied to another row
// does not open. The key is 32 bytes, held by both regions of a pair.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"

namespace tandem {

class SecretBox {
 public:
  static constexpr size_t kKeySize = 32;

  // REQUIRES: key.size() == kKeySize (checked: InvalidArgument otherwise).
  static Result<SecretBox> Create(std::string key);
  // The key from its base64 text (surrounding whitespace ignored).
  static Result<SecretBox> FromBase64(std::string_view text);

  std::string Seal(std::string_view plaintext, std::string_view aad) const;
  // Fails with FailedPrecondition when the key or the associated data is wrong, or the data
  // was altered.
  Result<std::string> Open(std::string_view sealed, std::string_view aad) const;
  // The sealed body alone (nonce | ciphertext | tag), for formats with a header of their own
  // (the keyring's), which then belongs in `aad`.
  std::string SealBody(std::string_view plaintext, std::string_view aad) const;
  Result<std::string> OpenBody(std::string_view body, std::string_view aad) const;
  // A 32-byte key for another purpose (HMAC-SHA256 of the purpose under this key), so one
  // secret key serves several uses without any two sharing a key.
  std::string DeriveKey(std::string_view purpose) const;

 private:
  explicit SecretBox(std::string key) : key_(std::move(key)) {}
  std::string key_;
};

std::string Base64Encode(std::string_view bytes);
Result<std::string> Base64Decode(std::string_view text);
// base64url without padding (RFC 4648 section 5), as JWTs use it; the decoder refuses the
// standard alphabet's '+', '/' and padding.
std::string Base64UrlEncode(std::string_view bytes);
Result<std::string> Base64UrlDecode(std::string_view text);

// A new random key, base64-encoded, for `tandem up` and `tandem secret-key generate`.
std::string NewSecretKeyBase64();

}  // namespace tandem
