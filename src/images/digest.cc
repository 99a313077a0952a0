#include "images/digest.h"

#include <openssl/evp.h>

#include "base/random.h"
#include "crypto/token.h"

namespace tandem::images {

struct Sha256Digester::State {
  EVP_MD_CTX* ctx = nullptr;
};

std::string DigestOf(std::string_view data) { return "sha256:" + Sha256Hex(data); }

Status ValidateDigest(std::string_view digest) {
  constexpr std::string_view kPrefix = "sha256:";
  bool ok = digest.size() == kPrefix.size() + 64 && digest.substr(0, kPrefix.size()) == kPrefix;
  for (size_t i = kPrefix.size(); ok && i < digest.size(); ++i) {
    char c = digest[i];
    ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  }
  if (ok) return Status::Ok();
  std::string shown(digest.substr(0, 80));
  return InvalidArgument("not a sha256 digest: \"" + shown +
                         "\" (expected sha256: and 64 lowercase hex digits)");
}

Sha256Digester::Sha256Digester() : state_(std::make_unique<State>()) {
  state_->ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(state_->ctx, EVP_sha256(), nullptr);
}

Sha256Digester::~Sha256Digester() { EVP_MD_CTX_free(state_->ctx); }

void Sha256Digester::Update(std::string_view data) {
  EVP_DigestUpdate(state_->ctx, data.data(), data.size());
}

std::string Sha256Digester::Finish() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(state_->ctx, md, &len);
  return "sha256:" + HexEncode(std::string(reinterpret_cast<const char*>(md), len));
}

}  // namespace tandem::images
