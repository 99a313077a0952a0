// RegistryClient: a Registry reached over the Registry HTTP API v2 (the OCI distribution spec)
// without authentication, over plain HTTP (registries tandem runs listen on a region's own
// address).
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
#include <string>

#include "base/clock.h"
#include "images/registry.h"
#include "tls/certificates.h"

namespace tandem::images {

struct RegistryClientOptions {
  std::string url;   // "http://host:port" or "https://host:port"
  tls::Trust trust;  // for https: the CA the registry's certificate must chain to
  // Sent with every request (HTTP basic) when set: the registry's own user (RegistryServer).
  std::string username;
  std::string password;
  Duration connect_timeout = std::chrono::seconds(5);
  // Bounds each wait for the socket (a stalled transfer), not a whole transfer.
  Duration io_timeout = std::chrono::seconds(30);
  int64_t max_manifest_bytes = 4 << 20;
};

// InvalidArgument when the URL is not "http(s)://host[:port]".
Result<RegistryPtr> NewRegistryClient(RegistryClientOptions options);

}  // namespace tandem::images
