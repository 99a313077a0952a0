#include "images/registry_token.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <nlohmann/json.hpp>

#include "base/fs.h"
#include "base/random.h"
#include "crypto/secret_box.h"
#include "images/registry.h"

namespace tandem::images {
namespace {

using Json = nlohmann::json;
using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using CertPtr = std::unique_ptr<X509, decltype(&X509_free)>;
using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;
using SigPtr = std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)>;

BioPtr MemBio(const std::string& text) {
  return {BIO_new_mem_buf(text.data(), static_cast<int>(text.size())), BIO_free};
}

}  // namespace

struct RegistryTokenSigner::Impl {
  KeyPtr key{nullptr, EVP_PKEY_free};
  std::string alg;         // ES256 | RS256
  std::string header_b64;  // base64url of the header, x5c included
};

RegistryTokenSigner::RegistryTokenSigner(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RegistryTokenSigner::~RegistryTokenSigner() = default;

Result<std::unique_ptr<RegistryTokenSigner>> RegistryTokenSigner::FromFiles(
    const std::string& cert_file, const std::string& key_file) {
  ASSIGN_OR_RETURN(std::string cert_pem, ReadFile(cert_file));
  ASSIGN_OR_RETURN(std::string key_pem, ReadFile(key_file));
  BioPtr cb = MemBio(cert_pem);
  CertPtr cert(cb ? PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr) : nullptr, X509_free);
  if (!cert) return InvalidArgument(cert_file + " holds no PEM certificate");
  BioPtr kb = MemBio(key_pem);
  auto impl = std::make_unique<Impl>();
  impl->key.reset(kb ? PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!impl->key) return InvalidArgument(key_file + " holds no PEM private key");
  if (X509_check_private_key(cert.get(), impl->key.get()) != 1) {
    return InvalidArgument(key_file + " is not the key of the certificate in " + cert_file);
  }
  if (EVP_PKEY_is_a(impl->key.get(), "RSA")) {
    impl->alg = "RS256";
  } else if (EVP_PKEY_is_a(impl->key.get(), "EC") && EVP_PKEY_get_bits(impl->key.get()) == 256) {
    impl->alg = "ES256";
  } else {
    return InvalidArgument(key_file +
                           ": registry tokens are signed with a P-256 or an RSA key, and this is "
                           "neither");
  }
  int n = i2d_X509(cert.get(), nullptr);
  std::string der(static_cast<size_t>(n), '\0');
  auto* p = reinterpret_cast<unsigned char*>(der.data());
  i2d_X509(cert.get(), &p);
  const Json header = {{"alg", impl->alg}, {"typ", "JWT"}, {"x5c", {Base64Encode(der)}}};
  impl->header_b64 = Base64UrlEncode(header.dump());
  return std::unique_ptr<RegistryTokenSigner>(new RegistryTokenSigner(std::move(impl)));
}

std::string RegistryTokenSigner::Sign(const std::string& subject,
                                      const std::vector<RegistryAccess>& access,
                                      int64_t now) const {
  Json grants = Json::array();
  for (const RegistryAccess& a : access) {
    grants.push_back({{"type", "repository"}, {"name", a.name}, {"actions", a.actions}});
  }
  const Json claims = {{"iss", kRegistryTokenIssuer},
                       {"sub", subject},
                       {"aud", kRegistryService},
                       {"iat", now},
                       {"nbf", now},
                       {"exp", now + kRegistryTokenSeconds},
                       {"jti", HexEncode(RandomBytes(16))},
                       {"access", grants}};
  const std::string signing = impl_->header_b64 + "." + Base64UrlEncode(claims.dump());
  MdCtxPtr ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  size_t len = 0;
  EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, impl_->key.get());
  EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(signing.data()),
                 signing.size());
  std::string sig(len, '\0');
  EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                 reinterpret_cast<const unsigned char*>(signing.data()), signing.size());
  sig.resize(len);
  if (impl_->alg == "ES256") {
    // JWS wants r || s, 32 bytes each; OpenSSL gives DER.
    const auto* d = reinterpret_cast<const unsigned char*>(sig.data());
    SigPtr es(d2i_ECDSA_SIG(nullptr, &d, static_cast<long>(sig.size())), ECDSA_SIG_free);
    std::string raw(64, '\0');
    auto* out = reinterpret_cast<unsigned char*>(raw.data());
    BN_bn2binpad(ECDSA_SIG_get0_r(es.get()), out, 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(es.get()), out + 32, 32);
    sig = raw;
  }
  return signing + "." + Base64UrlEncode(sig);
}

Result<RegistryAccess> ParseRegistryScope(std::string_view scope) {
  const std::string shown(scope.substr(0, 200));
  size_t first = scope.find(':');
  size_t last = scope.rfind(':');
  if (first == std::string_view::npos || first == last) {
    return InvalidArgument("scope `" + shown + "` is not `repository:<name>:<actions>`");
  }
  if (scope.substr(0, first) != "repository") {
    return InvalidArgument("scope `" + shown + "`: only repository scopes are granted");
  }
  RegistryAccess a;
  a.name = std::string(scope.substr(first + 1, last - first - 1));
  RETURN_IF_ERROR(ValidateRepository(a.name));
  std::string_view actions = scope.substr(last + 1);
  while (!actions.empty()) {
    size_t comma = actions.find(',');
    std::string_view action = actions.substr(0, comma);
    if (action != "pull" && action != "push") {
      return InvalidArgument("scope `" + shown + "`: the actions are pull and push");
    }
    if (std::find(a.actions.begin(), a.actions.end(), action) == a.actions.end()) {
      a.actions.emplace_back(action);
    }
    actions = comma == std::string_view::npos ? "" : actions.substr(comma + 1);
  }
  if (a.actions.empty()) return InvalidArgument("scope `" + shown + "` names no action");
  return a;
}

std::string RegistryScope(const std::string& repository, bool push) {
  return "repository:" + repository + (push ? ":pull,push" : ":pull");
}

}  // namespace tandem::images
