// A region's configuration: the YAML file a region agent starts from.
//
// This file owns the shape of that file and every rule about it: which keys exist, their types,
// ranges and defaults, and how relative paths resolve. LoadRegionConfig/ParseRegionConfig turn
// the text into a validated RegionConfig (or an InvalidArgument naming file, line and dotted key);
// RenderRegionConfig turns a RegionConfig back into text that parses to the same value. Parsing
// is pure: nothing named in the file (state directory, key file, PostgreSQL) is touched here.
// The reference for users is docs/configuration.md; examples/region.yaml shows every key.
//
// yaml-cpp stays inside this module's .cc files (the walk shared with the pair file is in
// yaml_util.h); none of its types or exceptions cross this interface.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "tls/certificates.h"

namespace tandem::region {

// postgres.managed: a PostgreSQL server the region agent runs itself (see pg::LocalServer).
struct ManagedPostgres {
  int port = 0;                                        // required, 1..65535
  std::string bin_dir = "/usr/lib/postgresql/15/bin";  // made absolute like state_dir
  std::string run_as;  // default: "tandem" when the process runs as root (geteuid()==0), else ""
  std::string shared_buffers = "32MB";  // digits with an optional unit: B, kB, MB, GB or TB
  int max_connections = 100;            // 1..262143

  bool operator==(const ManagedPostgres&) const = default;
};

// registry: the OCI registry (Debian's docker-registry) the region runs itself, on its own
// address, keeping its storage under <state_dir>/registry. Deploys push their images to it, and
// a pair's primary replicates them to the standby's.
struct RegistrySettings {
  int port = 0;                                     // registry.port, required, 1..65535
  std::string binary = "/usr/bin/docker-registry";  // registry.binary, made absolute

  bool operator==(const RegistrySettings&) const = default;
};

// task_logs.s3: an S3-compatible object store holding task logs (path-style addressing).
struct S3Settings {
  // task_logs.s3.endpoint, required: "http://" or "https://", a host (a DNS name, a dotted IPv4
  // address or a bracketed IPv6 address) and an optional port; no user, path, query or fragment.
  std::string endpoint;
  // task_logs.s3.bucket, required: 3 to 63 lowercase letters, digits, '.' or '-', starting and
  // ending with a letter or digit.
  std::string bucket;
  std::string region = "us-east-1";  // task_logs.s3.region: lowercase letters, digits and '-'
  // task_logs.s3.prefix: "" or a key prefix that does not start with '/' and ends with '/'.
  std::string prefix;
  std::string access_key_id;  // task_logs.s3.access_key_id, required, non-empty
  // Exactly one of the two is set: task_logs.s3.secret_access_key_file (made absolute) or
  // task_logs.s3.secret_access_key (inline; never echoed in messages).
  std::string secret_access_key_file;
  std::string secret_access_key;

  bool operator==(const S3Settings&) const = default;
};

// task_logs: where task logs are kept and how they wait while they cannot be replicated.
struct TaskLogSettings {
  // task_logs.backend: "directory" (files under <state_dir>/logs) or "s3".
  std::string backend = "directory";
  std::optional<S3Settings> s3;  // task_logs.s3: set exactly when backend is "s3"
  // task_logs.spool_bound_bytes, 1048576..1099511627776 and >= chunk_bytes: unreplicated log
  // bytes that may wait on local disk while the object store or the peer region is unreachable;
  // beyond it task log appends fail.
  int64_t spool_bound_bytes = 1073741824;
  // task_logs.chunk_bytes, 1024..16777216: the largest chunk a worker's log stream is cut into.
  int64_t chunk_bytes = 65536;

  bool operator==(const TaskLogSettings&) const = default;
};

// tls: the certificate a server serves HTTPS with, and the CA its own calls trust. Paths are made
// absolute like state_dir. Without it the server speaks plain HTTP (keep it on a private
// network); `tandem up` always writes one.
struct TlsSettings {
  std::string cert_file;  // tls.cert_file, required: PEM certificate, then any intermediates
  std::string key_file;   // tls.key_file, required: its PEM private key, mode 0600
  // tls.ca_file, optional: the CA that the certificates of the servers this one calls (control
  // plane, peer region, registries) must chain to; "" for the system's CAs. In a pair file it
  // is the pair's tls.ca_file.
  std::string ca_file;

  bool operator==(const TlsSettings&) const = default;
};

// The other region of a pair, as this region reaches it.
struct DrPeer {
  std::string name;       // its region name
  std::string address;    // its dotted IPv4 address (HTTP API and PostgreSQL listen on it)
  int http_port = 0;      // its HTTP API port
  int pg_port = 0;        // its PostgreSQL port (this region's source when it is the standby)
  int registry_port = 0;  // its OCI registry's port; 0 when it runs none
  bool tls = false;       // it serves HTTPS (a pair's parts all do, or none does)

  // "https://address:port" (or "http://...") of its HTTP API, or of its registry.
  std::string url() const;
  std::string registry_url() const;

  bool operator==(const DrPeer&) const = default;
};

// What a region of a pair needs to know about the pair: where the control plane is, who its
// peer is, and the lease and replication settings it must follow. Filled by RegionConfigFor
// (region/pair_config.h) from the pair file; the region file itself has no such section.
struct DrSettings {
  std::string pair;         // pair.name
  std::string control_url;  // "https://<control.address>:<control.http_port>" (http without TLS)
  DrPeer peer;              // the other region
  // "primary" or "standby": the role at the very first start only. Afterwards the control
  // plane's epoch and lease decide, never this.
  std::string initial_role;
  int lease_ms = 3000;                // pair.lease_ms: how long a granted lease lasts
  int lease_renew_ms = 500;           // pair.lease_renew_ms: how often the holder renews it
  int lease_margin_ms = 500;          // pair.lease_margin_ms: the holder stops this much early
  std::string mode = "asynchronous";  // pair.mode: "asynchronous" or "synchronous"
  int synchronous_degrade_after_ms = 5000;  // pair.synchronous_degrade_after_ms
  // pair.image_replication_timeout_seconds: how long a deploy waits for the peer's registry to
  // hold its image before failing (unless the deploy allows an unreplicated image).
  int image_replication_timeout_seconds = 60;

  bool operator==(const DrSettings&) const = default;
};

// Plain data, constant once parsed; safe to copy and to read from any thread.
struct RegionConfig {
  std::string path;     // absolute path of the file it came from ("" when parsed from no file)
  std::string name;     // region.name, required; must match ^[a-z][a-z0-9-]{0,30}$
  std::string address;  // region.address, required; dotted IPv4 (validated with inet_pton)
  int http_port = 0;    // region.http_port, required, 1..65535
  // region.state_dir, required; made absolute (relative to the config file's directory).
  std::string state_dir;
  // region.peers, optional list of IPv4 addresses allowed to replicate from this region.
  std::vector<std::string> peers;
  std::optional<ManagedPostgres> managed;   // postgres.managed (exactly one of managed / external)
  std::optional<std::string> external_dsn;  // postgres.external.dsn (non-empty string)
  // postgres.connect_timeout_seconds, 1..3600: how long to retry reaching PostgreSQL at start.
  int connect_timeout_seconds = 60;
  int pool_size = 8;            // postgres.pool_size, 1..64
  std::string secret_key_file;  // secrets.key_file (made absolute like state_dir)
  std::string secret_key;       // secrets.key (inline base64 text); exactly one of the two is set
  // secrets.owner_token_file, optional (made absolute): the API token that becomes the
  // platform's first owner when it has no principal yet.
  std::string owner_token_file;
  // limits.max_value_bytes, 1024..67108864: largest accepted value (variable value, env var
  // value, connection extra, ...).
  int64_t max_value_bytes = 1048576;
  int64_t max_body_bytes = 4194304;  // limits.max_body_bytes, >= max_value_bytes: largest body
  std::string log_level = "info";    // log.level: one of trace, debug, info, warn, error
  int http_threads = 512;  // http.threads, 1..1024: connections served at once, a thread each
  // workers: the task workers the region starts itself (a worker elsewhere runs
  // `tandem worker --api URL`).
  int local_workers = 1;    // workers.local, 0..64
  int worker_slots = 32;    // workers.slots, 1..5000: tasks each local worker runs at once
  int heartbeat_ms = 1000;  // workers.heartbeat_ms, 100..60000; a worker silent for three
                            // of these is dead and its tries are retried
  int task_nice = 10;       // workers.task_nice, 0..19: the local workers' tasks' niceness
  // workers.task_token_ttl_seconds, 4..86400: how long a task token lasts; heartbeats renew it
  int task_token_ttl_seconds = 600;
  // workers.task_uid_base: 0, or 1000..2100000000: a deployment's tasks run as uid base + the
  // deployment's number on workers started as root (0: as the worker's user)
  int64_t task_uid_base = 2100000000;
  std::string zone = "tandem.test";  // platform.zone: deployments' hostnames end in it
  // registry, optional. nullopt: the region runs no registry, and deployments' bundles are kept
  // only in its database (a standalone region may do without; `tandem up` always writes one).
  std::optional<RegistrySettings> registry;
  TaskLogSettings task_logs;       // task_logs, optional
  std::optional<TlsSettings> tls;  // tls, optional: nullopt serves plain HTTP
  // nullopt: a standalone region, always active, holding no lease. Set only for a region of a
  // pair (RegionConfigFor); never read from or written to a region file.
  std::optional<DrSettings> dr;

  // What its calls to the control plane, the peer and the registries trust (tls.ca_file).
  tls::Trust trust() const { return {tls ? tls->ca_file : ""}; }
  // "https://address:port" of its own HTTP API (http without TLS).
  std::string url() const;

  bool operator==(const RegionConfig&) const = default;
};

// Reads and parses the file at `path`. NotFound or PermissionDenied when it cannot be read;
// otherwise as ParseRegionConfig, with `path` named in messages.
Result<RegionConfig> LoadRegionConfig(const std::string& path);

// Parses and validates `yaml_text`. `path_for_messages` starts every error message and also
// anchors the file: config.path is its absolute form, and relative paths in the text resolve
// against its directory (the current directory when it is empty).
//
// Errors are InvalidArgument, one per call (the first found), formatted as
//   "<file>:<line>: <dotted.key>: <what was expected>, got <what was found>"
//   "<file>:<line>: unknown key <dotted.key>"
//   "<file>:<line>: duplicate key <dotted.key>"
//   "<file>:<line>: YAML syntax error: <yaml-cpp's message>"
//   "<file>:<line>: postgres: exactly one of managed or external is required"
//   "<file>:<line>: secrets: exactly one of key_file or key is required"
//   "<file>:<line>: limits.max_body_bytes (<n>) must be at least limits.max_value_bytes (<m>)"
//   "<file>:<line>: <key>: <address>:<port> is already taken by <other key> (<address>:<port>)"
//   "<file>:<line>: task_logs.s3: given, but task_logs.backend is directory, not s3"
//   "<file>:<line>: task_logs.s3 is required when task_logs.backend is s3"
//   "<file>:<line>: task_logs.s3: exactly one of secret_access_key_file or secret_access_key
//        is required"
//   "<file>:<line>: task_logs.spool_bound_bytes (<n>) must be at least task_logs.chunk_bytes
//        (<m>)"
//   "<file>:<line>: expected one YAML document, found <n>"
//   "<file>: <dotted.key> is required"
// Lines are 1-based and point at the key the error is about.
Result<RegionConfig> ParseRegionConfig(const std::string& yaml_text,
                                       const std::string& path_for_messages);

// Renders `c` as YAML with every key written out (defaults included), for `tandem up` to write
// generated configs. REQUIRES: `c` is valid (as ParseRegionConfig would return it, so `c.dr` is
// nullopt: a region of a pair is written as its pair file, RenderPairConfig); then
// ParseRegionConfig(RenderRegionConfig(c), c.path) gives back `c`.
std::string RenderRegionConfig(const RegionConfig& c);

}  // namespace tandem::region
