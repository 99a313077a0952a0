#include "images/oci_image.h"

#include <nlohmann/json.hpp>

#include "images/digest.h"

namespace tandem::images {
namespace {

using nlohmann::json;

Result<Descriptor> ParseDescriptor(const json& j, const std::string& where) {
  if (!j.is_object()) return InvalidArgument(where + " is not an object");
  Descriptor d;
  auto mt = j.find("mediaType");
  auto dg = j.find("digest");
  auto sz = j.find("size");
  if (mt == j.end() || !mt->is_string()) return InvalidArgument(where + " has no mediaType");
  if (dg == j.end() || !dg->is_string()) return InvalidArgument(where + " has no digest");
  if (sz == j.end() || !sz->is_number_integer() || sz->get<int64_t>() < 0) {
    return InvalidArgument(where + " has no valid size");
  }
  d.media_type = mt->get<std::string>();
  d.digest = dg->get<std::string>();
  d.size = sz->get<int64_t>();
  RETURN_IF_ERROR(ValidateDigest(d.digest).WithContext(where));
  return d;
}

json DescriptorJson(const Descriptor& d) {
  return {{"mediaType", d.media_type}, {"digest", d.digest}, {"size", d.size}};
}

Result<const std::string*> FindBlob(const std::map<std::string, std::string>& blobs,
                                    const Descriptor& d, const char* what) {
  auto it = blobs.find(d.digest);
  if (it == blobs.end()) return NotFound(std::string(what) + " blob " + d.digest + " is missing");
  if (static_cast<int64_t>(it->second.size()) != d.size) {
    return InvalidArgument(std::string(what) + " blob " + d.digest + " has " +
                           std::to_string(it->second.size()) + " bytes; the manifest says " +
                           std::to_string(d.size));
  }
  std::string actual = DigestOf(it->second);
  if (actual != d.digest) {
    return InvalidArgument(std::string(what) + " blob digest mismatch: expected " + d.digest +
                           ", content has " + actual);
  }
  return &it->second;
}

}  // namespace

std::vector<Descriptor> Manifest::Blobs() const {
  std::vector<Descriptor> out{config};
  out.insert(out.end(), layers.begin(), layers.end());
  return out;
}

Result<Manifest> ParseManifest(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return InvalidArgument("manifest is not a JSON object");
  auto version = j.find("schemaVersion");
  if (version == j.end() || !version->is_number_integer() || version->get<int>() != 2) {
    return InvalidArgument("manifest schemaVersion is not 2");
  }
  Manifest m;
  if (auto mt = j.find("mediaType"); mt != j.end()) {
    if (!mt->is_string()) return InvalidArgument("manifest mediaType is not a string");
    m.media_type = mt->get<std::string>();
  }
  if (m.media_type == kOciIndexType || m.media_type == kDockerManifestListType ||
      j.contains("manifests")) {
    return InvalidArgument("an image index (a list of manifests) is not an image manifest");
  }
  if (!m.media_type.empty() && m.media_type != kOciManifestType &&
      m.media_type != kDockerManifestType) {
    return InvalidArgument("unsupported manifest media type " + m.media_type);
  }
  auto config = j.find("config");
  if (config == j.end()) return InvalidArgument("manifest has no config");
  ASSIGN_OR_RETURN(m.config, ParseDescriptor(*config, "manifest config"));
  auto layers = j.find("layers");
  if (layers == j.end() || !layers->is_array()) return InvalidArgument("manifest has no layers");
  for (size_t i = 0; i < layers->size(); ++i) {
    ASSIGN_OR_RETURN(Descriptor d,
                     ParseDescriptor((*layers)[i], "manifest layer " + std::to_string(i)));
    m.layers.push_back(std::move(d));
  }
  return m;
}

Result<Image> BuildImage(const Files& files, const BuildOptions& options) {
  if (files.empty()) return InvalidArgument("an image of an empty bundle");
  ASSIGN_OR_RETURN(std::string tar, WriteTar(files));
  ASSIGN_OR_RETURN(std::string layer, GzipCompress(tar));
  uint64_t bytes = 0;
  for (const auto& [path, data] : files) bytes += data.size();

  json labels = json::object();
  for (const auto& [k, v] : options.labels) labels[k] = v;
  labels[kLabelFileCount] = std::to_string(files.size());
  labels[kLabelByteCount] = std::to_string(bytes);
  json config = {
      {"architecture", options.architecture},
      {"os", options.os},
      {"config", {{"Labels", labels}}},
      {"rootfs", {{"type", "layers"}, {"diff_ids", json::array({DigestOf(tar)})}}},
  };
  std::string config_bytes = config.dump();

  Image image;
  image.parsed.media_type = kOciManifestType;
  image.parsed.config = {kOciConfigType, DigestOf(config_bytes),
                         static_cast<int64_t>(config_bytes.size())};
  image.parsed.layers.push_back(
      {kOciLayerGzipType, DigestOf(layer), static_cast<int64_t>(layer.size())});
  json manifest = {
      {"schemaVersion", 2},
      {"mediaType", kOciManifestType},
      {"config", DescriptorJson(image.parsed.config)},
      {"layers", json::array({DescriptorJson(image.parsed.layers[0])})},
  };
  image.manifest = manifest.dump();
  image.digest = DigestOf(image.manifest);
  image.blobs.emplace(image.parsed.config.digest, std::move(config_bytes));
  image.blobs.emplace(image.parsed.layers[0].digest, std::move(layer));
  return image;
}

Result<Files> ExtractImage(std::string_view manifest_text,
                           const std::map<std::string, std::string>& blobs,
                           const ExtractLimits& limits) {
  ASSIGN_OR_RETURN(Manifest m, ParseManifest(manifest_text));
  if (m.config.media_type != kOciConfigType &&
      m.config.media_type != "application/vnd.docker.container.image.v1+json") {
    return InvalidArgument("unsupported config media type " + m.config.media_type);
  }
  if (m.layers.empty()) return InvalidArgument("the image has no layers");
  ASSIGN_OR_RETURN(const std::string* config_bytes, FindBlob(blobs, m.config, "config"));
  json config = json::parse(*config_bytes, nullptr, false);
  const json* diff_ids = nullptr;
  if (config.is_object() && config.contains("rootfs") && config["rootfs"].is_object()) {
    auto it = config["rootfs"].find("diff_ids");
    if (it != config["rootfs"].end() && it->is_array()) diff_ids = &*it;
  }
  if (diff_ids == nullptr) return InvalidArgument("the image config has no rootfs.diff_ids");
  if (diff_ids->size() != m.layers.size()) {
    return InvalidArgument("the image config lists " + std::to_string(diff_ids->size()) +
                           " diff_ids for " + std::to_string(m.layers.size()) + " layers");
  }

  Files files;
  uint64_t total = 0;
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const Descriptor& d = m.layers[i];
    ASSIGN_OR_RETURN(const std::string* blob, FindBlob(blobs, d, "layer"));
    std::string tar;
    if (d.media_type == kOciLayerGzipType ||
        d.media_type == "application/vnd.docker.image.rootfs.diff.tar.gzip") {
      auto raw = GzipDecompress(*blob, limits.max_total_bytes + (1u << 20));
      if (!raw.ok()) return raw.status().WithContext("layer " + d.digest);
      tar = std::move(raw).value();
    } else if (d.media_type == kOciLayerTarType) {
      tar = *blob;
    } else {
      return InvalidArgument("unsupported layer media type " + d.media_type);
    }
    const json& want = (*diff_ids)[i];
    std::string diff_id = DigestOf(tar);
    if (!want.is_string() || want.get<std::string>() != diff_id) {
      return InvalidArgument("layer " + d.digest + " uncompresses to " + diff_id +
                             ", but the config's diff_id is " + want.dump());
    }
    auto layer_files = ReadTar(tar, limits);
    if (!layer_files.ok()) return layer_files.status().WithContext("layer " + d.digest);
    for (auto& [path, data] : *layer_files) {
      size_t slash = path.rfind('/');
      if (path.compare(slash == std::string::npos ? 0 : slash + 1, 4, ".wh.") == 0) {
        return InvalidArgument("layer " + d.digest + " holds a whiteout (" + path +
                               "): layers that delete files are not supported");
      }
      total += data.size();
      files[path] = std::move(data);
    }
    if (total > limits.max_total_bytes || files.size() > limits.max_files) {
      return TooLarge("the image's files exceed " + std::to_string(limits.max_total_bytes) +
                      " bytes or " + std::to_string(limits.max_files) + " files");
    }
  }
  return files;
}

}  // namespace tandem::images
