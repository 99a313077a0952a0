#include "images/registry.h"

#include <map>

#include "images/digest.h"

namespace tandem::images {
namespace {

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// One path component: [a-z0-9]+ with single '.', '_' or '-', or '__', or runs of '-', between.
bool ValidComponent(std::string_view c) {
  if (c.empty() || !IsLowerAlnum(c.front()) || !IsLowerAlnum(c.back())) return false;
  for (size_t i = 0; i < c.size(); ++i) {
    if (IsLowerAlnum(c[i])) continue;
    size_t j = i;
    while (j < c.size() && !IsLowerAlnum(c[j])) ++j;
    std::string_view sep = c.substr(i, j - i);
    bool dashes = sep.find_first_not_of('-') == std::string_view::npos;
    if (sep != "." && sep != "_" && sep != "__" && !dashes) return false;
    i = j - 1;
  }
  return true;
}

}  // namespace

Status ValidateRepository(std::string_view name) {
  bool ok = !name.empty() && name.size() <= 255;
  for (size_t start = 0; ok;) {
    size_t end = name.find('/', start);
    ok = ValidComponent(name.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  if (ok) return Status::Ok();
  return InvalidArgument("not a valid repository name: \"" + std::string(name.substr(0, 100)) +
                         "\" (lowercase letters and digits in components separated by '/')");
}

Status ValidateTag(std::string_view tag) {
  auto word = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  };
  bool ok = !tag.empty() && tag.size() <= 128 && word(tag[0]);
  for (size_t i = 1; ok && i < tag.size(); ++i) ok = word(tag[i]) || tag[i] == '.' || tag[i] == '-';
  if (ok) return Status::Ok();
  return InvalidArgument("not a valid tag: \"" + std::string(tag.substr(0, 130)) + "\"");
}

bool IsDigestReference(std::string_view reference) {
  return reference.find(':') != std::string_view::npos;
}

Status ValidateReference(std::string_view reference) {
  return IsDigestReference(reference) ? ValidateDigest(reference) : ValidateTag(reference);
}

Status PushImage(Registry& registry, const std::string& repository, const std::string& tag,
                 const Image& image) {
  for (const Descriptor& d : image.parsed.Blobs()) {
    auto blob = image.blobs.find(d.digest);
    if (blob == image.blobs.end()) return Internal("the image lacks its blob " + d.digest);
    ASSIGN_OR_RETURN(std::optional<int64_t> size, registry.StatBlob(repository, d.digest));
    if (size && *size == d.size) continue;
    RETURN_IF_ERROR(registry.PutBlob(repository, d.digest, blob->second));
  }
  const std::string media_type =
      image.parsed.media_type.empty() ? kOciManifestType : image.parsed.media_type;
  RETURN_IF_ERROR(
      registry.PutManifest(repository, image.digest, media_type, image.manifest).status());
  if (!tag.empty()) {
    RETURN_IF_ERROR(registry.PutManifest(repository, tag, media_type, image.manifest).status());
  }
  return Status::Ok();
}

Result<Files> PullImage(Registry& registry, const std::string& repository,
                        const std::string& reference, const ExtractLimits& limits) {
  ASSIGN_OR_RETURN(ManifestData manifest, registry.GetManifest(repository, reference));
  ASSIGN_OR_RETURN(Manifest parsed, ParseManifest(manifest.bytes));
  std::map<std::string, std::string> blobs;
  for (const Descriptor& d : parsed.Blobs()) {
    if (blobs.count(d.digest) != 0) continue;
    ASSIGN_OR_RETURN(std::string data, registry.GetBlob(repository, d.digest, d.size));
    blobs.emplace(d.digest, std::move(data));
  }
  auto files = ExtractImage(manifest.bytes, blobs, limits);
  if (!files.ok()) {
    return files.status().WithContext(registry.address() + " " + repository + "@" +
                                      manifest.digest);
  }
  return files;
}

}  // namespace tandem::images
