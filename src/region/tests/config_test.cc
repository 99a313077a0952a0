#include "region/config.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base/fs.h"
#include "region/tests/config_test_util.h"

namespace tandem::region {
namespace {

// The smallest valid config; tests break one line of it at a time, so the line numbers below
// are the ones errors must name.
constexpr const char* kMinimal =
    "region:\n"                              // 1
    "  name: east\n"                         // 2
    "  address: 10.0.0.1\n"                  // 3
    "  http_port: 8080\n"                    // 4
    "  state_dir: /var/lib/tandem\n"         // 5
    "postgres:\n"                            // 6
    "  managed:\n"                           // 7
    "    port: 5432\n"                       // 8
    "secrets:\n"                             // 9
    "  key_file: /etc/tandem/secret.key\n";  // 10

constexpr const char* kFull = R"(# every key
region:
  name: east-1
  address: 10.0.0.1
  http_port: 8443
  state_dir: /srv/tandem/east
  peers: [10.0.0.2, 10.0.0.3]
postgres:
  managed:
    port: 6543
    bin_dir: /opt/pg/bin
    run_as: postgres
    shared_buffers: 256MB
    max_connections: 200
  connect_timeout_seconds: 90
  pool_size: 16
secrets:
  key: "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0wMTIzNDU2Nzg5YWI="
limits:
  max_value_bytes: 2097152
  max_body_bytes: 8388608
log:
  level: debug
http:
  threads: 32
registry:
  port: 5000
  binary: /opt/registry/bin/registry
task_logs:
  backend: s3
  s3:
    endpoint: https://s3.eu-west-3.amazonaws.com
    bucket: tandem-logs
    region: eu-west-3
    prefix: east-1/
    access_key_id: AKIAIOSFODNN7EXAMPLE
    secret_access_key_file: /etc/tandem/s3.secret
  spool_bound_bytes: 2147483648
  chunk_bytes: 131072
)";

using test_util::DefaultRunAs;
using test_util::Join;
using test_util::Lines;

// kMinimal with line `n` (1-based) replaced by `text` ("" removes the line).
std::string Replace(int n, const std::string& text) {
  return test_util::ReplaceLine(kMinimal, n, text);
}

// kMinimal with `text` inserted after line `n`, so that it becomes line n + 1.
std::string InsertAfter(int n, const std::string& text) {
  return test_util::InsertAfterLine(kMinimal, n, text);
}

class ConfigTest : public test_util::ConfigFileTest<RegionConfig> {
 protected:
  ConfigTest() : ConfigFileTest("region.yaml", LoadRegionConfig) {}
};

TEST_F(ConfigTest, ValidFullConfig) {
  auto c = Load(kFull);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->path, path_);
  EXPECT_EQ(c->name, "east-1");
  EXPECT_EQ(c->address, "10.0.0.1");
  EXPECT_EQ(c->http_port, 8443);
  EXPECT_EQ(c->state_dir, "/srv/tandem/east");
  EXPECT_EQ(c->peers, (std::vector<std::string>{"10.0.0.2", "10.0.0.3"}));
  ASSERT_TRUE(c->managed.has_value());
  EXPECT_EQ(c->managed->port, 6543);
  EXPECT_EQ(c->managed->bin_dir, "/opt/pg/bin");
  EXPECT_EQ(c->managed->run_as, "postgres");
  EXPECT_EQ(c->managed->shared_buffers, "256MB");
  EXPECT_EQ(c->managed->max_connections, 200);
  EXPECT_FALSE(c->external_dsn.has_value());
  EXPECT_EQ(c->connect_timeout_seconds, 90);
  EXPECT_EQ(c->pool_size, 16);
  EXPECT_EQ(c->secret_key, "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0wMTIzNDU2Nzg5YWI=");
  EXPECT_EQ(c->secret_key_file, "");
  EXPECT_EQ(c->max_value_bytes, 2097152);
  EXPECT_EQ(c->max_body_bytes, 8388608);
  EXPECT_EQ(c->log_level, "debug");
  EXPECT_EQ(c->http_threads, 32);
  EXPECT_EQ(c->registry, (RegistrySettings{.port = 5000, .binary = "/opt/registry/bin/registry"}));
  EXPECT_EQ(c->task_logs,
            (TaskLogSettings{.backend = "s3",
                             .s3 = S3Settings{.endpoint = "https://s3.eu-west-3.amazonaws.com",
                                              .bucket = "tandem-logs",
                                              .region = "eu-west-3",
                                              .prefix = "east-1/",
                                              .access_key_id = "AKIAIOSFODNN7EXAMPLE",
                                              .secret_access_key_file = "/etc/tandem/s3.secret"},
                             .spool_bound_bytes = 2147483648,
                             .chunk_bytes = 131072}));
}

TEST_F(ConfigTest, MinimalConfigGetsDefaults) {
  auto c = Load(kMinimal);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->name, "east");
  EXPECT_EQ(c->address, "10.0.0.1");
  EXPECT_EQ(c->http_port, 8080);
  EXPECT_EQ(c->state_dir, "/var/lib/tandem");
  EXPECT_TRUE(c->peers.empty());
  ASSERT_TRUE(c->managed.has_value());
  EXPECT_EQ(c->managed->port, 5432);
  EXPECT_EQ(c->managed->bin_dir, "/usr/lib/postgresql/15/bin");
  EXPECT_EQ(c->managed->run_as, DefaultRunAs());
  EXPECT_EQ(c->managed->shared_buffers, "32MB");
  EXPECT_EQ(c->managed->max_connections, 100);
  EXPECT_EQ(c->connect_timeout_seconds, 60);
  EXPECT_EQ(c->pool_size, 8);
  EXPECT_EQ(c->secret_key_file, "/etc/tandem/secret.key");
  EXPECT_EQ(c->secret_key, "");
  EXPECT_EQ(c->max_value_bytes, 1048576);
  EXPECT_EQ(c->max_body_bytes, 4194304);
  EXPECT_EQ(c->log_level, "info");
  EXPECT_EQ(c->http_threads, 512);
  EXPECT_EQ(c->local_workers, 1);
  EXPECT_EQ(c->worker_slots, 32);
  EXPECT_EQ(c->heartbeat_ms, 1000);
  EXPECT_EQ(c->task_nice, 10);
  EXPECT_EQ(c->zone, "tandem.test");
  EXPECT_FALSE(c->registry.has_value());
  EXPECT_EQ(c->task_logs.backend, "directory");
  EXPECT_FALSE(c->task_logs.s3.has_value());
  EXPECT_EQ(c->task_logs.spool_bound_bytes, 1073741824);
  EXPECT_EQ(c->task_logs.chunk_bytes, 65536);
  EXPECT_EQ(c->task_logs, TaskLogSettings());
}

TEST_F(ConfigTest, WorkersAndPlatform) {
  auto c = Load(InsertAfter(
      10,
      "workers: {local: 0, slots: 640, heartbeat_ms: 250, task_nice: 0}\nplatform: {zone: "
      "dr.example.org}"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->local_workers, 0);
  EXPECT_EQ(c->worker_slots, 640);
  EXPECT_EQ(c->heartbeat_ms, 250);
  EXPECT_EQ(c->task_nice, 0);
  EXPECT_EQ(ErrorOf(InsertAfter(10, "workers: {task_nice: 20}")),
            At(11, "workers.task_nice: expected an integer from 0 to 19, got \"20\""));
  EXPECT_EQ(ErrorOf(InsertAfter(10, "workers: {task_nice: -1}")),
            At(11, "workers.task_nice: expected an integer from 0 to 19, got \"-1\""));
  EXPECT_EQ(c->zone, "dr.example.org");
  EXPECT_EQ(ErrorOf(InsertAfter(10, "workers: {local: 65}")),
            At(11, "workers.local: expected an integer from 0 to 64, got \"65\""));
  EXPECT_EQ(ErrorOf(InsertAfter(10, "workers: {heartbeat_ms: 50}")),
            At(11, "workers.heartbeat_ms: expected an integer from 100 to 60000, got \"50\""));
  EXPECT_EQ(ErrorOf(InsertAfter(10, "workers: {slot: 4}")), At(11, "unknown key workers.slot"));
  for (const char* zone : {"Tandem.test", "-a.test", "a..test", "a.test.", "a_b.test", "a-.test"}) {
    std::string err = ErrorOf(InsertAfter(10, std::string("platform: {zone: '") + zone + "'}"));
    EXPECT_NE(err.find("platform.zone: expected a DNS name"), std::string::npos) << zone << err;
  }
}

TEST_F(ConfigTest, Registry) {
  auto c = Load(InsertAfter(10, "registry:\n  port: 5000"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_TRUE(c->registry.has_value());
  EXPECT_EQ(c->registry->port, 5000);
  EXPECT_EQ(c->registry->binary, "/usr/bin/docker-registry");

  c = Load(InsertAfter(10, "registry: {port: 65535, binary: /opt/registry/bin/registry}"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->registry, (RegistrySettings{.port = 65535, .binary = "/opt/registry/bin/registry"}));

  EXPECT_EQ(ErrorOf(InsertAfter(10, "registry: {}")), path_ + ": registry.port is required");
  EXPECT_EQ(ErrorOf(InsertAfter(10, "registry:")),
            At(11, "registry: expected a map, got an empty value"));
  EXPECT_EQ(ErrorOf(InsertAfter(10, "registry:\n  port: 0")),
            At(12, "registry.port: expected an integer from 1 to 65535, got \"0\""));
  EXPECT_EQ(ErrorOf(InsertAfter(10, "registry:\n  port: 65536")),
            At(12, "registry.port: expected an integer from 1 to 65535, got \"65536\""));
  EXPECT_EQ(ErrorOf(InsertAfter(10, "registry:\n  port: five")),
            At(12, "registry.port: expected an integer from 1 to 65535, got \"five\""));
  EXPECT_EQ(ErrorOf(InsertAfter(10, "registry:\n  port: 5000\n  binary: \"\"")),
            At(13, "registry.binary: expected a non-empty path, got \"\""));
  EXPECT_EQ(ErrorOf(InsertAfter(10, "registry:\n  port: 5000\n  binary: [a]")),
            At(13, "registry.binary: expected a non-empty path, got a list"));
  EXPECT_EQ(ErrorOf(InsertAfter(10, "registry:\n  port: 5000\n  storage: /tmp")),
            At(13, "unknown key registry.storage"));
  EXPECT_EQ(ErrorOf(InsertAfter(10, "registry:\n  port: 5000\n  port: 5001")),
            At(13, "duplicate key registry.port"));
}

TEST_F(ConfigTest, NoTwoListenersShareAPort) {
  EXPECT_EQ(ErrorOf(InsertAfter(10, "registry: {port: 8080}")),
            At(11,
               "registry.port: 10.0.0.1:8080 is already taken by region.http_port "
               "(10.0.0.1:8080)"));
  EXPECT_EQ(ErrorOf(InsertAfter(10, "registry: {port: 5432}")),
            At(11,
               "registry.port: 10.0.0.1:5432 is already taken by postgres.managed.port "
               "(10.0.0.1:5432)"));
  EXPECT_EQ(ErrorOf(Replace(8, "    port: 8080")),
            At(8,
               "postgres.managed.port: 10.0.0.1:8080 is already taken by region.http_port "
               "(10.0.0.1:8080)"));
  // Whatever the order of the sections, the later key in the file is the one reported.
  EXPECT_EQ(ErrorOf("registry: {port: 8080}\n" + std::string(kMinimal)),
            At(5,
               "region.http_port: 10.0.0.1:8080 is already taken by registry.port "
               "(10.0.0.1:8080)"));
  // An external server is no listener of the region's.
  std::vector<std::string> lines = Lines(InsertAfter(10, "registry: {port: 5432}"));
  lines[6] = "  external:";
  lines[7] = "    dsn: \"host=10.0.0.1 port=5432\"";
  EXPECT_TRUE(Load(Join(lines)).ok());
}

TEST_F(ConfigTest, TaskLogsInADirectory) {
  auto c = Load(InsertAfter(10,
                            "task_logs:\n"
                            "  backend: directory\n"
                            "  spool_bound_bytes: 1048576\n"
                            "  chunk_bytes: 1048576"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->task_logs.backend, "directory");
  EXPECT_FALSE(c->task_logs.s3.has_value());
  EXPECT_EQ(c->task_logs.spool_bound_bytes, 1048576);
  EXPECT_EQ(c->task_logs.chunk_bytes, 1048576);

  c = Load(InsertAfter(10, "task_logs: {spool_bound_bytes: 1099511627776, chunk_bytes: 16777216}"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->task_logs.spool_bound_bytes, 1099511627776);
  EXPECT_EQ(c->task_logs.chunk_bytes, 16777216);
  c = Load(InsertAfter(10, "task_logs: {chunk_bytes: 1024}"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->task_logs.chunk_bytes, 1024);
  EXPECT_TRUE(Load(InsertAfter(10, "task_logs: {}")).ok());
}

TEST_F(ConfigTest, TaskLogsKeysAreChecked) {
  EXPECT_EQ(ErrorOf(InsertAfter(10, "task_logs: {backend: S3}")),
            At(11, "task_logs.backend: expected directory or s3, got \"S3\""));
  EXPECT_EQ(ErrorOf(InsertAfter(10, "task_logs: {backend: s3}")),
            At(11, "task_logs.s3 is required when task_logs.backend is s3"));
  EXPECT_EQ(ErrorOf(InsertAfter(10, "task_logs:\n  spool_bound_bytes: 1048575")),
            At(12,
               "task_logs.spool_bound_bytes: expected an integer from 1048576 to 1099511627776, "
               "got \"1048575\""));
  EXPECT_EQ(ErrorOf(InsertAfter(10, "task_logs:\n  spool_bound_bytes: 1099511627777")),
            At(12,
               "task_logs.spool_bound_bytes: expected an integer from 1048576 to 1099511627776, "
               "got \"1099511627777\""));
  EXPECT_EQ(ErrorOf(InsertAfter(10, "task_logs:\n  spool_bound_bytes: 1GiB")),
            At(12,
               "task_logs.spool_bound_bytes: expected an integer from 1048576 to 1099511627776, "
               "got \"1GiB\""));
  EXPECT_EQ(
      ErrorOf(InsertAfter(10, "task_logs:\n  chunk_bytes: 1023")),
      At(12, "task_logs.chunk_bytes: expected an integer from 1024 to 16777216, got \"1023\""));
  EXPECT_EQ(ErrorOf(InsertAfter(10, "task_logs:\n  chunk_bytes: 16777217")),
            At(12,
               "task_logs.chunk_bytes: expected an integer from 1024 to 16777216, got "
               "\"16777217\""));
  EXPECT_EQ(ErrorOf(InsertAfter(10, "task_logs:\n  chunk_bytes: [1]")),
            At(12, "task_logs.chunk_bytes: expected an integer from 1024 to 16777216, got a list"));
  // The spool holds at least one chunk, written or default.
  EXPECT_TRUE(
      Load(InsertAfter(10, "task_logs: {chunk_bytes: 1048576, spool_bound_bytes: 1048576}")).ok());
  EXPECT_EQ(
      ErrorOf(InsertAfter(10, "task_logs:\n  chunk_bytes: 2097152\n  spool_bound_bytes: 1048576")),
      At(13,
         "task_logs.spool_bound_bytes (1048576) must be at least task_logs.chunk_bytes "
         "(2097152)"));
  EXPECT_EQ(
      ErrorOf(InsertAfter(10, "task_logs:\n  spool_bound_bytes: 1048576\n  chunk_bytes: 2097152")),
      At(12,
         "task_logs.spool_bound_bytes (1048576) must be at least task_logs.chunk_bytes "
         "(2097152)"));
  EXPECT_EQ(ErrorOf(InsertAfter(10, "task_logs: {backend: directory, spool: 1}")),
            At(11, "unknown key task_logs.spool"));
  EXPECT_EQ(ErrorOf(InsertAfter(10, "task_logs:\n  backend: directory\n  backend: s3")),
            At(13, "duplicate key task_logs.backend"));
  EXPECT_EQ(ErrorOf(InsertAfter(10, "task_logs: directory")),
            At(11, "task_logs: expected a map, got \"directory\""));
}

// kMinimal with task logs in an object store whose task_logs.s3 keys are `s3_keys`, one a line
// from line 14 on.
std::string WithS3(const std::vector<std::string>& s3_keys) {
  std::string text = "task_logs:\n  backend: s3\n  s3:";  // lines 11 to 13
  for (const std::string& key : s3_keys) text += "\n    " + key;
  return InsertAfter(10, text);
}

// Every required key of task_logs.s3, with `key` (its name before the ':') replaced by `line`
// ("" leaves it out).
std::vector<std::string> S3Keys(const std::string& key = "", const std::string& line = "") {
  std::vector<std::string> keys = {"endpoint: http://127.0.0.1:9000", "bucket: tandem-logs",
                                   "access_key_id: AKIAIOSFODNN7EXAMPLE",
                                   "secret_access_key_file: s3.secret"};
  std::vector<std::string> out;
  bool found = false;
  for (const std::string& k : keys) {
    if (k.starts_with(key + ":")) {
      found = true;
      if (!line.empty()) out.push_back(line);
    } else {
      out.push_back(k);
    }
  }
  if (!found && !line.empty()) out.push_back(line);
  return out;
}

TEST_F(ConfigTest, TaskLogsInAnObjectStore) {
  auto c = Load(WithS3(S3Keys()));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->task_logs.backend, "s3");
  ASSERT_TRUE(c->task_logs.s3.has_value());
  const S3Settings& s3 = *c->task_logs.s3;
  EXPECT_EQ(s3.endpoint, "http://127.0.0.1:9000");
  EXPECT_EQ(s3.bucket, "tandem-logs");
  EXPECT_EQ(s3.region, "us-east-1");
  EXPECT_EQ(s3.prefix, "");
  EXPECT_EQ(s3.access_key_id, "AKIAIOSFODNN7EXAMPLE");
  EXPECT_EQ(s3.secret_access_key_file, dir_->path() + "/s3.secret");  // made absolute
  EXPECT_EQ(s3.secret_access_key, "");
  EXPECT_EQ(c->task_logs.spool_bound_bytes, 1073741824);
  EXPECT_EQ(c->task_logs.chunk_bytes, 65536);

  std::vector<std::string> keys = S3Keys(
      "secret_access_key_file", "secret_access_key: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
  keys.push_back("region: eu-west-3");
  keys.push_back("prefix: tandem/region-a/");
  c = Load(WithS3(keys));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->task_logs.s3,
            (S3Settings{.endpoint = "http://127.0.0.1:9000",
                        .bucket = "tandem-logs",
                        .region = "eu-west-3",
                        .prefix = "tandem/region-a/",
                        .access_key_id = "AKIAIOSFODNN7EXAMPLE",
                        .secret_access_key_file = "",
                        .secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}));

  for (const char* endpoint :
       {"https://s3.eu-west-3.amazonaws.com", "http://localhost", "http://MinIO.internal:9000",
        "http://[::1]:9000", "https://[fd00::1]", "http://10.0.0.9:65535", "http://h:1"}) {
    c = Load(WithS3(S3Keys("endpoint", std::string("endpoint: \"") + endpoint + "\"")));
    ASSERT_TRUE(c.ok()) << endpoint << ": " << c.status().ToString();
    EXPECT_EQ(c->task_logs.s3->endpoint, endpoint);
  }
  for (const std::string& bucket : {std::string("abc"), std::string("my.logs-2024"),
                                    std::string("0") + std::string(61, 'a') + "9"}) {
    c = Load(WithS3(S3Keys("bucket", "bucket: " + bucket)));
    ASSERT_TRUE(c.ok()) << bucket << ": " << c.status().ToString();
    EXPECT_EQ(c->task_logs.s3->bucket, bucket);
  }
}

// `s` in double quotes, as messages show a value.
std::string Quoted(const std::string& s) { return "\"" + s + "\""; }

TEST_F(ConfigTest, TaskLogsObjectStoreKeysAreChecked) {
  // s3 belongs to the s3 backend only, whether directory is written or the default.
  EXPECT_EQ(ErrorOf(InsertAfter(10, "task_logs:\n  s3: {bucket: tandem-logs}")),
            At(12, "task_logs.s3: given, but task_logs.backend is directory, not s3"));
  EXPECT_EQ(ErrorOf(InsertAfter(10, "task_logs:\n  s3: {}\n  backend: directory")),
            At(12, "task_logs.s3: given, but task_logs.backend is directory, not s3"));

  EXPECT_EQ(ErrorOf(WithS3(S3Keys("endpoint"))), path_ + ": task_logs.s3.endpoint is required");
  EXPECT_EQ(ErrorOf(WithS3(S3Keys("bucket"))), path_ + ": task_logs.s3.bucket is required");
  EXPECT_EQ(ErrorOf(WithS3(S3Keys("access_key_id"))),
            path_ + ": task_logs.s3.access_key_id is required");
  const std::string exactly_one =
      "task_logs.s3: exactly one of secret_access_key_file or secret_access_key is required";
  EXPECT_EQ(ErrorOf(WithS3(S3Keys("secret_access_key_file"))), At(13, exactly_one));
  std::vector<std::string> both = S3Keys();
  both.push_back("secret_access_key: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
  std::string err = ErrorOf(WithS3(both));
  EXPECT_EQ(err, At(13, exactly_one));
  EXPECT_EQ(err.find("wJalr"), std::string::npos) << err;
  EXPECT_EQ(ErrorOf(WithS3(S3Keys("secret_access_key_file", "secret_access_key: \"\""))),
            At(17, "task_logs.s3.secret_access_key: expected a non-empty string, got \"\""));
  EXPECT_EQ(ErrorOf(WithS3(S3Keys("secret_access_key_file", "secret_access_key: {a: b}"))),
            At(17, "task_logs.s3.secret_access_key: expected a non-empty string, got a map"));
  EXPECT_EQ(ErrorOf(WithS3(S3Keys("secret_access_key_file", "secret_access_key_file: \"\""))),
            At(17, "task_logs.s3.secret_access_key_file: expected a non-empty path, got \"\""));
  EXPECT_EQ(ErrorOf(WithS3(S3Keys("", "secret: x"))), At(18, "unknown key task_logs.s3.secret"));
  EXPECT_EQ(ErrorOf(WithS3(S3Keys("", "bucket: other"))),
            At(18, "duplicate key task_logs.s3.bucket"));

  const std::string endpoint_rule =
      "task_logs.s3.endpoint: expected an http:// or https:// URL of a host and an optional port, "
      "with no path, query or user (such as http://127.0.0.1:9000), got ";
  for (const char* endpoint :
       {"127.0.0.1:9000",   "ftp://h",         "HTTP://h",       "http://",      "http://:9000",
        "http://h:",        "http://h:0",      "http://h:65536", "http://h:+80", "http://h:9000x",
        "http://h/",        "http://h/bucket", "http://h?x=1",   "http://h#f",   "http://user@h",
        "http://a..b",      "http://-a",       "http://a_b",     "http://[::1",  "http://[zz]:9000",
        "http://[::1]9000", "http://h :9000"}) {
    EXPECT_EQ(ErrorOf(WithS3(S3Keys("endpoint", std::string("endpoint: \"") + endpoint + "\""))),
              At(14, endpoint_rule + Quoted(endpoint)));
  }
  EXPECT_EQ(ErrorOf(WithS3(S3Keys("endpoint", "endpoint: [http://h]"))),
            At(14, endpoint_rule + "a list"));

  const std::string bucket_rule =
      "task_logs.s3.bucket: expected a bucket name of 3 to 63 lowercase letters, digits, '.' or "
      "'-', starting and ending with a letter or digit, got ";
  for (const std::string& bucket :
       {std::string("ab"), std::string(64, 'a'), std::string("Logs"), std::string("-logs"),
        std::string("logs-"), std::string(".logs"), std::string("logs."), std::string("my_logs"),
        std::string("my logs")}) {
    EXPECT_EQ(ErrorOf(WithS3(S3Keys("bucket", "bucket: \"" + bucket + "\""))),
              At(15, bucket_rule + Quoted(bucket)));
  }

  const std::string region_rule =
      "task_logs.s3.region: expected a region name of 1 to 63 lowercase letters, digits or '-', "
      "got ";
  for (const std::string& region : {std::string(""), std::string("US-EAST-1"),
                                    std::string("us east 1"), std::string(64, 'a')}) {
    EXPECT_EQ(ErrorOf(WithS3(S3Keys("", "region: \"" + region + "\""))),
              At(18, region_rule + Quoted(region)));
  }

  const std::string prefix_rule =
      "task_logs.s3.prefix: expected \"\" or a key prefix ending in '/' and not starting with "
      "'/', got ";
  for (const std::string& prefix :
       {std::string("/tandem/"), std::string("tandem"), std::string("/")}) {
    EXPECT_EQ(ErrorOf(WithS3(S3Keys("", "prefix: \"" + prefix + "\""))),
              At(18, prefix_rule + Quoted(prefix)));
  }
  auto c = Load(WithS3(S3Keys("", "prefix: \"\"")));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->task_logs.s3->prefix, "");

  const std::string key_id_rule =
      "task_logs.s3.access_key_id: expected a non-empty string of printable characters without "
      "spaces, got ";
  EXPECT_EQ(ErrorOf(WithS3(S3Keys("access_key_id", "access_key_id: \"\""))),
            At(16, key_id_rule + "\"\""));
  EXPECT_EQ(ErrorOf(WithS3(S3Keys("access_key_id", "access_key_id: \"AKIA EXAMPLE\""))),
            At(16, key_id_rule + "\"AKIA EXAMPLE\""));
  EXPECT_EQ(ErrorOf(WithS3(S3Keys("access_key_id", "access_key_id: \"AKIA\\nX\""))),
            At(16, key_id_rule + "\"AKIA\\nX\""));
}

TEST_F(ConfigTest, ExternalPostgres) {
  std::vector<std::string> lines = Lines(kMinimal);
  lines[6] = "  external:";
  lines[7] = "    dsn: \"host=db port=5432 dbname=tandem\"";
  auto c = Load(Join(lines));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(c->managed.has_value());
  EXPECT_EQ(c->external_dsn, "host=db port=5432 dbname=tandem");
}

TEST_F(ConfigTest, RelativePathsResolveAgainstTheConfigFileDirectory) {
  std::string sub = dir_->path() + "/etc/tandem";
  ASSERT_TRUE(MakeDirs(sub).ok());
  std::string file = sub + "/region.yaml";
  std::vector<std::string> lines = Lines(InsertAfter(8, "    bin_dir: ../pg/bin"));
  lines[4] = "  state_dir: state/./east/";
  lines[10] = "  key_file: ../keys/secret.key";
  lines.push_back("registry: {port: 5000, binary: ../bin/docker-registry}");
  lines.push_back(
      "task_logs: {backend: s3, s3: {endpoint: \"http://127.0.0.1:9000\", bucket: logs, "
      "access_key_id: k, secret_access_key_file: keys/./s3.secret}}");
  ASSERT_TRUE(WriteFileAtomic(file, Join(lines)).ok());

  auto c = LoadRegionConfig(file);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->path, file);
  EXPECT_EQ(c->state_dir, sub + "/state/east");
  EXPECT_EQ(c->managed->bin_dir, dir_->path() + "/etc/pg/bin");
  EXPECT_EQ(c->secret_key_file, dir_->path() + "/etc/keys/secret.key");
  EXPECT_EQ(c->registry->binary, dir_->path() + "/etc/bin/docker-registry");
  EXPECT_EQ(c->task_logs.s3->secret_access_key_file, sub + "/keys/s3.secret");

  // A relative file name anchors at the current directory, like the file itself.
  auto parsed = ParseRegionConfig(Join(lines), "conf/region.yaml");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->path, AbsolutePath("conf/region.yaml"));
  EXPECT_EQ(parsed->state_dir, AbsolutePath("conf/state/east"));
}

TEST_F(ConfigTest, UnknownKeyAtTopLevel) {
  EXPECT_EQ(ErrorOf(InsertAfter(10, "postgress: {}")), At(11, "unknown key postgress"));
}

TEST_F(ConfigTest, UnknownNestedKey) {
  EXPECT_EQ(ErrorOf(Replace(8, "    prot: 5432")), At(8, "unknown key postgres.managed.prot"));
  EXPECT_EQ(ErrorOf(InsertAfter(2, "  nmae: west")), At(3, "unknown key region.nmae"));
}

TEST_F(ConfigTest, DuplicateKey) {
  EXPECT_EQ(ErrorOf(InsertAfter(4, "  http_port: 9090")), At(5, "duplicate key region.http_port"));
}

TEST_F(ConfigTest, WrongType) {
  EXPECT_EQ(ErrorOf(Replace(4, "  http_port: abc")),
            At(4, "region.http_port: expected an integer from 1 to 65535, got \"abc\""));
  EXPECT_EQ(ErrorOf(Replace(4, "  http_port: 80.5")),
            At(4, "region.http_port: expected an integer from 1 to 65535, got \"80.5\""));
  EXPECT_EQ(ErrorOf(Replace(4, "  http_port: {a: 1}")),
            At(4, "region.http_port: expected an integer from 1 to 65535, got a map"));
  EXPECT_EQ(ErrorOf(Replace(4, "  http_port:")),
            At(4, "region.http_port: expected an integer from 1 to 65535, got an empty value"));
  EXPECT_EQ(ErrorOf(Replace(8, "    port: [5432]")),
            At(8, "postgres.managed.port: expected an integer from 1 to 65535, got a list"));
  std::string name_error = ErrorOf(Replace(2, "  name: {first: east}"));
  EXPECT_EQ(name_error.find(At(2, "region.name: expected a name")), 0u) << name_error;
  EXPECT_NE(name_error.find("got a map"), std::string::npos) << name_error;
  EXPECT_EQ(ErrorOf(InsertAfter(10, "log: debug")), At(11, "log: expected a map, got \"debug\""));
  EXPECT_EQ(ErrorOf(InsertAfter(5, "  peers: 10.0.0.2")),
            At(6, "region.peers: expected a list of dotted IPv4 addresses, got \"10.0.0.2\""));
  EXPECT_EQ(ErrorOf("- region\n- postgres\n"),
            At(1, "expected a map of sections (region, postgres, secrets, ...), got a list"));
}

TEST_F(ConfigTest, OutOfRangeInteger) {
  EXPECT_EQ(ErrorOf(Replace(4, "  http_port: 70000")),
            At(4, "region.http_port: expected an integer from 1 to 65535, got \"70000\""));
  EXPECT_EQ(ErrorOf(Replace(4, "  http_port: 0")),
            At(4, "region.http_port: expected an integer from 1 to 65535, got \"0\""));
  EXPECT_EQ(ErrorOf(InsertAfter(8, "  pool_size: 65")),
            At(9, "postgres.pool_size: expected an integer from 1 to 64, got \"65\""));
  EXPECT_EQ(ErrorOf(InsertAfter(8, "  connect_timeout_seconds: 99999999999999999999")),
            At(9,
               "postgres.connect_timeout_seconds: expected an integer from 1 to 3600, got "
               "\"99999999999999999999\""));
  EXPECT_EQ(ErrorOf(InsertAfter(10, "http: {threads: 1025}")),
            At(11, "http.threads: expected an integer from 1 to 1024, got \"1025\""));
  EXPECT_EQ(ErrorOf(InsertAfter(10, "limits: {max_value_bytes: 1023}")),
            At(11,
               "limits.max_value_bytes: expected an integer from 1024 to 67108864, got "
               "\"1023\""));
  // The body limit is checked against the value limit, written or default.
  EXPECT_EQ(ErrorOf(InsertAfter(10, "limits:\n  max_value_bytes: 8388608")),
            At(12,
               "limits.max_body_bytes (4194304) must be at least limits.max_value_bytes "
               "(8388608)"));
  EXPECT_EQ(ErrorOf(InsertAfter(10, "limits:\n  max_body_bytes: 2048")),
            At(12,
               "limits.max_body_bytes (2048) must be at least limits.max_value_bytes "
               "(1048576)"));
  EXPECT_TRUE(Load(InsertAfter(10, "limits: {max_value_bytes: 1024, max_body_bytes: 1024}")).ok());
}

TEST_F(ConfigTest, InvalidName) {
  const std::string rule =
      "region.name: expected a name of 1 to 31 characters: a lowercase letter, then lowercase "
      "letters, digits or '-', got ";
  EXPECT_EQ(ErrorOf(Replace(2, "  name: East")), At(2, rule + "\"East\""));
  EXPECT_EQ(ErrorOf(Replace(2, "  name: 1east")), At(2, rule + "\"1east\""));
  EXPECT_EQ(ErrorOf(Replace(2, "  name: east_1")), At(2, rule + "\"east_1\""));
  EXPECT_EQ(ErrorOf(Replace(2, "  name: \"\"")), At(2, rule + "\"\""));
  std::string longest = "a" + std::string(30, '-');
  EXPECT_TRUE(Load(Replace(2, "  name: " + longest)).ok());
  EXPECT_EQ(ErrorOf(Replace(2, "  name: " + longest + "x")), At(2, rule + "\"" + longest + "x\""));
}

TEST_F(ConfigTest, InvalidAddress) {
  const std::string rule = "region.address: expected a dotted IPv4 address, got ";
  EXPECT_EQ(ErrorOf(Replace(3, "  address: 10.0.0.256")), At(3, rule + "\"10.0.0.256\""));
  EXPECT_EQ(ErrorOf(Replace(3, "  address: localhost")), At(3, rule + "\"localhost\""));
  EXPECT_EQ(ErrorOf(Replace(3, "  address: \"::1\"")), At(3, rule + "\"::1\""));
  EXPECT_EQ(ErrorOf(InsertAfter(5, "  peers:\n    - 10.0.0.2\n    - 10.0.0.x")),
            At(8, "region.peers[1]: expected a dotted IPv4 address, got \"10.0.0.x\""));
}

TEST_F(ConfigTest, MissingRequiredKey) {
  EXPECT_EQ(ErrorOf(Replace(2, "")), path_ + ": region.name is required");
  EXPECT_EQ(ErrorOf(Replace(5, "")), path_ + ": region.state_dir is required");
  EXPECT_EQ(ErrorOf(Replace(8, "    run_as: postgres")),
            path_ + ": postgres.managed.port is required");
  std::vector<std::string> lines = Lines(kMinimal);
  lines.resize(8);  // no secrets section
  EXPECT_EQ(ErrorOf(Join(lines)), path_ + ": secrets is required");
  EXPECT_EQ(ErrorOf(""), path_ + ": region is required");
  EXPECT_EQ(ErrorOf("# nothing but a comment\n"), path_ + ": region is required");
}

TEST_F(ConfigTest, PostgresNeedsExactlyOneOfManagedOrExternal) {
  EXPECT_EQ(ErrorOf(InsertAfter(8, "  external: {dsn: \"host=db\"}")),
            At(6, "postgres: exactly one of managed or external is required"));
  std::vector<std::string> lines = Lines(kMinimal);
  lines[6] = "  pool_size: 4";
  lines.erase(lines.begin() + 7);
  EXPECT_EQ(ErrorOf(Join(lines)),
            At(6, "postgres: exactly one of managed or external is required"));
  lines = Lines(kMinimal);
  lines[6] = "  external: {}";
  lines.erase(lines.begin() + 7);
  EXPECT_EQ(ErrorOf(Join(lines)), path_ + ": postgres.external.dsn is required");
  lines[6] = "  external: {dsn: \"\"}";
  EXPECT_EQ(ErrorOf(Join(lines)),
            At(7, "postgres.external.dsn: expected a non-empty string, got \"\""));
}

TEST_F(ConfigTest, SecretsNeedExactlyOneOfKeyFileOrKey) {
  EXPECT_EQ(ErrorOf(InsertAfter(10, "  key: c2VjcmV0")),
            At(9, "secrets: exactly one of key_file or key is required"));
  std::vector<std::string> lines = Lines(kMinimal);
  lines[8] = "secrets: {}";
  lines.pop_back();
  EXPECT_EQ(ErrorOf(Join(lines)), At(9, "secrets: exactly one of key_file or key is required"));
  EXPECT_EQ(ErrorOf(Replace(10, "  key_file: \"\"")),
            At(10, "secrets.key_file: expected a non-empty path, got \"\""));
  // A malformed inline key is reported without being echoed.
  std::string bad = ErrorOf(Replace(10, "  key: not*base64!"));
  EXPECT_EQ(bad.find(At(10, "secrets.key: expected base64 text")), 0u) << bad;
  EXPECT_EQ(bad.find("not*base64"), std::string::npos) << bad;
}

TEST_F(ConfigTest, OtherValuesAreChecked) {
  EXPECT_EQ(ErrorOf(InsertAfter(10, "log: {level: verbose}")),
            At(11, "log.level: expected one of trace, debug, info, warn, error, got \"verbose\""));
  EXPECT_EQ(ErrorOf(InsertAfter(8, "    shared_buffers: \"32MB'; fsync = off\"")),
            At(9,
               "postgres.managed.shared_buffers: expected a size such as 32MB (digits, then B, "
               "kB, MB, GB or TB), got \"32MB'; fsync = off\""));
  EXPECT_EQ(ErrorOf(kMinimal + std::string("---\nregion: {}\n")),
            At(12, "expected one YAML document, found 2"));
}

TEST_F(ConfigTest, YamlSyntaxErrorNamesTheLine) {
  std::string e = ErrorOf(Replace(3, "  address: 10.0.0.1: x"));
  EXPECT_EQ(e.find(At(3, "YAML syntax error: ")), 0u) << e;
  e = ErrorOf(InsertAfter(6, "\tmanaged:"));
  EXPECT_EQ(e.find(At(7, "YAML syntax error: ")), 0u) << e;
}

TEST_F(ConfigTest, MissingFileIsNotFound) {
  auto c = LoadRegionConfig(dir_->path() + "/absent.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kNotFound);
  EXPECT_NE(c.status().message().find(dir_->path() + "/absent.yaml"), std::string::npos);
}

TEST_F(ConfigTest, RenderParsesBackToTheSameConfig) {
  auto full = Load(kFull);
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  std::string text = RenderRegionConfig(*full);
  auto back = ParseRegionConfig(text, full->path);
  ASSERT_TRUE(back.ok()) << back.status().ToString() << "\n" << text;
  EXPECT_EQ(*back, *full) << text;

  // Strings YAML would read as something else, an empty run_as, an external server.
  RegionConfig c = *full;
  c.peers.clear();
  c.managed.reset();
  c.external_dsn = "host=db password='a \"b\" #c: d' dbname=null";
  c.secret_key.clear();
  c.secret_key_file = "/etc/tandem/key: #1";
  c.state_dir = "/srv/true";
  text = RenderRegionConfig(c);
  back = ParseRegionConfig(text, c.path);
  ASSERT_TRUE(back.ok()) << back.status().ToString() << "\n" << text;
  EXPECT_EQ(*back, c) << text;

  c = *full;
  c.managed->run_as = "";
  c.managed->shared_buffers = "1024";
  c.log_level = "error";
  text = RenderRegionConfig(c);
  back = ParseRegionConfig(text, c.path);
  ASSERT_TRUE(back.ok()) << back.status().ToString() << "\n" << text;
  EXPECT_EQ(*back, c) << text;

  // A registry, task logs in an object store: once with a secret key file, once with the key
  // inline; strings YAML would read as something else.
  c = *full;
  c.registry = RegistrySettings{.port = 5000, .binary = "/opt/registry: #1"};
  c.task_logs = TaskLogSettings{.backend = "s3",
                                .s3 = S3Settings{.endpoint = "https://[fd00::1]:9000",
                                                 .bucket = "true",
                                                 .region = "null",
                                                 .prefix = "logs: #1/",
                                                 .access_key_id = "~",
                                                 .secret_access_key_file = "/etc/tandem/s3: key"},
                                .spool_bound_bytes = 1099511627776,
                                .chunk_bytes = 16777216};
  text = RenderRegionConfig(c);
  back = ParseRegionConfig(text, c.path);
  ASSERT_TRUE(back.ok()) << back.status().ToString() << "\n" << text;
  EXPECT_EQ(*back, c) << text;
  c.task_logs.s3->secret_access_key_file.clear();
  c.task_logs.s3->secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  c.task_logs.s3->prefix.clear();
  c.task_logs.spool_bound_bytes = 1048576;
  c.task_logs.chunk_bytes = 1024;
  text = RenderRegionConfig(c);
  back = ParseRegionConfig(text, c.path);
  ASSERT_TRUE(back.ok()) << back.status().ToString() << "\n" << text;
  EXPECT_EQ(*back, c) << text;

  // Writing the rendered text to a file and loading it gives the same answer.
  ASSERT_TRUE(WriteFileAtomic(path_, text).ok());
  auto loaded = LoadRegionConfig(path_);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(*loaded, c);
}

}  // namespace
}  // namespace tandem::region

namespace tandem::region {
namespace {

// The sample shipped in examples/ is what newcomers copy: it must stay valid.
TEST(ConfigExampleTest, ShippedExampleParses) {
  auto c = LoadRegionConfig(std::string(TANDEM_SOURCE_DIR) + "/examples/region.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->name, "region-a");
  EXPECT_EQ(c->address, "127.0.0.11");
  EXPECT_EQ(c->registry, RegistrySettings{.port = 5000});
  EXPECT_EQ(c->task_logs, TaskLogSettings());
}

}  // namespace
}  // namespace tandem::region
