// The platform's own certificates: a private certificate authority, the server certificates it
// signs, and the checks a server runs on its files before it listens.
//
// `tandem up` makes a CA (CreateAuthority) and, for the control plane and each region, a server
// certificate whose names cover every address and host name that part serves
// (IssueServerCertificate); every client of the platform trusts that CA and checks the name it
// dialled against the certificate. An operator may bring certificates of their own instead
// (docs/security.md, "TLS"); either way a server calls CheckServerFiles at start, so that a key
// that does not match its certificate, a key file others can read, an expired certificate or
// one that does not cover the server's address stops it with a message that names the file.
//
// Keys are ECDSA P-256 and signatures SHA-256, which every TLS 1.2/1.3 client accepts. OpenSSL
// stays in certificates.cc; what crosses this interface is PEM text.
#pragma once

#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"

namespace tandem::tls {

// What a client trusts: the CA file a server's certificate must chain to ("" for the system's
// CAs). Only "https" endpoints use it.
struct Trust {
  std::string ca_file;
};

// A certificate and its private key, both PEM.
struct Pem {
  std::string certificate;
  std::string private_key;
};

// Makes a self-signed CA that may sign server certificates only (path length 0).
Result<Pem> CreateAuthority(const std::string& common_name, Duration validity);

struct ServerNames {
  std::string common_name;
  std::vector<std::string> dns_names;     // "control.tandem.test", "*.tandem.test", ...
  std::vector<std::string> ip_addresses;  // dotted IPv4
};

// Signs a server certificate (serverAuth and clientAuth) for `names` with `authority`.
// InvalidArgument for a name that is neither a DNS name nor an IPv4 address, or an authority
// whose key does not match its certificate.
Result<Pem> IssueServerCertificate(const Pem& authority, const ServerNames& names,
                                   Duration validity);

// The files a server serves TLS with.
struct ServerFiles {
  std::string cert_file;  // PEM: the certificate, then any intermediates
  std::string key_file;   // PEM private key, readable by its owner only
};

// Checks what a server is about to listen with: both files readable, the key file private
// (CheckPrivateFile), the key that of the certificate, the certificate valid now, and every one
// of `must_cover` (host names or IPv4 addresses) among its names. With `ca_file`, also that the
// certificate chains to that CA. InvalidArgument naming the file and what is wrong otherwise.
Status CheckServerFiles(const ServerFiles& files, const std::vector<std::string>& must_cover,
                        const std::string& ca_file = "");

// The subject alternative names of the first certificate of `pem`, as "DNS:name" / "IP:a.b.c.d".
Result<std::vector<std::string>> NamesOf(const std::string& pem);

// Why a client refused a server's certificate, from OpenSSL's verify result: the reason, and
// what to do about it when the CA is the cause. `ca_file` is the CA the client trusted ("" for
// the system's).
std::string DescribeVerifyFailure(long verify_result, const std::string& ca_file);

}  // namespace tandem::tls
