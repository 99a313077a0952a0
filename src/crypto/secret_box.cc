#include "crypto/secret_box.h"

#include <openssl/evp.h>

#include <memory>

#include "base/random.h"
#include "base/text.h"
#include "crypto/token.h"

namespace tandem {
namespace {

constexpr unsigned char kVersion = 0x01;
constexpr size_t kNonce = 12;
constexpr size_t kTag = 16;

using CtxPtr = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

const unsigned char* U(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

}  // namespace

Result<SecretBox> SecretBox::Create(std::string key) {
  if (key.size() != kKeySize) {
    return InvalidArgument("secret key must be " + std::to_string(kKeySize) + " bytes, got " +
                           std::to_string(key.size()));
  }
  return SecretBox(std::move(key));
}

Result<SecretBox> SecretBox::FromBase64(std::string_view text) {
  auto raw = Base64Decode(TrimSpace(text));
  if (!raw.ok()) return InvalidArgument("secret key is not valid base64");
  auto box = Create(std::move(raw).value());
  if (!box.ok()) {
    return InvalidArgument(
        "secret key must decode to 32 bytes (base64 of 32 random bytes; "
        "`openssl rand -base64 32` makes one)");
  }
  return box;
}

std::string SecretBox::Seal(std::string_view plaintext, std::string_view aad) const {
  return std::string(1, static_cast<char>(kVersion)) + SealBody(plaintext, aad);
}

Result<std::string> SecretBox::Open(std::string_view sealed, std::string_view aad) const {
  if (sealed.empty() || static_cast<unsigned char>(sealed[0]) != kVersion) {
    return FailedPrecondition("sealed secret is malformed");
  }
  return OpenBody(sealed.substr(1), aad);
}

std::string SecretBox::SealBody(std::string_view plaintext, std::string_view aad) const {
  std::string nonce = RandomBytes(kNonce);
  std::string out;
  out.resize(kNonce + plaintext.size() + kTag);
  out.replace(0, kNonce, nonce);
  CtxPtr ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  int len = 0;
  auto* dst = reinterpret_cast<unsigned char*>(out.data());
  EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr);
  EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonce, nullptr);
  EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, U(key_), U(nonce));
  EVP_EncryptUpdate(ctx.get(), nullptr, &len, U(aad), static_cast<int>(aad.size()));
  EVP_EncryptUpdate(ctx.get(), dst + kNonce, &len, U(plaintext),
                    static_cast<int>(plaintext.size()));
  EVP_EncryptFinal_ex(ctx.get(), dst + kNonce + len, &len);
  EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTag, dst + kNonce + plaintext.size());
  return out;
}

Result<std::string> SecretBox::OpenBody(std::string_view body, std::string_view aad) const {
  if (body.size() < kNonce + kTag) return FailedPrecondition("sealed secret is malformed");
  size_t n = body.size() - kNonce - kTag;
  std::string out(n, '\0');
  std::string tag(body.substr(kNonce + n));
  CtxPtr ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  int len = 0;
  EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr);
  EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonce, nullptr);
  EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, U(key_), U(body));
  EVP_DecryptUpdate(ctx.get(), nullptr, &len, U(aad), static_cast<int>(aad.size()));
  EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len,
                    U(body.substr(kNonce)), static_cast<int>(n));
  EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTag, tag.data());
  if (EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out.data()) + len, &len) <=
      0) {
    return FailedPrecondition("secret does not decrypt: wrong secret key, or the data was altered");
  }
  return out;
}

std::string Base64Encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), U(bytes),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

Result<std::string> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) return InvalidArgument("base64 length is not a multiple of 4");
  std::string out(text.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), U(text),
                          static_cast<int>(text.size()));
  if (n < 0) return InvalidArgument("not valid base64");
  size_t pad = 0;
  if (!text.empty() && text.back() == '=') ++pad;
  if (text.size() > 1 && text[text.size() - 2] == '=') ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

std::string Base64UrlEncode(std::string_view bytes) {
  std::string s = Base64Encode(bytes);
  while (!s.empty() && s.back() == '=') s.pop_back();
  for (char& c : s) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return s;
}

Result<std::string> Base64UrlDecode(std::string_view text) {
  std::string s(text);
  for (char& c : s) {
    if (c == '-') {
      c = '+';
    } else if (c == '_') {
      c = '/';
    } else if (c == '+' || c == '/' || c == '=') {
      return InvalidArgument("not base64url");
    }
  }
  while (s.size() % 4 != 0) s.push_back('=');
  return Base64Decode(s);
}

std::string NewSecretKeyBase64() { return Base64Encode(RandomBytes(SecretBox::kKeySize)); }

std::string SecretBox::DeriveKey(std::string_view purpose) const {
  return HmacSha256(key_, purpose);
}

}  // namespace tandem
