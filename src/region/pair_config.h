// A pair's configuration: the one YAML file that declares the control plane and both regions.
//
// The control plane (`tandem control --pair FILE`) reads all of it; a region agent
// (`tandem region --pair FILE --name NAME`) reads it and takes its own part through
// RegionConfigFor, which gives the same RegionConfig a region file would, plus the pair's
// settings in `RegionConfig::dr`. Both sides thus read one file and cannot disagree about
// addresses, ports, the lease or the replication mode.
//
// The rules are those of the region file (config.h): LoadPairConfig/ParsePairConfig validate
// every key (unknown and duplicate keys refused, types and ranges checked, relative paths
// resolved against the file's directory) and report the first problem as an InvalidArgument
// naming file, line and dotted key; RenderPairConfig writes text that parses back to the same
// value. Parsing is pure: nothing named in the file is touched. The reference for users is the
// section "The pair config" of docs/configuration.md; examples/pair.yaml shows every key.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "base/status.h"
#include "region/config.h"

namespace tandem::region {

// control: where the control plane listens and keeps its state.
struct PairControl {
  std::string address;    // control.address, required; dotted IPv4
  int http_port = 0;      // control.http_port, required, 1..65535: the DR API and console
  std::string state_dir;  // control.state_dir, required; made absolute like every path
  // control.tls.{cert_file, key_file}: required when the pair has a tls section, refused
  // otherwise. ca_file stays empty (the pair's tls.ca_file is the one).
  std::optional<TlsSettings> tls;

  bool operator==(const PairControl&) const = default;
};

// One item of regions: a region's own settings. Keys, ranges and defaults are those of the
// region file's keys of the same names (docs/configuration.md; pair_config_test checks the
// defaults stay equal), except where said.
struct PairRegion {
  std::string name;       // regions[i].name, required, ^[a-z][a-z0-9-]{0,30}$; the two differ
  std::string address;    // regions[i].address, required; dotted IPv4
  int http_port = 0;      // regions[i].http_port, required, 1..65535
  std::string state_dir;  // regions[i].state_dir, required; made absolute
  // regions[i].role, required: "primary" or "standby", exactly one primary. The role at the very
  // first start, and the region a failback returns to.
  std::string role;
  // regions[i].postgres.{port (required), bin_dir, run_as, shared_buffers, max_connections}: the
  // managed PostgreSQL server it runs on its own address (a pair's regions always manage theirs).
  ManagedPostgres postgres;
  int connect_timeout_seconds = 60;    // regions[i].postgres.connect_timeout_seconds, 1..3600
  int pool_size = 8;                   // regions[i].postgres.pool_size, 1..64
  int64_t max_value_bytes = 1048576;   // regions[i].limits.max_value_bytes, 1024..67108864
  int64_t max_body_bytes = 4194304;    // regions[i].limits.max_body_bytes, >= max_value_bytes
  std::string log_level = "info";      // regions[i].log.level: trace, debug, info, warn, error
  int http_threads = 512;              // regions[i].http.threads, 1..1024
  int local_workers = 1;               // regions[i].workers.local, 0..64
  int worker_slots = 32;               // regions[i].workers.slots, 1..5000
  int heartbeat_ms = 1000;             // regions[i].workers.heartbeat_ms, 100..60000
  int task_nice = 10;                  // regions[i].workers.task_nice, 0..19
  int task_token_ttl_seconds = 600;    // regions[i].workers.task_token_ttl_seconds, 4..86400
  int64_t task_uid_base = 2100000000;  // regions[i].workers.task_uid_base
  // regions[i].registry.{port (required), binary}, optional: its OCI registry, on its address.
  std::optional<RegistrySettings> registry;
  // regions[i].task_logs.{backend, s3.*, spool_bound_bytes, chunk_bytes}, optional.
  TaskLogSettings task_logs;
  // regions[i].tls.{cert_file, key_file}: as control.tls. The registry serves the same pair.
  std::optional<TlsSettings> tls;

  bool operator==(const PairRegion&) const = default;
};

// dns: the platform zone's DNS server, whose records the control plane keeps pointing at the
// active region (optional: without it, clients address the regions directly).
struct PairDns {
  std::string address;  // dns.address, required; dotted IPv4: where the server answers
  int port = 0;         // dns.port, required, 1..65535
  bool managed = true;  // dns.managed: the control plane runs Knot DNS there (else: updates it)
  int ttl_seconds = 5;  // dns.ttl_seconds, 1..86400: the records' TTL
  std::string run_as;   // dns.run_as: the user knotd runs as when the control plane is root
  // dns.tsig.{name, algorithm, secret_file}: the key updates are signed with. Optional when
  // managed (derived from the pair's secret key), required otherwise.
  std::string tsig_name = "tandem-update";
  std::string tsig_algorithm = "hmac-sha256";  // hmac-sha256, hmac-sha384 or hmac-sha512
  std::string tsig_secret_file;                // base64 secret; made absolute

  bool operator==(const PairDns&) const = default;
};

// Plain data, constant once parsed; safe to copy and to read from any thread.
struct PairConfig {
  std::string path;  // absolute path of the file it came from ("" when parsed from no file)

  // pair: the pair as a whole.
  std::string name;                   // pair.name, required, ^[a-z][a-z0-9-]{0,30}$
  std::string mode = "asynchronous";  // pair.mode: "asynchronous" or "synchronous"
  // pair.synchronous_degrade_after_ms, 100..600000: in synchronous mode, once the standby has
  // been gone this long the primary commits asynchronously (and says so) rather than stop writes.
  int synchronous_degrade_after_ms = 5000;
  // pair.automatic_failover, default false: the control plane fails over by itself when it and
  // the standby both lose the primary for the detection window.
  bool automatic_failover = false;
  int health_interval_ms = 250;  // pair.health_interval_ms, 50..60000: health check period
  // pair.detection_misses, 1..1000: missed checks in a row that count as "lost"; the detection
  // window is health_interval_ms x detection_misses.
  int detection_misses = 8;
  int lease_ms = 3000;       // pair.lease_ms, 500..600000: how long a granted lease lasts
  int lease_renew_ms = 500;  // pair.lease_renew_ms, 50..600000 and < lease_ms / 2
  // pair.lease_margin_ms, 0..600000 and < lease_ms - lease_renew_ms: the holder stops acting
  // this long before its lease ends by its own clock.
  int lease_margin_ms = 500;
  // pair.drain_timeout_seconds, 0..86400: a planned failover lets running tasks finish this long.
  int drain_timeout_seconds = 60;
  // pair.planned_timeout_seconds, 1..86400 and > drain_timeout_seconds: a planned failover that
  // has not finished by then rolls back (or, when asked, turns into a forced one).
  int planned_timeout_seconds = 120;
  // pair.image_replication_timeout_seconds, 1..3600: how long a deploy waits for the standby's
  // registry to hold its image before failing (unless the deploy allows an unreplicated image).
  int image_replication_timeout_seconds = 60;

  PairControl control;  // control, required

  std::string secret_key_file;   // secrets.key_file (made absolute); exactly one of the two is set
  std::string secret_key;        // secrets.key (inline base64 text)
  std::string owner_token_file;  // secrets.owner_token_file (made absolute), optional

  std::string zone = "tandem.test";  // platform.zone: deployments' hostnames end in it
  std::optional<PairDns> dns;        // dns, optional
  // tls, optional: every part serves HTTPS with its own tls files, and every client of the pair
  // trusts tls.ca_file ("" for the system's CAs; made absolute). Without it, plain HTTP.
  std::optional<std::string> tls_ca_file;

  // regions, required: exactly two, in file order.
  std::array<PairRegion, 2> regions;

  bool operator==(const PairConfig&) const = default;
};

// Reads and parses the file at `path`. NotFound or PermissionDenied when it cannot be read;
// otherwise as ParsePairConfig, with `path` named in messages.
Result<PairConfig> LoadPairConfig(const std::string& path);

// Parses and validates `yaml_text`. `path_for_messages` starts every error message and anchors
// the file: config.path is its absolute form, and relative paths in the text resolve against
// its directory (the current directory when it is empty).
//
// Errors are InvalidArgument, one per call (the first found), in the forms of
// ParseRegionConfig (keys dotted from the top, list items as "regions[1].postgres.port"), and:
//   "<file>:<line>: regions: expected exactly two regions, got <n>"
//   "<file>:<line>: regions[1].name: expected a name other than regions[0]'s, got \"<name>\""
//   "<file>:<line>: regions[1].role: exactly one region must be the primary, and regions[0] is"
//   "<file>:<line>: regions: exactly one region must be the primary, got none"
//   "<file>:<line>: <key>: <address>:<port> is already taken by <other key> (<address>:<port>)"
//   "<file>:<line>: pair.lease_renew_ms (<n>) must be less than half of pair.lease_ms (<m>)"
//   "<file>:<line>: pair.lease_margin_ms (<n>) must be less than pair.lease_ms -
//        pair.lease_renew_ms (<m>)"
//   "<file>:<line>: pair.planned_timeout_seconds (<n>) must be more than
//        pair.drain_timeout_seconds (<m>)"
//   "<file>:<line>: dns: the regions serve HTTP on different ports (<n>, <m>); host names carry
//        no port, so both must listen on the same one"
//   "<file>:<line>: dns.tsig: required when dns.managed is false"
//   "<file>: <part>.tls is required" (when the pair has a tls section)
//   "<file>:<line>: <part>.tls: given, but the pair has no tls section"
// Lines are 1-based and point at the key the error is about.
Result<PairConfig> ParsePairConfig(const std::string& yaml_text,
                                   const std::string& path_for_messages);

// Renders `p` as YAML with every key written out (defaults included), for `tandem up` to write
// the pair file. REQUIRES: `p` is valid (as ParsePairConfig would return it); then
// ParsePairConfig(RenderPairConfig(p), p.path) gives back `p`.
std::string RenderPairConfig(const PairConfig& p);

// The full configuration of region `region_name` of `p`: its own keys, a managed PostgreSQL on
// its address and port, its registry and task log settings, the other region's address as its
// only peer, the pair's secret key and zone, `path` = p.path, and `dr` filled from the pair
// (control URL, the other region as peer, its role as the initial role, lease, replication and
// image replication settings). NotFound, naming the pair's
// regions, when it has no region of that name. REQUIRES: `p` is valid.
Result<RegionConfig> RegionConfigFor(const PairConfig& p, const std::string& region_name);

}  // namespace tandem::region
