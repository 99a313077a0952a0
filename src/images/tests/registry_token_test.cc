// Registry tokens' signatures, checked with OpenSSL independently of the signer: ES256 for a
// P-256 key (JWS's r || s, not DER) and RS256 for an RSA key, each over "header.claims" and with
// the signer's certificate in x5c.
#include "images/registry_token.h"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <nlohmann/json.hpp>

#include "base/fs.h"
#include "crypto/secret_box.h"

namespace tandem::images {
namespace {

using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using CertPtr = std::unique_ptr<X509, decltype(&X509_free)>;

// A self-signed certificate for `key`, and both as PEM files under `dir`.
void WriteSelfSigned(EVP_PKEY* key, const std::string& dir) {
  CertPtr cert(X509_new(), X509_free);
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("signer"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_set_pubkey(cert.get(), key);
  ASSERT_GT(X509_sign(cert.get(), key, EVP_sha256()), 0);
  FILE* c = fopen((dir + "/signer.crt").c_str(), "w");
  ASSERT_NE(c, nullptr);
  PEM_write_X509(c, cert.get());
  fclose(c);
  FILE* k = fopen((dir + "/signer.key").c_str(), "w");
  ASSERT_NE(k, nullptr);
  PEM_write_PrivateKey(k, key, nullptr, nullptr, 0, nullptr, nullptr);
  fclose(k);
}

// Verifies `token`'s signature with the public key of the certificate in its x5c; its header.
nlohmann::json VerifyToken(const std::string& token, bool* valid) {
  *valid = false;
  const size_t a = token.find('.'), b = token.rfind('.');
  nlohmann::json header = nlohmann::json::parse(*Base64UrlDecode(token.substr(0, a)));
  const std::string der = *Base64Decode(header["x5c"][0].get<std::string>());
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  CertPtr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())), X509_free);
  if (!cert) return header;
  KeyPtr key(X509_get_pubkey(cert.get()), EVP_PKEY_free);
  std::string sig = *Base64UrlDecode(token.substr(b + 1));
  if (header["alg"] == "ES256") {
    if (sig.size() != 64) return header;
    ECDSA_SIG* es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()), 32, nullptr),
                   BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()) + 32, 32, nullptr));
    unsigned char* out = nullptr;
    const int n = i2d_ECDSA_SIG(es, &out);
    sig.assign(reinterpret_cast<char*>(out), static_cast<size_t>(n));
    OPENSSL_free(out);
    ECDSA_SIG_free(es);
  }
  const std::string signing = token.substr(0, b);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get());
  *valid =
      EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                       reinterpret_cast<const unsigned char*>(signing.data()), signing.size()) == 1;
  return header;
}

class RegistryTokenTest : public ::testing::TestWithParam<const char*> {};

TEST_P(RegistryTokenTest, TheSignatureVerifiesAndAChangedClaimDoesNot) {
  const std::string alg = GetParam();
  KeyPtr key(alg == "ES256" ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048), EVP_PKEY_free);
  ASSERT_TRUE(key);
  auto dir = TempDir::Create("tandem-registry-token");
  ASSERT_TRUE(dir.ok());
  WriteSelfSigned(key.get(), dir->path());
  auto signer =
      RegistryTokenSigner::FromFiles(dir->path() + "/signer.crt", dir->path() + "/signer.key");
  ASSERT_TRUE(signer.ok()) << signer.status().ToString();
  const std::string token = (*signer)->Sign("user alice", {{"etl-1/bundle", {"pull"}}}, 1000);

  bool valid = false;
  const nlohmann::json header = VerifyToken(token, &valid);
  EXPECT_TRUE(valid) << token;
  EXPECT_EQ(header["alg"], alg);
  const size_t a = token.find('.'), b = token.rfind('.');
  nlohmann::json claims = nlohmann::json::parse(*Base64UrlDecode(token.substr(a + 1, b - a - 1)));
  EXPECT_EQ(claims["iss"], "tandem");
  EXPECT_EQ(claims["aud"], "tandem-registry");
  EXPECT_EQ(claims["sub"], "user alice");
  EXPECT_EQ(claims["exp"], 1000 + kRegistryTokenSeconds);
  EXPECT_EQ(claims["access"][0]["name"], "etl-1/bundle");

  claims["access"][0]["actions"] = {"pull", "push"};
  const std::string changed =
      token.substr(0, a + 1) + Base64UrlEncode(claims.dump()) + token.substr(b);
  VerifyToken(changed, &valid);
  EXPECT_FALSE(valid);
}

INSTANTIATE_TEST_SUITE_P(Algorithms, RegistryTokenTest, ::testing::Values("ES256", "RS256"));

TEST(RegistryTokenSignerTest, AKeyThatIsNotTheCertificatesIsRefused) {
  KeyPtr one(EVP_EC_gen("P-256"), EVP_PKEY_free);
  KeyPtr two(EVP_EC_gen("P-256"), EVP_PKEY_free);
  auto a = TempDir::Create("tandem-registry-token");
  auto b = TempDir::Create("tandem-registry-token");
  ASSERT_TRUE(a.ok() && b.ok());
  WriteSelfSigned(one.get(), a->path());
  WriteSelfSigned(two.get(), b->path());
  auto signer =
      RegistryTokenSigner::FromFiles(a->path() + "/signer.crt", b->path() + "/signer.key");
  EXPECT_EQ(signer.status().code(), Code::kInvalidArgument);
  EXPECT_FALSE(
      RegistryTokenSigner::FromFiles(a->path() + "/nope.crt", a->path() + "/signer.key").ok());
}

}  // namespace
}  // namespace tandem::images
