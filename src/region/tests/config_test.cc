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
  EXPECT_EQ(c->http_threads, 32);
  EXPECT_EQ(c->local_workers, 1);
  EXPECT_EQ(c->worker_slots, 32);
  EXPECT_EQ(c->heartbeat_ms, 1000);
  EXPECT_EQ(c->zone, "tandem.test");
}

TEST_F(ConfigTest, WorkersAndPlatform) {
  auto c = Load(InsertAfter(
      10, "workers: {local: 0, slots: 640, heartbeat_ms: 250}\nplatform: {zone: dr.example.org}"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->local_workers, 0);
  EXPECT_EQ(c->worker_slots, 640);
  EXPECT_EQ(c->heartbeat_ms, 250);
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
  ASSERT_TRUE(WriteFileAtomic(file, Join(lines)).ok());

  auto c = LoadRegionConfig(file);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->path, file);
  EXPECT_EQ(c->state_dir, sub + "/state/east");
  EXPECT_EQ(c->managed->bin_dir, dir_->path() + "/etc/pg/bin");
  EXPECT_EQ(c->secret_key_file, dir_->path() + "/etc/keys/secret.key");

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
}

}  // namespace
}  // namespace tandem::region
