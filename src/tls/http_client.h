// The one way tandem's processes make an HTTP client: for an "https" endpoint, one that
// verifies the server's certificate against a CA file (or the system's CAs) and the host name
// it dialled against the certificate's names; for "http", a plain one.
//
// This header brings httplib.h: include it from .cc files only.
#pragma once

#include <httplib.h>

#include <memory>
#include <string>

#include "tls/certificates.h"

namespace tandem::tls {

// A client for scheme://host:port; `https` selects TLS.
std::unique_ptr<httplib::Client> NewHttpClient(bool https, const std::string& host, int port,
                                               const Trust& trust);

// What a failed request says: httplib's error, and for a refused certificate, why and what to
// do (DescribeVerifyFailure).
std::string DescribeError(const httplib::Client& client, httplib::Error error, const Trust& trust);

}  // namespace tandem::tls
