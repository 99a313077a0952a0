#include "tls/certificates.h"

#include <arpa/inet.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

#include "base/fs.h"

namespace tandem::tls {
namespace {

using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;
using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using CertPtr = std::unique_ptr<X509, decltype(&X509_free)>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, decltype(&X509_EXTENSION_free)>;
using BnPtr = std::unique_ptr<BIGNUM, decltype(&BN_free)>;
using StorePtr = std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)>;
using NamesPtr = std::unique_ptr<GENERAL_NAMES, decltype(&GENERAL_NAMES_free)>;

// OpenSSL's last error, as text, for messages; clears the queue.
std::string OpenSslError() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

Status OpenSslFailure(const std::string& what) {
  return tandem::Internal(what + ": " + OpenSslError());
}

bool IsIpv4(const std::string& s) {
  in_addr a{};
  return inet_pton(AF_INET, s.c_str(), &a) == 1;
}

// A DNS name as certificates carry them: labels of letters, digits and '-', the first label
// possibly "*".
bool IsCertDnsName(const std::string& s) {
  if (s.empty() || s.size() > 253) return false;
  size_t start = 0;
  bool first = true;
  while (start <= s.size()) {
    size_t dot = s.find('.', start);
    if (dot == std::string::npos) dot = s.size();
    const std::string label = s.substr(start, dot - start);
    if (label.empty() || label.size() > 63) return false;
    if (!(first && label == "*")) {
      for (char c : label) {
        const bool ok =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
        if (!ok) return false;
      }
      if (label.front() == '-' || label.back() == '-') return false;
    }
    first = false;
    start = dot + 1;
  }
  return true;
}

Result<std::string> ToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()), BIO_free);
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1)
    return OpenSslFailure("writing a certificate");
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

Result<std::string> ToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()), BIO_free);
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return OpenSslFailure("writing a private key");
  }
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

Result<CertPtr> CertFromPem(const std::string& pem, const std::string& where) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  CertPtr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr, X509_free);
  ERR_clear_error();
  if (!cert) return InvalidArgument(where + " holds no PEM certificate");
  return cert;
}

Result<KeyPtr> KeyFromPem(const std::string& pem, const std::string& where) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  KeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr,
             EVP_PKEY_free);
  ERR_clear_error();
  if (!key) return InvalidArgument(where + " holds no PEM private key (or one with a passphrase)");
  return key;
}

Result<KeyPtr> NewKey() {
  KeyPtr key(EVP_EC_gen("P-256"), EVP_PKEY_free);
  if (!key) return OpenSslFailure("making a P-256 key");
  return key;
}

Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()), X509_EXTENSION_free);
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return OpenSslFailure(std::string("adding ") + OBJ_nid2sn(nid) + " " + value);
  }
  return Status::Ok();
}

// A certificate for `key`'s public half named `common_name`, valid from an hour ago (clocks
// differ) for `validity`, with a random 127-bit serial. Not yet signed; no extensions.
Result<CertPtr> NewCertificate(EVP_PKEY* key, const std::string& common_name, Duration validity) {
  CertPtr cert(X509_new(), X509_free);
  BnPtr serial(BN_new(), BN_free);
  if (!cert || !serial || X509_set_version(cert.get(), 2) != 1 ||
      BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr ||
      X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()),
                      std::chrono::duration_cast<std::chrono::seconds>(validity).count()) ==
          nullptr ||
      X509_set_pubkey(cert.get(), key) != 1) {
    return OpenSslFailure("making a certificate");
  }
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                                 -1, 0) != 1) {
    return OpenSslFailure("naming a certificate " + common_name);
  }
  return cert;
}

Result<std::string> ReadNamed(const std::string& path, const std::string& what) {
  Result<std::string> text = ReadFile(path);
  if (!text.ok())
    return InvalidArgument(what + " " + path + " cannot be read: " + text.status().message());
  return text;
}

}  // namespace

Result<Pem> CreateAuthority(const std::string& common_name, Duration validity) {
  ASSIGN_OR_RETURN(KeyPtr key, NewKey());
  ASSIGN_OR_RETURN(CertPtr cert, NewCertificate(key.get(), common_name, validity));
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) != 1) {
    return OpenSslFailure("naming a CA's issuer");
  }
  RETURN_IF_ERROR(
      AddExtension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
  RETURN_IF_ERROR(
      AddExtension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign"));
  RETURN_IF_ERROR(AddExtension(cert.get(), cert.get(), NID_subject_key_identifier, "hash"));
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) return OpenSslFailure("signing a CA");
  Pem out;
  ASSIGN_OR_RETURN(out.certificate, ToPem(cert.get()));
  ASSIGN_OR_RETURN(out.private_key, ToPem(key.get()));
  return out;
}

Result<Pem> IssueServerCertificate(const Pem& authority, const ServerNames& names,
                                   Duration validity) {
  ASSIGN_OR_RETURN(CertPtr ca, CertFromPem(authority.certificate, "the CA certificate"));
  ASSIGN_OR_RETURN(KeyPtr ca_key, KeyFromPem(authority.private_key, "the CA key"));
  if (X509_check_private_key(ca.get(), ca_key.get()) != 1) {
    ERR_clear_error();
    return InvalidArgument("the CA key is not the key of the CA certificate");
  }
  std::string san;
  auto add = [&san](const std::string& kind, const std::string& v) {
    if (!san.empty()) san += ",";
    san += kind + ":" + v;
  };
  for (const std::string& d : names.dns_names) {
    if (!IsCertDnsName(d))
      return InvalidArgument("'" + d + "' is not a DNS name a certificate can carry");
    add("DNS", d);
  }
  for (const std::string& ip : names.ip_addresses) {
    if (!IsIpv4(ip)) return InvalidArgument("'" + ip + "' is not an IPv4 address");
    add("IP", ip);
  }
  if (san.empty()) return InvalidArgument("a server certificate needs at least one name");
  ASSIGN_OR_RETURN(KeyPtr key, NewKey());
  ASSIGN_OR_RETURN(CertPtr cert, NewCertificate(key.get(), names.common_name, validity));
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(ca.get())) != 1) {
    return OpenSslFailure("naming a certificate's issuer");
  }
  RETURN_IF_ERROR(AddExtension(cert.get(), ca.get(), NID_basic_constraints, "critical,CA:FALSE"));
  RETURN_IF_ERROR(AddExtension(cert.get(), ca.get(), NID_key_usage, "critical,digitalSignature"));
  RETURN_IF_ERROR(AddExtension(cert.get(), ca.get(), NID_ext_key_usage, "serverAuth,clientAuth"));
  RETURN_IF_ERROR(AddExtension(cert.get(), ca.get(), NID_subject_key_identifier, "hash"));
  RETURN_IF_ERROR(AddExtension(cert.get(), ca.get(), NID_authority_key_identifier, "keyid:always"));
  RETURN_IF_ERROR(AddExtension(cert.get(), ca.get(), NID_subject_alt_name, san));
  if (X509_sign(cert.get(), ca_key.get(), EVP_sha256()) == 0)
    return OpenSslFailure("signing a certificate");
  Pem out;
  ASSIGN_OR_RETURN(out.certificate, ToPem(cert.get()));
  ASSIGN_OR_RETURN(out.private_key, ToPem(key.get()));
  return out;
}

Result<std::vector<std::string>> NamesOf(const std::string& pem) {
  ASSIGN_OR_RETURN(CertPtr cert, CertFromPem(pem, "the text"));
  std::vector<std::string> out;
  NamesPtr sans(static_cast<GENERAL_NAMES*>(
                    X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr)),
                GENERAL_NAMES_free);
  if (!sans) return out;
  const int n = sk_GENERAL_NAME_num(sans.get());
  out.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans.get(), i);
    if (g->type == GEN_DNS) {
      const ASN1_IA5STRING* s = g->d.dNSName;
      out.push_back("DNS:" + std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                         static_cast<size_t>(ASN1_STRING_length(s))));
    } else if (g->type == GEN_IPADD && ASN1_STRING_length(g->d.iPAddress) == 4) {
      const unsigned char* b = ASN1_STRING_get0_data(g->d.iPAddress);
      out.push_back("IP:" + std::to_string(b[0]) + "." + std::to_string(b[1]) + "." +
                    std::to_string(b[2]) + "." + std::to_string(b[3]));
    }
  }
  return out;
}

Status CheckServerFiles(const ServerFiles& files, const std::vector<std::string>& must_cover,
                        const std::string& ca_file) {
  ASSIGN_OR_RETURN(std::string cert_pem, ReadNamed(files.cert_file, "the certificate file"));
  RETURN_IF_ERROR(CheckPrivateFile(files.key_file, "the TLS key file"));
  ASSIGN_OR_RETURN(std::string key_pem, ReadNamed(files.key_file, "the TLS key file"));
  ASSIGN_OR_RETURN(CertPtr cert, CertFromPem(cert_pem, "the certificate file " + files.cert_file));
  ASSIGN_OR_RETURN(KeyPtr key, KeyFromPem(key_pem, "the TLS key file " + files.key_file));
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return InvalidArgument("the TLS key file " + files.key_file + " does not hold the key of " +
                           files.cert_file);
  }
  if (X509_cmp_current_time(X509_get0_notAfter(cert.get())) <= 0) {
    return InvalidArgument("the certificate " + files.cert_file + " has expired");
  }
  if (X509_cmp_current_time(X509_get0_notBefore(cert.get())) > 0) {
    return InvalidArgument("the certificate " + files.cert_file + " is not valid yet");
  }
  for (const std::string& name : must_cover) {
    const int covered = IsIpv4(name)
                            ? X509_check_ip_asc(cert.get(), name.c_str(), 0)
                            : X509_check_host(cert.get(), name.c_str(), name.size(), 0, nullptr);
    if (covered != 1) {
      Result<std::vector<std::string>> has = NamesOf(cert_pem);
      std::string list;
      for (const std::string& n : has.ok() ? *has : std::vector<std::string>{}) {
        list += (list.empty() ? "" : ", ") + n;
      }
      return InvalidArgument("the certificate " + files.cert_file + " does not cover " + name +
                             " (its names: " + (list.empty() ? "none" : list) + ")");
    }
  }
  if (ca_file.empty()) return Status::Ok();
  ASSIGN_OR_RETURN(std::string ca_pem, ReadNamed(ca_file, "the CA file"));
  ASSIGN_OR_RETURN(CertPtr ca, CertFromPem(ca_pem, "the CA file " + ca_file));
  StorePtr store(X509_STORE_new(), X509_STORE_free);
  StoreCtxPtr ctx(X509_STORE_CTX_new(), X509_STORE_CTX_free);
  if (!store || !ctx || X509_STORE_add_cert(store.get(), ca.get()) != 1 ||
      X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr) != 1) {
    return OpenSslFailure("checking a certificate's chain");
  }
  if (X509_verify_cert(ctx.get()) != 1) {
    const int err = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    return InvalidArgument("the certificate " + files.cert_file + " is not signed by the CA in " +
                           ca_file + ": " + X509_verify_cert_error_string(err));
  }
  return Status::Ok();
}

std::string DescribeVerifyFailure(long verify_result, const std::string& ca_file) {
  std::string out = "the server's certificate was refused (";
  out += verify_result == X509_V_OK ? "its names do not cover the host dialled"
                                    : X509_verify_cert_error_string(verify_result);
  out += ")";
  const bool ca_cause = verify_result == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
                        verify_result == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
                        verify_result == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
                        verify_result == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE ||
                        verify_result == X509_V_ERR_CERT_SIGNATURE_FAILURE;
  if (ca_cause) {
    out += ca_file.empty() ? ": it is not signed by a CA this system trusts; give the "
                             "platform's CA (tandem up writes it to <state-dir>/tls/ca.crt) "
                             "with --ca-file or TANDEM_CA_FILE"
                           : ": it is not signed by the CA in " + ca_file;
  }
  return out;
}

}  // namespace tandem::tls
