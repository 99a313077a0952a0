#include "region/pair_config.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base/fs.h"
#include "region/tests/config_test_util.h"

namespace tandem::region {
namespace {

// The smallest valid pair; tests break one line of it at a time, so the line numbers below are
// the ones errors must name.
constexpr const char* kMinimal =
    "pair:\n"                    // 1
    "  name: local\n"            // 2
    "control:\n"                 // 3
    "  address: 127.0.0.10\n"    // 4
    "  http_port: 8070\n"        // 5
    "  state_dir: control\n"     // 6
    "secrets:\n"                 // 7
    "  key_file: secret.key\n"   // 8
    "regions:\n"                 // 9
    "  - name: region-a\n"       // 10
    "    address: 127.0.0.11\n"  // 11
    "    http_port: 8080\n"      // 12
    "    state_dir: region-a\n"  // 13
    "    role: primary\n"        // 14
    "    postgres:\n"            // 15
    "      port: 15432\n"        // 16
    "  - name: region-b\n"       // 17
    "    address: 127.0.0.12\n"  // 18
    "    http_port: 8080\n"      // 19
    "    state_dir: region-b\n"  // 20
    "    role: standby\n"        // 21
    "    postgres:\n"            // 22
    "      port: 15432\n";       // 23

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

class PairConfigTest : public test_util::ConfigFileTest<PairConfig> {
 protected:
  PairConfigTest() : ConfigFileTest("pair.yaml", LoadPairConfig) {}
};

TEST_F(PairConfigTest, MinimalPairGetsDefaults) {
  auto p = Load(kMinimal);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->path, path_);
  EXPECT_EQ(p->name, "local");
  EXPECT_EQ(p->mode, "asynchronous");
  EXPECT_EQ(p->synchronous_degrade_after_ms, 5000);
  EXPECT_FALSE(p->automatic_failover);
  EXPECT_EQ(p->health_interval_ms, 250);
  EXPECT_EQ(p->detection_misses, 8);
  EXPECT_EQ(p->lease_ms, 3000);
  EXPECT_EQ(p->lease_renew_ms, 500);
  EXPECT_EQ(p->lease_margin_ms, 500);
  EXPECT_EQ(p->drain_timeout_seconds, 60);
  EXPECT_EQ(p->planned_timeout_seconds, 120);
  EXPECT_EQ(p->image_replication_timeout_seconds, 60);
  EXPECT_EQ(p->control.address, "127.0.0.10");
  EXPECT_EQ(p->control.http_port, 8070);
  EXPECT_EQ(p->zone, "tandem.test");
  EXPECT_EQ(p->secret_key, "");

  // Relative paths resolve against the file's directory.
  EXPECT_EQ(p->control.state_dir, dir_->path() + "/control");
  EXPECT_EQ(p->secret_key_file, dir_->path() + "/secret.key");
  EXPECT_EQ(p->regions[0].state_dir, dir_->path() + "/region-a");
  EXPECT_EQ(p->regions[1].state_dir, dir_->path() + "/region-b");

  EXPECT_EQ(p->regions[0].name, "region-a");
  EXPECT_EQ(p->regions[0].address, "127.0.0.11");
  EXPECT_EQ(p->regions[0].http_port, 8080);
  EXPECT_EQ(p->regions[0].role, "primary");
  EXPECT_EQ(p->regions[0].postgres.port, 15432);
  EXPECT_EQ(p->regions[1].name, "region-b");
  EXPECT_EQ(p->regions[1].role, "standby");

  // A region's defaults are those of a region file.
  const RegionConfig d;
  for (const PairRegion& r : p->regions) {
    EXPECT_EQ(r.postgres.bin_dir, ManagedPostgres().bin_dir);
    EXPECT_EQ(r.postgres.run_as, DefaultRunAs());
    EXPECT_EQ(r.postgres.shared_buffers, ManagedPostgres().shared_buffers);
    EXPECT_EQ(r.postgres.max_connections, ManagedPostgres().max_connections);
    EXPECT_EQ(r.connect_timeout_seconds, d.connect_timeout_seconds);
    EXPECT_EQ(r.pool_size, d.pool_size);
    EXPECT_EQ(r.max_value_bytes, d.max_value_bytes);
    EXPECT_EQ(r.max_body_bytes, d.max_body_bytes);
    EXPECT_EQ(r.log_level, d.log_level);
    EXPECT_EQ(r.http_threads, d.http_threads);
    EXPECT_EQ(r.local_workers, d.local_workers);
    EXPECT_EQ(r.worker_slots, d.worker_slots);
    EXPECT_EQ(r.heartbeat_ms, d.heartbeat_ms);
    EXPECT_EQ(r.task_nice, d.task_nice);
    EXPECT_FALSE(r.registry.has_value());
    EXPECT_EQ(r.task_logs, d.task_logs);
  }
  // ... and so are the pair's lease settings those a region assumes by default.
  const DrSettings dr;
  EXPECT_EQ(p->lease_ms, dr.lease_ms);
  EXPECT_EQ(p->lease_renew_ms, dr.lease_renew_ms);
  EXPECT_EQ(p->lease_margin_ms, dr.lease_margin_ms);
  EXPECT_EQ(p->mode, dr.mode);
  EXPECT_EQ(p->synchronous_degrade_after_ms, dr.synchronous_degrade_after_ms);
  EXPECT_EQ(p->image_replication_timeout_seconds, dr.image_replication_timeout_seconds);
}

TEST_F(PairConfigTest, EveryPairKey) {
  auto p = Load(InsertAfter(2,
                            "  mode: synchronous\n"
                            "  synchronous_degrade_after_ms: 100\n"
                            "  automatic_failover: true\n"
                            "  health_interval_ms: 100\n"
                            "  detection_misses: 5\n"
                            "  lease_ms: 2000\n"
                            "  lease_renew_ms: 400\n"
                            "  lease_margin_ms: 0\n"
                            "  drain_timeout_seconds: 0\n"
                            "  planned_timeout_seconds: 1\n"
                            "  image_replication_timeout_seconds: 3600\n"
                            "platform: {zone: dr.example.org}"));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->mode, "synchronous");
  EXPECT_EQ(p->synchronous_degrade_after_ms, 100);
  EXPECT_TRUE(p->automatic_failover);
  EXPECT_EQ(p->health_interval_ms, 100);
  EXPECT_EQ(p->detection_misses, 5);
  EXPECT_EQ(p->lease_ms, 2000);
  EXPECT_EQ(p->lease_renew_ms, 400);
  EXPECT_EQ(p->lease_margin_ms, 0);
  EXPECT_EQ(p->drain_timeout_seconds, 0);
  EXPECT_EQ(p->planned_timeout_seconds, 1);
  EXPECT_EQ(p->image_replication_timeout_seconds, 3600);
  EXPECT_EQ(p->zone, "dr.example.org");
}

TEST_F(PairConfigTest, RegionConfigForEachRegion) {
  auto p =
      Load(InsertAfter(16, "      pool_size: 4\n    workers: {local: 2}\n    log: {level: debug}"));
  ASSERT_TRUE(p.ok()) << p.status().ToString();

  auto a = RegionConfigFor(*p, "region-a");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->path, path_);
  EXPECT_EQ(a->name, "region-a");
  EXPECT_EQ(a->address, "127.0.0.11");
  EXPECT_EQ(a->http_port, 8080);
  EXPECT_EQ(a->state_dir, dir_->path() + "/region-a");
  EXPECT_EQ(a->peers, std::vector<std::string>{"127.0.0.12"});
  ASSERT_TRUE(a->managed.has_value());
  EXPECT_EQ(a->managed->port, 15432);
  EXPECT_EQ(a->managed->bin_dir, "/usr/lib/postgresql/15/bin");
  EXPECT_FALSE(a->external_dsn.has_value());
  EXPECT_EQ(a->pool_size, 4);
  EXPECT_EQ(a->local_workers, 2);
  EXPECT_EQ(a->log_level, "debug");
  EXPECT_EQ(a->secret_key_file, dir_->path() + "/secret.key");
  EXPECT_EQ(a->zone, "tandem.test");
  ASSERT_TRUE(a->dr.has_value());
  EXPECT_EQ(a->dr->pair, "local");
  EXPECT_EQ(a->dr->control_url, "http://127.0.0.10:8070");
  EXPECT_EQ(
      a->dr->peer,
      (DrPeer{.name = "region-b", .address = "127.0.0.12", .http_port = 8080, .pg_port = 15432}));
  EXPECT_EQ(a->dr->initial_role, "primary");
  EXPECT_EQ(a->dr->lease_ms, 3000);
  EXPECT_EQ(a->dr->lease_renew_ms, 500);
  EXPECT_EQ(a->dr->lease_margin_ms, 500);
  EXPECT_EQ(a->dr->mode, "asynchronous");
  EXPECT_EQ(a->dr->synchronous_degrade_after_ms, 5000);
  EXPECT_EQ(a->dr->image_replication_timeout_seconds, 60);
  EXPECT_FALSE(a->registry.has_value());
  EXPECT_EQ(a->task_logs, TaskLogSettings());

  auto b = RegionConfigFor(*p, "region-b");
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->path, path_);
  EXPECT_EQ(b->name, "region-b");
  EXPECT_EQ(b->address, "127.0.0.12");
  EXPECT_EQ(b->state_dir, dir_->path() + "/region-b");
  EXPECT_EQ(b->peers, std::vector<std::string>{"127.0.0.11"});
  EXPECT_EQ(b->pool_size, 8);
  EXPECT_EQ(b->local_workers, 1);
  EXPECT_EQ(b->log_level, "info");
  ASSERT_TRUE(b->dr.has_value());
  EXPECT_EQ(b->dr->initial_role, "standby");
  EXPECT_EQ(
      b->dr->peer,
      (DrPeer{.name = "region-a", .address = "127.0.0.11", .http_port = 8080, .pg_port = 15432}));
  EXPECT_EQ(b->dr->control_url, a->dr->control_url);

  // Apart from `dr`, what it builds is a valid region file's configuration.
  for (RegionConfig c : {*a, *b}) {
    c.dr.reset();
    auto back = ParseRegionConfig(RenderRegionConfig(c), c.path);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, c);
  }

  auto absent = RegionConfigFor(*p, "region-c");
  ASSERT_FALSE(absent.ok());
  EXPECT_EQ(absent.status().code(), Code::kNotFound);
  EXPECT_EQ(absent.status().message(),
            path_ +
                ": the pair local has no region named \"region-c\"; its regions are "
                "region-a and region-b");
}

TEST_F(PairConfigTest, PairSettingsReachBothRegions) {
  auto p = Load(InsertAfter(2,
                            "  mode: synchronous\n  synchronous_degrade_after_ms: 800\n"
                            "  lease_ms: 6000\n  lease_renew_ms: 1000\n  lease_margin_ms: 250\n"
                            "  image_replication_timeout_seconds: 1"));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  for (const char* name : {"region-a", "region-b"}) {
    auto c = RegionConfigFor(*p, name);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    ASSERT_TRUE(c->dr.has_value());
    EXPECT_EQ(c->dr->mode, "synchronous");
    EXPECT_EQ(c->dr->synchronous_degrade_after_ms, 800);
    EXPECT_EQ(c->dr->lease_ms, 6000);
    EXPECT_EQ(c->dr->lease_renew_ms, 1000);
    EXPECT_EQ(c->dr->lease_margin_ms, 250);
    EXPECT_EQ(c->dr->image_replication_timeout_seconds, 1);
  }
}

TEST_F(PairConfigTest, RenderParsesBackToTheSamePair) {
  auto minimal = Load(kMinimal);
  ASSERT_TRUE(minimal.ok()) << minimal.status().ToString();
  std::string text = RenderPairConfig(*minimal);
  auto back = ParsePairConfig(text, minimal->path);
  ASSERT_TRUE(back.ok()) << back.status().ToString() << "\n" << text;
  EXPECT_EQ(*back, *minimal) << text;

  // Every key away from its default, an inline key, strings YAML would read as something else.
  PairConfig p = *minimal;
  p.name = "null";
  p.mode = "synchronous";
  p.synchronous_degrade_after_ms = 100;
  p.automatic_failover = true;
  p.health_interval_ms = 60000;
  p.detection_misses = 1000;
  p.lease_ms = 600000;
  p.lease_renew_ms = 50;
  p.lease_margin_ms = 0;
  p.drain_timeout_seconds = 0;
  p.planned_timeout_seconds = 86400;
  p.image_replication_timeout_seconds = 3600;
  p.control.state_dir = "/srv/true";
  p.secret_key_file.clear();
  p.secret_key = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0wMTIzNDU2Nzg5YWI=";
  p.zone = "dr.example.org";
  p.regions[0].role = "standby";
  p.regions[1].role = "primary";
  p.regions[1].postgres.run_as = "";
  p.regions[1].postgres.shared_buffers = "1024";
  p.regions[1].postgres.bin_dir = "/opt/pg: #1";
  p.regions[1].postgres.max_connections = 262143;
  p.regions[1].connect_timeout_seconds = 3600;
  p.regions[1].pool_size = 64;
  p.regions[1].max_value_bytes = 67108864;
  p.regions[1].max_body_bytes = 67108864;
  p.regions[1].log_level = "error";
  p.regions[1].http_threads = 1024;
  p.regions[1].local_workers = 0;
  p.regions[1].worker_slots = 5000;
  p.regions[1].heartbeat_ms = 100;
  p.regions[1].task_nice = 19;
  p.regions[0].registry = RegistrySettings{.port = 5000};
  p.regions[1].registry = RegistrySettings{.port = 65535, .binary = "/opt/registry: #1"};
  p.regions[0].task_logs.spool_bound_bytes = 1048576;
  p.regions[0].task_logs.chunk_bytes = 1024;
  p.regions[1].task_logs = TaskLogSettings{
      .backend = "s3",
      .s3 = S3Settings{.endpoint = "http://127.0.0.1:9000",
                       .bucket = "null",
                       .region = "true",
                       .prefix = "region-b: #1/",
                       .access_key_id = "~",
                       .secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
      .spool_bound_bytes = 1099511627776,
      .chunk_bytes = 16777216};
  text = RenderPairConfig(p);
  back = ParsePairConfig(text, p.path);
  ASSERT_TRUE(back.ok()) << back.status().ToString() << "\n" << text;
  EXPECT_EQ(*back, p) << text;

  // Writing the rendered text to a file and loading it gives the same answer.
  ASSERT_TRUE(WriteFileAtomic(path_, text).ok());
  auto loaded = LoadPairConfig(path_);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(*loaded, p);
}

TEST_F(PairConfigTest, UnknownAndDuplicateKeys) {
  EXPECT_EQ(ErrorOf(InsertAfter(23, "regoins: []")), At(24, "unknown key regoins"));
  EXPECT_EQ(ErrorOf(InsertAfter(2, "  lease: 3000")), At(3, "unknown key pair.lease"));
  EXPECT_EQ(ErrorOf(InsertAfter(5, "  port: 8070")), At(6, "unknown key control.port"));
  EXPECT_EQ(ErrorOf(Replace(21, "    rol: standby")), At(21, "unknown key regions[1].rol"));
  // A pair's regions manage their PostgreSQL: the region file's managed/external level is gone.
  EXPECT_EQ(ErrorOf(Replace(16, "      managed: {port: 15432}")),
            At(16, "unknown key regions[0].postgres.managed"));
  EXPECT_EQ(ErrorOf(InsertAfter(23, "    workers: {lcoal: 2}")),
            At(24, "unknown key regions[1].workers.lcoal"));
  EXPECT_EQ(ErrorOf(InsertAfter(12, "    http_port: 8081")),
            At(13, "duplicate key regions[0].http_port"));
  EXPECT_EQ(ErrorOf(InsertAfter(2, "  name: other")), At(3, "duplicate key pair.name"));
}

TEST_F(PairConfigTest, TypesAndRanges) {
  EXPECT_EQ(ErrorOf(Replace(2, "  name: Local")),
            At(2,
               "pair.name: expected a name of 1 to 31 characters: a lowercase letter, then "
               "lowercase letters, digits or '-', got \"Local\""));
  EXPECT_EQ(ErrorOf(InsertAfter(2, "  mode: sync")),
            At(3, "pair.mode: expected asynchronous or synchronous, got \"sync\""));
  EXPECT_EQ(ErrorOf(InsertAfter(2, "  automatic_failover: yes")),
            At(3, "pair.automatic_failover: expected true or false, got \"yes\""));
  EXPECT_EQ(ErrorOf(InsertAfter(2, "  health_interval_ms: 10")),
            At(3, "pair.health_interval_ms: expected an integer from 50 to 60000, got \"10\""));
  EXPECT_EQ(ErrorOf(InsertAfter(2, "  detection_misses: 0")),
            At(3, "pair.detection_misses: expected an integer from 1 to 1000, got \"0\""));
  EXPECT_EQ(ErrorOf(InsertAfter(2, "  lease_ms: 499")),
            At(3, "pair.lease_ms: expected an integer from 500 to 600000, got \"499\""));
  EXPECT_EQ(ErrorOf(InsertAfter(2, "  synchronous_degrade_after_ms: [1]")),
            At(3,
               "pair.synchronous_degrade_after_ms: expected an integer from 100 to 600000, got "
               "a list"));
  EXPECT_EQ(ErrorOf(InsertAfter(2, "  image_replication_timeout_seconds: 0")),
            At(3,
               "pair.image_replication_timeout_seconds: expected an integer from 1 to 3600, got "
               "\"0\""));
  EXPECT_EQ(ErrorOf(InsertAfter(2, "  image_replication_timeout_seconds: 3601")),
            At(3,
               "pair.image_replication_timeout_seconds: expected an integer from 1 to 3600, got "
               "\"3601\""));
  EXPECT_EQ(ErrorOf(InsertAfter(2, "  drain_timeout_seconds: 86401")),
            At(3,
               "pair.drain_timeout_seconds: expected an integer from 0 to 86400, got "
               "\"86401\""));
  EXPECT_EQ(ErrorOf(Replace(4, "  address: localhost")),
            At(4, "control.address: expected a dotted IPv4 address, got \"localhost\""));
  EXPECT_EQ(ErrorOf(Replace(5, "  http_port: 0")),
            At(5, "control.http_port: expected an integer from 1 to 65535, got \"0\""));
  EXPECT_EQ(ErrorOf(Replace(14, "    role: leader")),
            At(14, "regions[0].role: expected primary or standby, got \"leader\""));
  EXPECT_EQ(ErrorOf(Replace(23, "      port: 70000")),
            At(23, "regions[1].postgres.port: expected an integer from 1 to 65535, got \"70000\""));
  EXPECT_EQ(ErrorOf(Replace(18, "    address: 127.0.0.x")),
            At(18, "regions[1].address: expected a dotted IPv4 address, got \"127.0.0.x\""));
  EXPECT_EQ(ErrorOf(InsertAfter(16, "      pool_size: 65")),
            At(17, "regions[0].postgres.pool_size: expected an integer from 1 to 64, got \"65\""));
  EXPECT_EQ(ErrorOf(InsertAfter(23, "    workers: {local: 65}")),
            At(24, "regions[1].workers.local: expected an integer from 0 to 64, got \"65\""));
  EXPECT_EQ(ErrorOf(InsertAfter(23, "    log: {level: verbose}")),
            At(24,
               "regions[1].log.level: expected one of trace, debug, info, warn, error, got "
               "\"verbose\""));
  EXPECT_EQ(ErrorOf(InsertAfter(16, "    limits:\n      max_body_bytes: 2048")),
            At(18,
               "regions[0].limits.max_body_bytes (2048) must be at least "
               "regions[0].limits.max_value_bytes (1048576)"));
  EXPECT_EQ(ErrorOf(InsertAfter(23, "platform: {zone: Tandem.test}")),
            At(24,
               "platform.zone: expected a DNS name of lowercase labels (letters, digits, '-') "
               "separated by dots, got \"Tandem.test\""));
  EXPECT_EQ(ErrorOf("- pair\n- regions\n"),
            At(1, "expected a map of sections (pair, control, regions, ...), got a list"));
  EXPECT_EQ(ErrorOf(kMinimal + std::string("---\npair: {}\n")),
            At(25, "expected one YAML document, found 2"));
  std::string e = ErrorOf(Replace(11, "    address: 127.0.0.11: x"));
  EXPECT_EQ(e.find(At(11, "YAML syntax error: ")), 0u) << e;
}

TEST_F(PairConfigTest, EachRegionIsAMap) {
  std::vector<std::string> lines = Lines(kMinimal);
  lines.erase(lines.begin() + 10, lines.begin() + 16);
  lines[9] = "  - region-a";
  EXPECT_EQ(ErrorOf(Join(lines)), At(10, "regions[0]: expected a map, got \"region-a\""));
}

TEST_F(PairConfigTest, RequiredKeys) {
  EXPECT_EQ(ErrorOf(Replace(2, "  mode: synchronous")), path_ + ": pair.name is required");
  EXPECT_EQ(ErrorOf(Replace(6, "")), path_ + ": control.state_dir is required");
  EXPECT_EQ(ErrorOf(Replace(14, "")), path_ + ": regions[0].role is required");
  EXPECT_EQ(ErrorOf(Replace(23, "      pool_size: 4")),
            path_ + ": regions[1].postgres.port is required");
  std::vector<std::string> lines = Lines(kMinimal);
  lines.resize(21);  // region-b without postgres
  EXPECT_EQ(ErrorOf(Join(lines)), path_ + ": regions[1].postgres is required");
  lines = Lines(kMinimal);
  lines.erase(lines.begin() + 2, lines.begin() + 6);  // no control section
  EXPECT_EQ(ErrorOf(Join(lines)), path_ + ": control is required");
  EXPECT_EQ(ErrorOf(""), path_ + ": pair is required");
  EXPECT_EQ(ErrorOf(InsertAfter(8, "  key: c2VjcmV0")),
            At(7, "secrets: exactly one of key_file or key is required"));
}

TEST_F(PairConfigTest, ExactlyTwoRegions) {
  std::vector<std::string> lines = Lines(kMinimal);
  lines.resize(16);
  EXPECT_EQ(ErrorOf(Join(lines)), At(9, "regions: expected exactly two regions, got 1"));
  EXPECT_EQ(ErrorOf(InsertAfter(23,
                                "  - {name: region-c, address: 127.0.0.13, http_port: 8080, "
                                "state_dir: c, role: standby, postgres: {port: 15432}}")),
            At(9, "regions: expected exactly two regions, got 3"));
  lines.resize(8);
  lines.push_back("regions: {region-a: {}}");
  EXPECT_EQ(ErrorOf(Join(lines)), At(9, "regions: expected a list of two regions, got a map"));
}

TEST_F(PairConfigTest, RegionNamesDiffer) {
  EXPECT_EQ(ErrorOf(Replace(17, "  - name: region-a")),
            At(17, "regions[1].name: expected a name other than regions[0]'s, got \"region-a\""));
}

TEST_F(PairConfigTest, ExactlyOnePrimary) {
  EXPECT_EQ(ErrorOf(Replace(21, "    role: primary")),
            At(21, "regions[1].role: exactly one region must be the primary, and regions[0] is"));
  EXPECT_EQ(ErrorOf(Replace(14, "    role: standby")),
            At(9, "regions: exactly one region must be the primary, got none"));
  // Either region may be the primary.
  std::vector<std::string> lines = Lines(kMinimal);
  lines[13] = "    role: standby";
  lines[20] = "    role: primary";
  EXPECT_TRUE(Load(Join(lines)).ok());
}

TEST_F(PairConfigTest, NoTwoListenersShareAnAddressAndPort) {
  // The second region on the first one's address: its HTTP port is taken first.
  EXPECT_EQ(ErrorOf(Replace(18, "    address: 127.0.0.11")),
            At(19,
               "regions[1].http_port: 127.0.0.11:8080 is already taken by regions[0].http_port "
               "(127.0.0.11:8080)"));
  // A region's HTTP API and PostgreSQL on one port.
  EXPECT_EQ(ErrorOf(Replace(16, "      port: 8080")),
            At(16,
               "regions[0].postgres.port: 127.0.0.11:8080 is already taken by "
               "regions[0].http_port (127.0.0.11:8080)"));
  // The control plane on a region's address and port.
  std::vector<std::string> lines = Lines(kMinimal);
  lines[3] = "  address: 127.0.0.12";
  lines[4] = "  http_port: 15432";
  EXPECT_EQ(ErrorOf(Join(lines)),
            At(23,
               "regions[1].postgres.port: 127.0.0.12:15432 is already taken by control.http_port "
               "(127.0.0.12:15432)"));
  // The wildcard address takes the port on every address.
  lines = Lines(kMinimal);
  lines[3] = "  address: 0.0.0.0";
  lines[4] = "  http_port: 8080";
  EXPECT_EQ(ErrorOf(Join(lines)),
            At(12,
               "regions[0].http_port: 127.0.0.11:8080 is already taken by control.http_port "
               "(0.0.0.0:8080)"));
  // The same port on different addresses is fine (the embedded default does just that).
  EXPECT_TRUE(Load(Replace(5, "  http_port: 8080")).ok());

  // A region's registry is one of its listeners.
  EXPECT_EQ(ErrorOf(InsertAfter(16, "    registry: {port: 8080}")),
            At(17,
               "regions[0].registry.port: 127.0.0.11:8080 is already taken by "
               "regions[0].http_port (127.0.0.11:8080)"));
  EXPECT_EQ(ErrorOf(InsertAfter(23, "    registry: {port: 15432}")),
            At(24,
               "regions[1].registry.port: 127.0.0.12:15432 is already taken by "
               "regions[1].postgres.port (127.0.0.12:15432)"));
  lines = Lines(InsertAfter(23, "    registry: {port: 5000}"));
  lines[3] = "  address: 0.0.0.0";
  lines[4] = "  http_port: 5000";
  EXPECT_EQ(ErrorOf(Join(lines)),
            At(24,
               "regions[1].registry.port: 127.0.0.12:5000 is already taken by control.http_port "
               "(0.0.0.0:5000)"));
  // Written before the region's other ports, it is the earlier key of the two.
  EXPECT_EQ(ErrorOf(InsertAfter(10, "    registry: {port: 8080}")),
            At(13,
               "regions[0].http_port: 127.0.0.11:8080 is already taken by "
               "regions[0].registry.port (127.0.0.11:8080)"));
  // Both regions' registries on one port of their own addresses.
  lines = Lines(kMinimal);
  lines.insert(lines.begin() + 23, "    registry: {port: 5000}");
  lines.insert(lines.begin() + 16, "    registry: {port: 5000}");
  EXPECT_TRUE(Load(Join(lines)).ok());
  EXPECT_EQ(ErrorOf(InsertAfter(16, "    registry: {port: 5000}\n    registry: {port: 5001}")),
            At(18, "duplicate key regions[0].registry"));
}

TEST_F(PairConfigTest, RegistryAndTaskLogsOfEachRegion) {
  std::vector<std::string> lines = Lines(kMinimal);
  lines.insert(lines.begin() + 23,
               "    registry: {port: 5000, binary: bin/docker-registry}\n"
               "    task_logs:\n"
               "      backend: s3\n"
               "      s3:\n"
               "        endpoint: http://127.0.0.12:9000\n"
               "        bucket: tandem-logs\n"
               "        prefix: region-b/\n"
               "        access_key_id: AKIAIOSFODNN7EXAMPLE\n"
               "        secret_access_key_file: s3.secret\n"
               "      chunk_bytes: 4096");
  lines.insert(lines.begin() + 16,
               "    registry:\n      port: 5000\n    task_logs: {spool_bound_bytes: 1048576}");
  auto p = Load(Join(lines));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->regions[0].registry, RegistrySettings{.port = 5000});
  EXPECT_EQ(p->regions[0].task_logs,
            (TaskLogSettings{.backend = "directory", .spool_bound_bytes = 1048576}));
  const RegistrySettings b_registry{.port = 5000, .binary = dir_->path() + "/bin/docker-registry"};
  const TaskLogSettings b_logs{
      .backend = "s3",
      .s3 = S3Settings{.endpoint = "http://127.0.0.12:9000",
                       .bucket = "tandem-logs",
                       .prefix = "region-b/",
                       .access_key_id = "AKIAIOSFODNN7EXAMPLE",
                       .secret_access_key_file = dir_->path() + "/s3.secret"},
      .chunk_bytes = 4096};
  EXPECT_EQ(p->regions[1].registry, b_registry);
  EXPECT_EQ(p->regions[1].task_logs, b_logs);
  EXPECT_EQ(p->regions[1].task_logs.s3->region, "us-east-1");

  // Each region's configuration carries its own, and knows its peer's registry.
  auto a = RegionConfigFor(*p, "region-a");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->registry, p->regions[0].registry);
  EXPECT_EQ(a->task_logs, p->regions[0].task_logs);
  EXPECT_EQ(a->dr->peer.registry_port, 5000);
  auto b = RegionConfigFor(*p, "region-b");
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->registry, b_registry);
  EXPECT_EQ(b->task_logs, b_logs);
  EXPECT_EQ(b->dr->peer.registry_port, 5000);
  for (RegionConfig c : {*a, *b}) {
    c.dr.reset();
    auto back = ParseRegionConfig(RenderRegionConfig(c), c.path);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, c);
  }

  // A region without a registry: its peer sees port 0.
  p = Load(InsertAfter(16, "    registry: {port: 5000}"));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  b = RegionConfigFor(*p, "region-b");
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_FALSE(b->registry.has_value());
  EXPECT_EQ(b->dr->peer.registry_port, 5000);
  a = RegionConfigFor(*p, "region-a");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->dr->peer.registry_port, 0);
}

TEST_F(PairConfigTest, RegistryAndTaskLogsKeysAreChecked) {
  EXPECT_EQ(ErrorOf(InsertAfter(16, "    registry: {binary: /usr/bin/docker-registry}")),
            path_ + ": regions[0].registry.port is required");
  EXPECT_EQ(ErrorOf(InsertAfter(23, "    registry: {port: 0}")),
            At(24, "regions[1].registry.port: expected an integer from 1 to 65535, got \"0\""));
  EXPECT_EQ(ErrorOf(InsertAfter(23, "    registry: {port: 5000, bin: x}")),
            At(24, "unknown key regions[1].registry.bin"));
  EXPECT_EQ(ErrorOf(InsertAfter(23, "    task_logs: {backend: s3}")),
            At(24, "regions[1].task_logs.s3 is required when regions[1].task_logs.backend is s3"));
  EXPECT_EQ(ErrorOf(InsertAfter(16, "    task_logs:\n      s3: {bucket: logs}")),
            At(18,
               "regions[0].task_logs.s3: given, but regions[0].task_logs.backend is directory, "
               "not s3"));
  EXPECT_EQ(ErrorOf(InsertAfter(23,
                                "    task_logs:\n      backend: s3\n      s3:\n"
                                "        endpoint: http://h:9000/\n")),
            At(27,
               "regions[1].task_logs.s3.endpoint: expected an http:// or https:// URL of a host "
               "and an optional port, with no path, query or user (such as "
               "http://127.0.0.1:9000), got \"http://h:9000/\""));
  EXPECT_EQ(ErrorOf(InsertAfter(23,
                                "    task_logs:\n      backend: s3\n      s3:\n"
                                "        endpoint: http://h:9000\n        bucket: logs\n"
                                "        access_key_id: k\n")),
            At(26,
               "regions[1].task_logs.s3: exactly one of secret_access_key_file or "
               "secret_access_key is required"));
  EXPECT_EQ(ErrorOf(InsertAfter(23, "    task_logs: {chunk_bytes: 512}")),
            At(24,
               "regions[1].task_logs.chunk_bytes: expected an integer from 1024 to 16777216, got "
               "\"512\""));
  EXPECT_EQ(ErrorOf(InsertAfter(23, "    task_logs: {spool_bound_bytes: 1024}")),
            At(24,
               "regions[1].task_logs.spool_bound_bytes: expected an integer from 1048576 to "
               "1099511627776, got \"1024\""));
  EXPECT_EQ(ErrorOf(InsertAfter(
                23, "    task_logs: {chunk_bytes: 16777216, spool_bound_bytes: 1048576}")),
            At(24,
               "regions[1].task_logs.spool_bound_bytes (1048576) must be at least "
               "regions[1].task_logs.chunk_bytes (16777216)"));
}

TEST_F(PairConfigTest, LeaseTimings) {
  // Each relation holds between written and default values alike, and its error points at the
  // key that depends on the others when it is written.
  EXPECT_EQ(ErrorOf(InsertAfter(2, "  lease_renew_ms: 1500")),
            At(3, "pair.lease_renew_ms (1500) must be less than half of pair.lease_ms (3000)"));
  EXPECT_EQ(ErrorOf(InsertAfter(2, "  lease_ms: 1000")),
            At(3, "pair.lease_renew_ms (500) must be less than half of pair.lease_ms (1000)"));
  EXPECT_EQ(ErrorOf(InsertAfter(2, "  lease_renew_ms: 600\n  lease_ms: 1200")),
            At(3, "pair.lease_renew_ms (600) must be less than half of pair.lease_ms (1200)"));
  EXPECT_EQ(ErrorOf(InsertAfter(2, "  lease_margin_ms: 2500")),
            At(3,
               "pair.lease_margin_ms (2500) must be less than pair.lease_ms - "
               "pair.lease_renew_ms (2500)"));
  EXPECT_EQ(
      ErrorOf(InsertAfter(2, "  lease_margin_ms: 700\n  lease_ms: 1200\n  lease_renew_ms: 500")),
      At(3,
         "pair.lease_margin_ms (700) must be less than pair.lease_ms - "
         "pair.lease_renew_ms (700)"));
  EXPECT_EQ(ErrorOf(InsertAfter(2, "  lease_ms: 900\n  lease_renew_ms: 400")),
            At(4,
               "pair.lease_margin_ms (500) must be less than pair.lease_ms - "
               "pair.lease_renew_ms (500)"));
  EXPECT_TRUE(
      Load(InsertAfter(2, "  lease_ms: 1500\n  lease_renew_ms: 700\n  lease_margin_ms: 799")).ok());
  EXPECT_TRUE(
      Load(InsertAfter(2, "  lease_ms: 500\n  lease_renew_ms: 50\n  lease_margin_ms: 0")).ok());
}

TEST_F(PairConfigTest, PlannedTimeoutOutlastsTheDrain) {
  EXPECT_EQ(ErrorOf(InsertAfter(2, "  planned_timeout_seconds: 60")),
            At(3,
               "pair.planned_timeout_seconds (60) must be more than pair.drain_timeout_seconds "
               "(60)"));
  EXPECT_EQ(ErrorOf(InsertAfter(2, "  drain_timeout_seconds: 300")),
            At(3,
               "pair.planned_timeout_seconds (120) must be more than pair.drain_timeout_seconds "
               "(300)"));
  EXPECT_TRUE(
      Load(InsertAfter(2, "  drain_timeout_seconds: 300\n  planned_timeout_seconds: 301")).ok());
}

TEST_F(PairConfigTest, DnsSection) {
  auto none = Load(kMinimal);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->dns.has_value());

  auto managed = Load(InsertAfter(23, "dns: {address: 127.0.0.10, port: 5353}"));
  ASSERT_TRUE(managed.ok()) << managed.status().ToString();
  ASSERT_TRUE(managed->dns.has_value());
  EXPECT_EQ(managed->dns->address, "127.0.0.10");
  EXPECT_EQ(managed->dns->port, 5353);
  EXPECT_TRUE(managed->dns->managed);
  EXPECT_EQ(managed->dns->ttl_seconds, 5);
  EXPECT_EQ(managed->dns->tsig_name, "tandem-update");
  EXPECT_EQ(managed->dns->tsig_algorithm, "hmac-sha256");
  EXPECT_EQ(managed->dns->tsig_secret_file, "");

  auto external = Load(
      InsertAfter(23,
                  "dns:\n  address: 10.0.0.53\n  port: 53\n  managed: false\n  ttl_seconds: 30\n"
                  "  tsig: {name: ops-key, algorithm: hmac-sha512, secret_file: dns.key}"));
  ASSERT_TRUE(external.ok()) << external.status().ToString();
  EXPECT_FALSE(external->dns->managed);
  EXPECT_EQ(external->dns->ttl_seconds, 30);
  EXPECT_EQ(external->dns->tsig_name, "ops-key");
  EXPECT_EQ(external->dns->tsig_algorithm, "hmac-sha512");
  EXPECT_EQ(external->dns->tsig_secret_file, dir_->path() + "/dns.key");

  PairConfig p = *external;
  std::string text = RenderPairConfig(p);
  auto back = ParsePairConfig(text, p.path);
  ASSERT_TRUE(back.ok()) << back.status().ToString() << "\n" << text;
  EXPECT_EQ(*back, p) << text;
  p = *managed;
  p.dns->run_as = "tandem";
  text = RenderPairConfig(p);
  back = ParsePairConfig(text, p.path);
  ASSERT_TRUE(back.ok()) << back.status().ToString() << "\n" << text;
  EXPECT_EQ(*back, p) << text;
}

TEST_F(PairConfigTest, DnsSectionMistakes) {
  EXPECT_EQ(ErrorOf(InsertAfter(23, "dns: {port: 5353}")), path_ + ": dns.address is required");
  EXPECT_EQ(ErrorOf(InsertAfter(23, "dns: {address: 127.0.0.10, port: 0}")),
            At(24, "dns.port: expected an integer from 1 to 65535, got \"0\""));
  EXPECT_EQ(ErrorOf(InsertAfter(23, "dns: {address: 127.0.0.10, port: 53, managed: false}")),
            At(24, "dns.tsig: required when dns.managed is false"));
  EXPECT_NE(ErrorOf(InsertAfter(23,
                                "dns: {address: 127.0.0.10, port: 53, tsig: {name: Bad_Key, "
                                "secret_file: k}}"))
                .find("dns.tsig.name: expected a DNS name"),
            std::string::npos);
  EXPECT_NE(ErrorOf(InsertAfter(23,
                                "dns: {address: 127.0.0.10, port: 53, tsig: {algorithm: "
                                "hmac-md5, secret_file: k}}"))
                .find("dns.tsig.algorithm"),
            std::string::npos);
  EXPECT_EQ(ErrorOf(InsertAfter(23, "dns: {address: 127.0.0.10, port: 53, tsig: {name: k}}")),
            path_ + ": dns.tsig.secret_file is required");
  // Names carry no port: both regions must serve HTTP on one.
  EXPECT_EQ(
      ErrorOf(Replace(19, "    http_port: 8081") + "dns: {address: 127.0.0.10, port: 5353}\n"),
      At(24,
         "dns: the regions serve HTTP on different ports (8080, 8081); host names "
         "carry no port, so both must listen on the same one"));
  // A managed server's port is a listener like the others.
  EXPECT_NE(ErrorOf(InsertAfter(23, "dns: {address: 127.0.0.10, port: 8070}"))
                .find("already taken by control.http_port"),
            std::string::npos);
}

TEST_F(PairConfigTest, MissingFileIsNotFound) {
  auto p = LoadPairConfig(dir_->path() + "/absent.yaml");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::kNotFound);
  EXPECT_NE(p.status().message().find(dir_->path() + "/absent.yaml"), std::string::npos);
}

// The sample shipped in examples/ is what newcomers copy: it must stay valid.
TEST(PairConfigExampleTest, ShippedExampleParses) {
  const std::string path = std::string(TANDEM_SOURCE_DIR) + "/examples/pair.yaml";
  auto p = LoadPairConfig(path);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->name, "local");
  EXPECT_EQ(p->control.address, "127.0.0.10");
  EXPECT_EQ(p->control.http_port, 8070);
  EXPECT_EQ(p->regions[0].name, "region-a");
  EXPECT_EQ(p->regions[0].address, "127.0.0.11");
  EXPECT_EQ(p->regions[0].role, "primary");
  EXPECT_EQ(p->regions[1].name, "region-b");
  EXPECT_EQ(p->regions[1].address, "127.0.0.12");
  EXPECT_EQ(p->regions[1].role, "standby");
  // Both regions take every key the same way, whichever YAML style the example uses.
  PairRegion b = p->regions[1];
  b.name = p->regions[0].name;
  b.address = p->regions[0].address;
  b.state_dir = p->regions[0].state_dir;
  b.role = p->regions[0].role;
  EXPECT_EQ(b, p->regions[0]);
  ASSERT_TRUE(p->regions[0].registry.has_value());
  EXPECT_EQ(p->regions[0].registry->port, 5000);
  EXPECT_EQ(p->regions[0].task_logs.backend, "directory");

  auto back = ParsePairConfig(RenderPairConfig(*p), path);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, *p);
}

// tls: every part has its files exactly when the pair has the section; they reach the regions'
// configs with the pair's CA, the URLs turn https, and the file renders back the same.
TEST_F(PairConfigTest, TlsOnEveryPartOrOnNone) {
  const std::string files = "    tls: {cert_file: a.crt, key_file: a.key}";
  std::string text = InsertAfter(23, "    tls: {cert_file: b.crt, key_file: b.key}");
  text = test_util::InsertAfterLine(text, 16, files);
  text = test_util::InsertAfterLine(text, 6, "  tls: {cert_file: c.crt, key_file: c.key}");
  text += "tls:\n  ca_file: ca.crt\n";
  auto p = Load(text);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_TRUE(p->tls_ca_file.has_value());
  EXPECT_EQ(*p->tls_ca_file, AbsolutePath(dir_->path()) + "/ca.crt");
  ASSERT_TRUE(p->control.tls.has_value());
  EXPECT_EQ(p->control.tls->cert_file, AbsolutePath(dir_->path()) + "/c.crt");
  auto a = RegionConfigFor(*p, "region-a");
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(a->tls.has_value());
  EXPECT_EQ(a->tls->key_file, AbsolutePath(dir_->path()) + "/a.key");
  EXPECT_EQ(a->tls->ca_file, AbsolutePath(dir_->path()) + "/ca.crt");
  EXPECT_EQ(a->dr->control_url, "https://127.0.0.10:8070");
  EXPECT_EQ(a->dr->peer.url(), "https://127.0.0.12:8080");
  EXPECT_EQ(a->url(), "https://127.0.0.11:8080");
  auto back = ParsePairConfig(RenderPairConfig(*p), p->path);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, *p);

  // Without the section: plain URLs, and a part's files are an error.
  auto plain = Load(kMinimal);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(RegionConfigFor(*plain, "region-a")->dr->control_url, "http://127.0.0.10:8070");
  EXPECT_NE(ErrorOf(InsertAfter(16, files))
                .find("regions[0].tls: given, but the pair has no tls "
                      "section"),
            std::string::npos)
      << ErrorOf(InsertAfter(16, files));
  // With the section, a part without files.
  EXPECT_NE(ErrorOf(kMinimal + std::string("tls: {}\n")).find("control.tls is required"),
            std::string::npos)
      << ErrorOf(kMinimal + std::string("tls: {}\n"));
  EXPECT_NE(ErrorOf(InsertAfter(16, "    tls: {cert_file: a.crt}")).find("tls.key_file"),
            std::string::npos)
      << ErrorOf(InsertAfter(16, "    tls: {cert_file: a.crt}"));
}

}  // namespace
}  // namespace tandem::region
