#include "auth/password.h"

#include <sodium.h>

#include <mutex>

#include "base/random.h"

namespace tandem::auth {
namespace {

void InitSodium() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (sodium_init() < 0) std::abort();  // no randomness: nothing safe can follow
  });
}

constexpr size_t kMinPassword = 12;
constexpr size_t kMaxPassword = 1024;

}  // namespace

Status CheckPasswordRules(std::string_view password) {
  if (password.size() < kMinPassword) {
    return InvalidArgument("a password has at least " + std::to_string(kMinPassword) +
                           " characters");
  }
  if (password.size() > kMaxPassword) {
    return InvalidArgument("a password has at most " + std::to_string(kMaxPassword) +
                           " characters");
  }
  return Status::Ok();
}

Result<std::string> HashPassword(std::string_view password) {
  InitSodium();
  RETURN_IF_ERROR(CheckPasswordRules(password));
  std::string out(crypto_pwhash_STRBYTES, '\0');
  if (crypto_pwhash_str(out.data(), password.data(), password.size(),
                        crypto_pwhash_OPSLIMIT_INTERACTIVE,
                        crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
    return Internal("hashing the password ran out of memory");
  }
  out.resize(out.find('\0'));
  return out;
}

bool VerifyPassword(std::string_view hash, std::string_view password) {
  InitSodium();
  if (hash.empty() || hash.size() >= crypto_pwhash_STRBYTES) return false;
  const std::string h(hash);  // NUL-terminated for libsodium
  return crypto_pwhash_str_verify(h.c_str(), password.data(), password.size()) == 0;
}

const std::string& DecoyHash() {
  static const std::string decoy = *HashPassword(HexEncode(RandomBytes(32)));
  return decoy;
}

}  // namespace tandem::auth
