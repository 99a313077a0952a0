// A DAG bundle as an OCI image (OCI image spec v1): one tar+gzip layer holding the bundle's
// files, a config blob, and a manifest that names both by digest and size.
//
//   manifest  application/vnd.oci.image.manifest.v1+json, schemaVersion 2
//     config  application/vnd.oci.image.config.v1+json: architecture, os, labels,
//             rootfs.diff_ids = [sha256 of the uncompressed tar]
//     layers  [application/vnd.oci.image.layer.v1.tar+gzip]
//
// Building is reproducible (see tar.h): the same files give the same manifest digest, which is
// what a deployment records and what both regions must hold. JSON is written with sorted keys
// and no whitespace. Extraction trusts nothing it is given: every blob's digest and size, the
// config's diff_ids, and every tar entry are checked.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "images/tar.h"

namespace tandem::images {

inline constexpr char kOciManifestType[] = "application/vnd.oci.image.manifest.v1+json";
inline constexpr char kOciIndexType[] = "application/vnd.oci.image.index.v1+json";
inline constexpr char kOciConfigType[] = "application/vnd.oci.image.config.v1+json";
inline constexpr char kOciLayerGzipType[] = "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr char kOciLayerTarType[] = "application/vnd.oci.image.layer.v1.tar";
inline constexpr char kDockerManifestType[] =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr char kDockerManifestListType[] =
    "application/vnd.docker.distribution.manifest.list.v2+json";

// Labels the builder puts in the config.
inline constexpr char kLabelFileCount[] = "dev.tandem.bundle.files";
inline constexpr char kLabelByteCount[] = "dev.tandem.bundle.bytes";

struct Descriptor {
  std::string media_type;
  std::string digest;  // "sha256:<hex>"
  int64_t size = 0;
};

// The parts of an image manifest that name blobs.
struct Manifest {
  std::string media_type;  // as the manifest states it; may be empty
  Descriptor config;
  std::vector<Descriptor> layers;

  // The config, then the layers.
  std::vector<Descriptor> Blobs() const;
};

// Parses an image manifest (OCI, or Docker schema 2, which has the same shape).
// InvalidArgument when it is not JSON, not schemaVersion 2, an index rather than an image
// manifest, or a descriptor lacks a valid digest or a non-negative size.
Result<Manifest> ParseManifest(std::string_view json);

// A built image: the manifest's bytes and digest, and every blob it names by digest.
struct Image {
  std::string manifest;
  std::string digest;  // of `manifest`
  Manifest parsed;
  std::map<std::string, std::string> blobs;  // digest -> bytes (config and layer)
};

struct BuildOptions {
  std::string architecture = "amd64";
  std::string os = "linux";
  std::map<std::string, std::string> labels;  // added to the builder's own
};

// The image of `files`. InvalidArgument for an empty bundle or an unsafe path (tar.h).
Result<Image> BuildImage(const Files& files, const BuildOptions& options = {});

// The files of the image whose manifest is `manifest`, from `blobs` (digest -> bytes), after
// checking every blob against its descriptor and the config's diff_ids against the layers.
// Layers are applied in order; a later layer's file replaces an earlier one's. NotFound when
// a blob is missing; InvalidArgument for a digest or size mismatch, an unknown media type or
// a bad layer (tar.h); TooLarge past `limits`.
Result<Files> ExtractImage(std::string_view manifest,
                           const std::map<std::string, std::string>& blobs,
                           const ExtractLimits& limits = {});

}  // namespace tandem::images
