#include "crypto/keyring.h"

#include <mutex>

namespace tandem {
namespace {

constexpr unsigned char kLegacyVersion = 0x01;
constexpr unsigned char kVersion = 0x02;

}  // namespace

void Keyring::Add(KeyId id, SecretBox key) {
  std::unique_lock lock(mu_);
  keys_.insert_or_assign(id, std::move(key));
}

void Keyring::Remove(KeyId id) {
  std::unique_lock lock(mu_);
  keys_.erase(id);
}

bool Keyring::Has(KeyId id) const {
  std::shared_lock lock(mu_);
  return keys_.count(id) > 0;
}

std::string Keyring::Header(KeyId id) {
  const uint32_t v = id.value();
  std::string h(kHeaderSize, '\0');
  h[0] = static_cast<char>(kVersion);
  for (int i = 0; i < 4; ++i) h[1 + i] = static_cast<char>((v >> (8 * (3 - i))) & 0xff);
  return h;
}

Result<std::optional<KeyId>> Keyring::KeyOf(std::string_view sealed) {
  if (!sealed.empty() && static_cast<unsigned char>(sealed[0]) == kLegacyVersion) {
    return std::optional<KeyId>();
  }
  if (sealed.size() < kHeaderSize || static_cast<unsigned char>(sealed[0]) != kVersion) {
    return FailedPrecondition("sealed secret is malformed");
  }
  uint32_t v = 0;
  for (size_t i = 1; i < kHeaderSize; ++i) v = (v << 8) | static_cast<unsigned char>(sealed[i]);
  return std::optional<KeyId>(KeyId(v));
}

Result<std::string> Keyring::Seal(KeyId id, std::string_view plaintext,
                                  std::string_view aad) const {
  std::shared_lock lock(mu_);
  auto it = keys_.find(id);
  if (it == keys_.end()) return NotFound("key " + std::to_string(id.value()) + " is not loaded");
  std::string header = Header(id);
  return header + it->second.SealBody(plaintext, header + std::string(aad));
}

Result<std::string> Keyring::Open(std::string_view sealed, std::string_view aad) const {
  ASSIGN_OR_RETURN(std::optional<KeyId> id, KeyOf(sealed));
  if (!id) return legacy_.Open(sealed, aad);
  std::shared_lock lock(mu_);
  auto it = keys_.find(*id);
  if (it == keys_.end()) return NotFound("key " + std::to_string(id->value()) + " is not loaded");
  std::string header(sealed.substr(0, kHeaderSize));
  return it->second.OpenBody(sealed.substr(kHeaderSize), header + std::string(aad));
}

}  // namespace tandem
