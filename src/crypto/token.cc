#include "crypto/token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <vector>

#include "crypto/secret_box.h"

namespace tandem {
namespace {

constexpr std::string_view kVersion = "tandem-task-token-v1";
constexpr size_t kFields = 8;  // the version tag and seven claims


std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out(1);
  for (char c : s) {
    if (c == sep)
      out.emplace_back();
    else
      out.back().push_back(c);
  }
  return out;
}

}  // namespace

std::string HmacSha256(std::string_view key, std::string_view message) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), out, &len);
  return {reinterpret_cast<const char*>(out), len};
}

std::string Sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

std::string TokenSigner::Mac(std::string_view data) const { return HmacSha256(key_, data); }

std::string TokenSigner::Sign(const TaskClaims& c) const {
  std::string claims = std::string(kVersion) + "\n" + c.ti_id + "\n" +
                       std::to_string(c.try_number) + "\n" + c.deployment_id + "\n" + c.dag_id +
                       "\n" + c.run_id + "\n" + c.task_id + "\n" + std::to_string(c.expires_at);
  return Base64UrlEncode(claims) + "." + Base64UrlEncode(Mac(claims));
}

Result<TaskClaims> TokenSigner::Verify(std::string_view token, int64_t now) const {
  const Status bad = Unauthenticated("the task token is not valid");
  size_t dot = token.find('.');
  if (dot == std::string_view::npos || token.size() > 4096) return bad;
  Result<std::string> claims = Base64UrlDecode(token.substr(0, dot));
  Result<std::string> mac = Base64UrlDecode(token.substr(dot + 1));
  if (!claims.ok() || !mac.ok()) return bad;
  std::string want = Mac(*claims);
  if (mac->size() != want.size() || CRYPTO_memcmp(mac->data(), want.data(), want.size()) != 0) {
    return bad;
  }
  std::vector<std::string> f = Split(*claims, '\n');
  if (f.size() != kFields || f[0] != kVersion) return bad;
  TaskClaims c;
  c.ti_id = f[1];
  c.deployment_id = f[3];
  c.dag_id = f[4];
  c.run_id = f[5];
  c.task_id = f[6];
  try {
    c.try_number = std::stoi(f[2]);
    c.expires_at = std::stoll(f[7]);
  } catch (const std::exception&) {
    return bad;
  }
  if (c.expires_at <= now) return Unauthenticated("the task token has expired");
  return c;
}

}  // namespace tandem
