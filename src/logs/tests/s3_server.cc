#include "logs/tests/s3_server.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <regex>
#include <thread>

namespace tandem::logs::test {
namespace {

constexpr auto kStartTimeout = std::chrono::seconds(30);

bool OnPath(const std::string& program) {
  const char* path = getenv("PATH");
  std::string rest = path != nullptr ? path : "";
  size_t start = 0;
  while (start <= rest.size()) {
    size_t colon = rest.find(':', start);
    std::string dir = rest.substr(start, colon == std::string::npos ? colon : colon - start);
    dir += '/';
    dir += program;
    if (dir.size() > program.size() + 1 && access(dir.c_str(), X_OK) == 0) return true;
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return false;
}

std::string Tail(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) return "(no output)";
  return text->size() > 2000 ? text->substr(text->size() - 2000) : *text;
}

}  // namespace

std::string S3rverPath() {
  const char* env = getenv("TANDEM_S3RVER");
  if (env != nullptr && *env != '\0') return env;
  return std::string(TANDEM_SOURCE_DIR) + "/tools/npm/node_modules/.bin/s3rver";
}

Result<std::unique_ptr<S3Server>> S3Server::Start(const std::string& bucket) {
  const std::string s3rver = S3rverPath();
  if (!OnPath("node")) {
    return FailedPrecondition(
        "node is not installed, so the S3 tests cannot start s3rver: run scripts/setup.sh");
  }
  if (access(s3rver.c_str(), X_OK) != 0) {
    return FailedPrecondition("s3rver is missing at " + s3rver +
                              ": run `npm ci --prefix tools/npm` (scripts/setup.sh does)");
  }
  ASSIGN_OR_RETURN(TempDir dir, TempDir::Create("tandem-s3rver"));
  auto server = std::unique_ptr<S3Server>(new S3Server(std::move(dir), bucket));
  const std::string output = server->dir_->path() + "/s3rver.out";
  SpawnOptions opts;
  opts.argv = {s3rver, "-d", server->dir_->path() + "/data", "-a", "127.0.0.1", "-p", "0",
               "-s", "--configure-bucket", bucket};
  // s3rver makes ListObjectsV2 continuation tokens with DES, which node's OpenSSL 3 keeps in
  // its legacy provider: without it every truncated listing fails with InternalError.
  opts.env_extra["NODE_OPTIONS"] = "--openssl-legacy-provider";
  opts.output_path = output;
  opts.death_signal = SIGKILL;
  ASSIGN_OR_RETURN(server->child_, Child::Spawn(opts));

  // It prints "S3rver listening on 127.0.0.1:PORT" once the bucket exists and it serves.
  const std::regex listening("S3rver listening on 127\\.0\\.0\\.1:([0-9]+)");
  const auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  while (true) {
    auto text = ReadFile(output);
    std::smatch m;
    if (text.ok() && std::regex_search(*text, m, listening)) {
      server->endpoint_ = "http://127.0.0.1:" + m[1].str();
      return server;
    }
    if (auto exit = server->child_->Poll()) {
      return Internal("s3rver (" + s3rver + ") " + exit->Describe() +
                      " before listening: " + Tail(output));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return Unavailable("s3rver did not say it was listening within 30 s: " + Tail(output));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

S3Server::~S3Server() {
  if (child_) child_->Stop(SIGTERM, std::chrono::seconds(5));
  child_.reset();
  dir_.reset();
}

S3LogStoreOptions S3Server::StoreOptions(const std::string& prefix) const {
  S3LogStoreOptions o;
  o.endpoint = endpoint_;
  o.bucket = bucket_;
  o.access_key_id = kAccessKeyId;
  o.secret_access_key = kSecretAccessKey;
  o.key_prefix = prefix;
  o.connect_timeout = std::chrono::seconds(5);
  o.request_timeout = std::chrono::seconds(30);
  return o;
}

}  // namespace tandem::logs::test
