#include "images/oci_image.h"

#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "base/random.h"
#include "images/digest.h"
#include "images/tar.h"

namespace tandem::images {
namespace {

using nlohmann::json;

Files Bundle() {
  return {{"dags.yaml", "dags:\n  - id: etl\n"},
          {"scripts/load.py", "print('load')\n"},
          {"empty.txt", ""}};
}

// One raw ustar entry, with any name and type, for archives the builder would never write.
std::string RawEntry(const std::string& name, char type, const std::string& data,
                     const std::string& linkname = "") {
  char h[512] = {};
  name.copy(h, 100);
  snprintf(h + 100, 8, "%07o", 0644);
  snprintf(h + 108, 8, "%07o", 0);
  snprintf(h + 116, 8, "%07o", 0);
  snprintf(h + 124, 12, "%011o", static_cast<unsigned>(data.size()));
  snprintf(h + 136, 12, "%011o", 0);
  h[156] = type;
  linkname.copy(h + 157, 100);
  memcpy(h + 257, "ustar", 6);
  h[263] = h[264] = '0';
  memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  snprintf(h + 148, 8, "%06o", sum);
  h[155] = ' ';
  std::string out(h, 512);
  out += data;
  out.append((512 - data.size() % 512) % 512, '\0');
  return out;
}

std::string EndOfArchive() { return std::string(1024, '\0'); }

// An image whose single layer is `layer_tar` (gzip-compressed here), with a consistent config
// and manifest: only the tar itself can be at fault.
struct RawImage {
  std::string manifest;
  std::map<std::string, std::string> blobs;
};

RawImage ImageOfTar(const std::string& tar, std::string layer = "") {
  if (layer.empty()) layer = GzipCompress(tar).value();
  std::string config = json{{"architecture", "amd64"},
                            {"os", "linux"},
                            {"rootfs", {{"type", "layers"}, {"diff_ids", {DigestOf(tar)}}}}}
                           .dump();
  json m = {
      {"schemaVersion", 2},
      {"mediaType", kOciManifestType},
      {"config",
       {{"mediaType", kOciConfigType}, {"digest", DigestOf(config)}, {"size", config.size()}}},
      {"layers",
       {{{"mediaType", kOciLayerGzipType}, {"digest", DigestOf(layer)}, {"size", layer.size()}}}}};
  return {m.dump(), {{DigestOf(config), config}, {DigestOf(layer), layer}}};
}

TEST(OciImageTest, SameFilesGiveTheSameDigest) {
  auto a = BuildImage(Bundle());
  auto b = BuildImage(Bundle());
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(a->digest, b->digest);
  EXPECT_EQ(a->manifest, b->manifest);
  EXPECT_EQ(a->blobs, b->blobs);
  EXPECT_EQ(a->digest, DigestOf(a->manifest));
  EXPECT_TRUE(ValidateDigest(a->digest).ok());
}

TEST(OciImageTest, DifferentContentGivesADifferentDigest) {
  auto base = BuildImage(Bundle()).value();
  Files changed = Bundle();
  changed["dags.yaml"] += " ";
  EXPECT_NE(BuildImage(changed)->digest, base.digest);
  Files renamed = Bundle();
  renamed["dags2.yaml"] = renamed["dags.yaml"];
  renamed.erase("dags.yaml");
  EXPECT_NE(BuildImage(renamed)->digest, base.digest);
  BuildOptions labelled;
  labelled.labels["team"] = "data";
  EXPECT_NE(BuildImage(Bundle(), labelled)->digest, base.digest);
}

TEST(OciImageTest, ManifestAndConfigFollowTheImageSpec) {
  Image image = BuildImage(Bundle()).value();
  json m = json::parse(image.manifest);
  EXPECT_EQ(m["schemaVersion"], 2);
  // The OCI image spec's media types, as the spec spells them (not the code's constants).
  EXPECT_EQ(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
  EXPECT_EQ(m["config"]["mediaType"], "application/vnd.oci.image.config.v1+json");
  ASSERT_EQ(m["layers"].size(), 1u);
  EXPECT_EQ(m["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
  for (const json& d : {m["config"], m["layers"][0]}) {
    const std::string& blob = image.blobs.at(d["digest"].get<std::string>());
    EXPECT_EQ(d["size"].get<size_t>(), blob.size());
    EXPECT_EQ(d["digest"], DigestOf(blob));
  }
  const std::string& layer = image.blobs.at(m["layers"][0]["digest"].get<std::string>());
  // A gzip stream whose header carries no time and no host operating system.
  ASSERT_GT(layer.size(), 10u);
  EXPECT_EQ(static_cast<unsigned char>(layer[0]), 0x1f);
  EXPECT_EQ(static_cast<unsigned char>(layer[1]), 0x8b);
  EXPECT_EQ(layer.substr(4, 4), std::string(4, '\0'));
  EXPECT_EQ(static_cast<unsigned char>(layer[9]), 255);

  json config = json::parse(image.blobs.at(m["config"]["digest"].get<std::string>()));
  EXPECT_EQ(config["architecture"], "amd64");
  EXPECT_EQ(config["os"], "linux");
  EXPECT_EQ(config["rootfs"]["type"], "layers");
  std::string tar = GzipDecompress(layer, 1 << 20).value();
  EXPECT_EQ(config["rootfs"]["diff_ids"], json::array({DigestOf(tar)}));
  EXPECT_EQ(config["config"]["Labels"][kLabelFileCount], "3");
  EXPECT_EQ(tar.size() % 512, 0u);
}

TEST(OciImageTest, ExtractionRoundTrips) {
  Files files = Bundle();
  files["bin/data.bin"] = RandomBytes(70000) + std::string(3, '\0');
  std::string long_path;
  for (int i = 0; i < 12; ++i) long_path += "directory" + std::to_string(i) + "/";
  long_path += "a_file_name_that_is_long_enough.py";
  ASSERT_GT(long_path.size(), 100u);
  files[long_path] = "long";
  Image image = BuildImage(files).value();
  auto out = ExtractImage(image.manifest, image.blobs);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(*out, files);
}

TEST(OciImageTest, BuildRefusesUnsafeBundles) {
  EXPECT_EQ(BuildImage({}).status().code(), Code::kInvalidArgument);
  for (const char* bad : {"../evil", "/etc/passwd", "a/../b", "a//b", "./a", "a\\b", ""}) {
    auto r = BuildImage({{bad, "x"}});
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << bad;
  }
  auto both = BuildImage({{"a", "file"}, {"a/b", "file below it"}});
  EXPECT_EQ(both.status().code(), Code::kInvalidArgument);
  EXPECT_NE(both.status().message().find("both a file and the directory"), std::string::npos);
  EXPECT_EQ(BuildImage({{std::string(101, 'x'), "no slash to split at"}}).status().code(),
            Code::kInvalidArgument);
}

TEST(OciImageTest, ExtractionRefusesPathTraversal) {
  for (const char* name : {"../../etc/cron.d/x", "dags/../../x", "/etc/passwd"}) {
    RawImage img = ImageOfTar(RawEntry(name, '0', "boom") + EndOfArchive());
    auto r = ExtractImage(img.manifest, img.blobs);
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << name;
    EXPECT_NE(r.status().message().find(name[0] == '/' ? "absolute" : "\"..\""), std::string::npos)
        << r.status().ToString();
  }
}

TEST(OciImageTest, ExtractionRefusesLinksAndOtherEntries) {
  struct Case {
    char type;
    const char* what;
  };
  for (const Case& c : {Case{'2', "symbolic link"}, Case{'1', "hard link"}, Case{'5', "directory"},
                        Case{'x', "pax"}, Case{'3', "type '3'"}}) {
    RawImage img = ImageOfTar(RawEntry("dags.yaml", '0', "ok") +
                              RawEntry("link", c.type, "", "/etc/shadow") + EndOfArchive());
    auto r = ExtractImage(img.manifest, img.blobs);
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << c.what;
    EXPECT_NE(r.status().message().find(c.what), std::string::npos) << r.status().ToString();
  }
}

TEST(OciImageTest, ExtractionRefusesBrokenArchives) {
  std::string good = RawEntry("a.txt", '0', std::string(1000, 'a')) + EndOfArchive();
  ASSERT_TRUE(ExtractImage(ImageOfTar(good).manifest, ImageOfTar(good).blobs).ok());

  // Cut inside a file's data.
  RawImage cut = ImageOfTar(good.substr(0, 900));
  EXPECT_NE(ExtractImage(cut.manifest, cut.blobs).status().message().find("truncated tar"),
            std::string::npos);
  // No end-of-archive marker.
  RawImage no_end = ImageOfTar(good.substr(0, good.size() - 1024));
  EXPECT_EQ(ExtractImage(no_end.manifest, no_end.blobs).status().code(), Code::kInvalidArgument);
  // A header whose checksum does not match.
  std::string bad_sum = good;
  bad_sum[0] = 'b';
  RawImage sum = ImageOfTar(bad_sum);
  EXPECT_NE(ExtractImage(sum.manifest, sum.blobs).status().message().find("checksum"),
            std::string::npos);
  // The same file twice.
  std::string twice = RawEntry("a", '0', "1") + RawEntry("a", '0', "2") + EndOfArchive();
  RawImage dup = ImageOfTar(twice);
  EXPECT_NE(ExtractImage(dup.manifest, dup.blobs).status().message().find("twice"),
            std::string::npos);
}

TEST(OciImageTest, ExtractionRefusesTruncatedGzip) {
  Files files = {{"data.bin", RandomBytes(200000)}};
  std::string tar = WriteTar(files).value();
  std::string gz = GzipCompress(tar).value();
  // Digests and sizes are made to match the cut blob: only the stream itself is wrong.
  RawImage img = ImageOfTar(tar, gz.substr(0, gz.size() / 2));
  auto r = ExtractImage(img.manifest, img.blobs);
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("truncated gzip"), std::string::npos)
      << r.status().ToString();

  RawImage trailing = ImageOfTar(tar, gz + "junk");
  EXPECT_NE(ExtractImage(trailing.manifest, trailing.blobs).status().message().find("other data"),
            std::string::npos);
  EXPECT_EQ(GzipDecompress("not gzip at all", 1000).status().code(), Code::kInvalidArgument);
}

TEST(OciImageTest, ExtractionChecksEveryDigestAndSize) {
  Image image = BuildImage(Bundle()).value();
  const std::string layer_digest = image.parsed.layers[0].digest;
  const std::string config_digest = image.parsed.config.digest;

  auto altered = image.blobs;
  altered[layer_digest][20] = static_cast<char>(altered[layer_digest][20] ^ 1);
  auto r = ExtractImage(image.manifest, altered);
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("digest mismatch"), std::string::npos);
  EXPECT_NE(r.status().message().find(layer_digest), std::string::npos);

  auto longer = image.blobs;
  longer[config_digest] += " ";
  EXPECT_NE(ExtractImage(image.manifest, longer).status().message().find("bytes; the manifest"),
            std::string::npos);

  auto missing = image.blobs;
  missing.erase(layer_digest);
  auto m = ExtractImage(image.manifest, missing);
  EXPECT_EQ(m.status().code(), Code::kNotFound);
  EXPECT_NE(m.status().message().find(layer_digest), std::string::npos);

  // A config whose diff_id does not match the layer.
  std::string tar = WriteTar(Bundle()).value();
  RawImage other = ImageOfTar(WriteTar({{"x", "y"}}).value(), GzipCompress(tar).value());
  EXPECT_NE(ExtractImage(other.manifest, other.blobs).status().message().find("diff_id"),
            std::string::npos);
}

TEST(OciImageTest, ExtractionIsBounded) {
  Image image = BuildImage({{"big", std::string(1 << 20, 'z')}}).value();
  ExtractLimits small;
  small.max_total_bytes = 1000;
  EXPECT_EQ(ExtractImage(image.manifest, image.blobs, small).status().code(), Code::kTooLarge);
  ExtractLimits few;
  few.max_files = 2;
  Image many = BuildImage(Bundle()).value();
  EXPECT_EQ(ExtractImage(many.manifest, many.blobs, few).status().code(), Code::kTooLarge);
}

TEST(OciImageTest, ParseManifestRefusesWhatIsNotAnImageManifest) {
  EXPECT_FALSE(ParseManifest("not json").ok());
  EXPECT_FALSE(ParseManifest(R"({"schemaVersion":1})").ok());
  EXPECT_NE(ParseManifest(R"({"schemaVersion":2,"mediaType":")" + std::string(kOciIndexType) +
                          R"(","manifests":[]})")
                .status()
                .message()
                .find("index"),
            std::string::npos);
  EXPECT_FALSE(ParseManifest(R"({"schemaVersion":2,"config":{"mediaType":"x","digest":"md5:1",)"
                             R"("size":1},"layers":[]})")
                   .ok());
  EXPECT_FALSE(ValidateDigest("sha256:ABC").ok());
  EXPECT_TRUE(ValidateDigest(DigestOf("")).ok());
  EXPECT_EQ(DigestOf(""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

}  // namespace
}  // namespace tandem::images
