// RegistryClient: a Registry reached over the Registry HTTP API v2 (the OCI distribution spec),
// over HTTPS (verified) or plain HTTP, with a bearer token on every request when given a token
// source (registry_token.h): reads ask for the repository's "pull" scope, writes for
// "pull,push", GET /v2/ for none.
//
//   ping              GET  /v2/                                      200
//   stat blob         HEAD /v2/<name>/blobs/<digest>                 200 | 404
//   get blob          GET  /v2/<name>/blobs/<digest>                 200 (redirects followed)
//   put blob          POST /v2/<name>/blobs/uploads/                 202, Location
//                     PUT  <Location>[?&]digest=<digest>             201
//   put manifest      PUT  /v2/<name>/manifests/<tag|digest>         201, Docker-Content-Digest
//   get/stat manifest GET|HEAD /v2/<name>/manifests/<tag|digest>     200, Docker-Content-Digest
//
// The upload Location may be absolute or relative and may already carry a query string (the
// registry's own upload state). Docker-Content-Digest is optional in the spec: when present it
// must agree with the digest computed here; the computed one is what counts.
//
// Thread-safety: immutable after creation; calls may run on many threads at once (each call
// opens its own connection). httplib stays in registry_client.cc.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "base/clock.h"
#include "images/registry.h"
#include "tls/certificates.h"

namespace tandem::images {

struct RegistryClientOptions {
  std::string url;   // "http://host:port" or "https://host:port"
  tls::Trust trust;  // for https: the CA the registry's certificate must chain to
  // Gives a bearer token for a scope ("repository:<name>:pull", "" for GET /v2/): a region mints
  // its own, the CLI asks the region's realm. Each token is reused for a minute (it lasts five).
  // Unset: requests carry no credential.
  std::function<Result<std::string>(const std::string& scope)> token;
  Duration connect_timeout = std::chrono::seconds(5);
  // Bounds each wait for the socket (a stalled transfer), not a whole transfer.
  Duration io_timeout = std::chrono::seconds(30);
  int64_t max_manifest_bytes = 4 << 20;
};

// InvalidArgument when the URL is not "http(s)://host[:port]".
Result<RegistryPtr> NewRegistryClient(RegistryClientOptions options);

}  // namespace tandem::images
