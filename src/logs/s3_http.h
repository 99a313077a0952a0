// One SigV4-signed HTTP exchange with an S3-compatible endpoint, signed by libcurl itself
// (CURLOPT_AWS_SIGV4). S3LogStore makes every request through SendSigned, and the signing test
// sends a request from AWS's SigV4 test suite through it. libcurl stays inside s3_http.cc.
//
// libcurl (7.88) signs the Host header, every header the caller passes, and X-Amz-Date: the
// one the caller passes, else the current time. (7.88 then sends a passed X-Amz-Date twice,
// which S3 servers read as one malformed date, so S3LogStore lets libcurl date requests and
// only the signing test passes one.) It puts the URL's path and query into the canonical request as they are, so callers must
// give them already in canonical form: each path segment encoded by UriEncode, query
// parameters sorted by name with UriEncode'd values. The payload hash is taken from an
// x-amz-content-sha256 header when one is passed; otherwise it is the hash of an empty body.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"

namespace tandem::logs {

struct SigV4Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string region;   // e.g. "us-east-1"
  std::string service;  // "s3" for S3
};

struct HttpRequest {
  std::string method = "GET";        // GET, HEAD, PUT or DELETE
  std::string url;                   // path and query in canonical form (see above)
  std::vector<std::string> headers;  // "Name: value", all of them signed
  std::string_view body;             // sent with PUT; must outlive the call
  std::string connect_to;            // a CURLOPT_CONNECT_TO entry; empty = none
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds timeout{30000};
};

struct HttpResponse {
  long status = 0;  // libcurl's type
  std::string body;
  uint64_t content_length = 0;  // from the headers (a HEAD has no body)
};

// Sends `req` signed with `creds`. An HTTP error status is a response, not an error: the
// Status is Unavailable when the endpoint cannot be reached or does not answer in time, and
// Internal for any other transfer failure. Thread-safe; each thread reuses its own
// connections.
Result<HttpResponse> SendSigned(const SigV4Credentials& creds, const HttpRequest& req);

// Percent-encodes every byte but the unreserved characters (A-Z a-z 0-9 '-' '_' '.' '~'), as
// SigV4's canonical form requires; with `keep_slash`, '/' is left as it is too.
std::string UriEncode(std::string_view s, bool keep_slash);

// "YYYYMMDDTHHMMSSZ", the X-Amz-Date form of `t` in UTC.
std::string AmzDate(WallTime t);

}  // namespace tandem::logs
