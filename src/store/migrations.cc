#include "store/migrations.h"

namespace tandem::store {
namespace {

// Chosen once; any constant works as long as nothing else in the database uses it.
constexpr const char* kLockKey = "7268311";

const char* kV1 = R"sql(
CREATE TABLE meta (
  key   text PRIMARY KEY,
  value bytea NOT NULL
);

-- Deleted deployments stay as tombstones so an id is never reused; names are unique among the
-- live ones only.
CREATE TABLE deployments (
  id                uuid PRIMARY KEY,
  name              text NOT NULL,
  namespace         text NOT NULL UNIQUE,
  description       text NOT NULL DEFAULT '',
  worker_slots      int  NOT NULL,
  catchup           bool NOT NULL,
  max_active_runs   int  NOT NULL,
  max_active_tasks  int  NOT NULL,
  metrics_enabled   bool NOT NULL DEFAULT false,
  metrics_format    text NOT NULL DEFAULT 'prometheus',
  metrics_endpoint  text NOT NULL DEFAULT '',
  metrics_interval  int  NOT NULL DEFAULT 60,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  deleted_at        timestamptz
);
CREATE UNIQUE INDEX deployments_live_name ON deployments (name) WHERE deleted_at IS NULL;

CREATE TABLE env_vars (
  deployment_id uuid NOT NULL REFERENCES deployments (id),
  key           text NOT NULL,
  value         text,   -- plain values
  value_enc     bytea,  -- secret values, sealed
  is_secret     bool NOT NULL,
  PRIMARY KEY (deployment_id, key),
  CHECK ((value IS NULL) = is_secret AND (value_enc IS NULL) = NOT is_secret)
);

CREATE TABLE connections (
  id            bigserial PRIMARY KEY,
  deployment_id uuid NOT NULL REFERENCES deployments (id),
  conn_id       text NOT NULL,
  conn_type     text NOT NULL,
  description   text,
  host          text,
  schema        text,
  login         text,
  password_enc  bytea,
  port          int,
  extra_enc     bytea,
  UNIQUE (deployment_id, conn_id)
);

CREATE TABLE variables (
  id            bigserial PRIMARY KEY,
  deployment_id uuid NOT NULL REFERENCES deployments (id),
  key           text NOT NULL,
  value         text,
  value_enc     bytea,
  description   text,
  is_secret     bool NOT NULL,
  UNIQUE (deployment_id, key),
  CHECK ((value IS NULL) = is_secret AND (value_enc IS NULL) = NOT is_secret)
);

CREATE TABLE pools (
  id               bigserial PRIMARY KEY,
  deployment_id    uuid NOT NULL REFERENCES deployments (id),
  name             text NOT NULL,
  slots            int  NOT NULL,
  description      text,
  include_deferred bool NOT NULL DEFAULT false,
  UNIQUE (deployment_id, name)
);
)sql";

const char* kV2 = R"sql(
-- Each deploy of a bundle is a version, named by its content digest.
CREATE TABLE bundle_versions (
  deployment_id uuid NOT NULL REFERENCES deployments (id),
  digest        text NOT NULL,
  files         jsonb NOT NULL,  -- {"relative/path.yaml": "content", ...}
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (deployment_id, digest)
);
ALTER TABLE deployments ADD COLUMN bundle_version text;

CREATE TABLE dags (
  deployment_id     uuid NOT NULL REFERENCES deployments (id),
  dag_id            text NOT NULL,
  is_paused         bool NOT NULL DEFAULT true,
  is_stale          bool NOT NULL DEFAULT false,
  bundle_version    text NOT NULL,
  fileloc           text NOT NULL,
  description       text NOT NULL DEFAULT '',
  tags              jsonb NOT NULL DEFAULT '[]',
  owners            jsonb NOT NULL DEFAULT '[]',
  timetable_summary text,
  timetable_description text NOT NULL DEFAULT '',
  max_active_runs   int NOT NULL,
  max_active_tasks  int NOT NULL,
  has_task_concurrency_limits bool NOT NULL DEFAULT false,
  last_parsed_time  timestamptz NOT NULL DEFAULT now(),
  start_date        timestamptz,
  end_date          timestamptz,
  catchup           bool NOT NULL DEFAULT false,
  -- where the scheduler stands: the next interval it will create a run for
  next_interval_start timestamptz,
  next_interval_end   timestamptz,
  PRIMARY KEY (deployment_id, dag_id)
);

-- A DAG's definition changes only when its file does; each change is a new version.
CREATE TABLE dag_versions (
  id             uuid PRIMARY KEY,
  deployment_id  uuid NOT NULL,
  dag_id         text NOT NULL,
  version_number int NOT NULL,
  file_digest    text NOT NULL,
  bundle_version text NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  UNIQUE (deployment_id, dag_id, version_number),
  FOREIGN KEY (deployment_id, dag_id) REFERENCES dags (deployment_id, dag_id)
);

-- The task graph of each DAG version, so that creating task instances and deciding which may
-- start are statements, not parses.
CREATE TABLE dag_version_tasks (
  dag_version_id  uuid NOT NULL REFERENCES dag_versions (id),
  task_id         text NOT NULL,
  ord             int NOT NULL,
  operator        text NOT NULL,
  trigger_rule    text NOT NULL,
  upstream        text[] NOT NULL,
  is_leaf         bool NOT NULL,
  pool            text NOT NULL,
  retries         int NOT NULL,
  retry_delay_s   int NOT NULL,
  timeout_s       int,
  priority_weight int NOT NULL,
  owner           text NOT NULL,
  PRIMARY KEY (dag_version_id, task_id)
);

CREATE TABLE import_errors (
  id             bigserial PRIMARY KEY,
  deployment_id  uuid NOT NULL REFERENCES deployments (id),
  bundle_version text NOT NULL,
  filename       text NOT NULL,
  line           int NOT NULL,
  message        text NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX import_errors_deployment ON import_errors (deployment_id);

-- The unique key on (deployment_id, dag_id, logical_date) is what makes "one run per schedule
-- interval" hold across restarts, races and failovers.
CREATE TABLE dag_runs (
  id                  bigserial PRIMARY KEY,
  deployment_id       uuid NOT NULL,
  dag_id              text NOT NULL,
  run_id              text NOT NULL,
  logical_date        timestamptz,
  data_interval_start timestamptz,
  data_interval_end   timestamptz,
  run_after           timestamptz NOT NULL,
  run_type            text NOT NULL,
  triggered_by        text NOT NULL,
  state               text NOT NULL,
  queued_at           timestamptz,
  start_date          timestamptz,
  end_date            timestamptz,
  last_scheduling_decision timestamptz,
  conf                jsonb NOT NULL DEFAULT '{}',
  note                text,
  bundle_version      text NOT NULL,
  dag_version_id      uuid NOT NULL REFERENCES dag_versions (id),
  UNIQUE (deployment_id, dag_id, run_id),
  UNIQUE (deployment_id, dag_id, logical_date),
  FOREIGN KEY (deployment_id, dag_id) REFERENCES dags (deployment_id, dag_id)
);
CREATE INDEX dag_runs_unfinished ON dag_runs (deployment_id, dag_id)
  WHERE state IN ('queued', 'running');

-- The current try of each task instance; finished earlier tries move to task_instance_history.
CREATE TABLE task_instances (
  id              uuid PRIMARY KEY,
  deployment_id   uuid NOT NULL,
  run_pk          bigint NOT NULL REFERENCES dag_runs (id) ON DELETE CASCADE,
  dag_id          text NOT NULL,
  run_id          text NOT NULL,
  task_id         text NOT NULL,
  state           text,
  try_number      int NOT NULL DEFAULT 0,
  max_tries       int NOT NULL DEFAULT 0,
  pool            text NOT NULL,
  pool_slots      int NOT NULL DEFAULT 1,
  priority_weight int NOT NULL DEFAULT 1,
  operator        text NOT NULL,
  queued_when     timestamptz,
  scheduled_when  timestamptz,
  start_date      timestamptz,
  end_date        timestamptz,
  next_retry_at   timestamptz,
  retry_delay_s   int NOT NULL DEFAULT 300,
  timeout_s       int,
  hostname        text NOT NULL DEFAULT '',
  unixname        text NOT NULL DEFAULT '',
  pid             int,
  worker_id       uuid,
  note            text,
  dag_version_id  uuid NOT NULL REFERENCES dag_versions (id),
  UNIQUE (run_pk, task_id)
);
CREATE INDEX task_instances_queued ON task_instances (queued_when) WHERE state = 'queued';
CREATE INDEX task_instances_running ON task_instances (worker_id) WHERE state = 'running';
CREATE INDEX task_instances_pending ON task_instances (run_pk)
  WHERE state IS NULL OR state IN ('scheduled', 'up_for_retry');
CREATE INDEX task_instances_deployment_active ON task_instances (deployment_id, pool)
  WHERE state IN ('queued', 'running');

CREATE TABLE task_instance_history (
  id              bigserial PRIMARY KEY,
  ti_id           uuid NOT NULL,
  deployment_id   uuid NOT NULL,
  run_pk          bigint NOT NULL REFERENCES dag_runs (id) ON DELETE CASCADE,
  dag_id          text NOT NULL,
  run_id          text NOT NULL,
  task_id         text NOT NULL,
  state           text,
  try_number      int NOT NULL,
  max_tries       int NOT NULL,
  pool            text NOT NULL,
  pool_slots      int NOT NULL,
  priority_weight int NOT NULL,
  operator        text NOT NULL,
  queued_when     timestamptz,
  scheduled_when  timestamptz,
  start_date      timestamptz,
  end_date        timestamptz,
  hostname        text NOT NULL,
  unixname        text NOT NULL,
  pid             int,
  dag_version_id  uuid NOT NULL,
  UNIQUE (ti_id, try_number)
);

CREATE TABLE xcoms (
  deployment_id uuid NOT NULL,
  run_pk        bigint NOT NULL REFERENCES dag_runs (id) ON DELETE CASCADE,
  dag_id        text NOT NULL,
  run_id        text NOT NULL,
  task_id       text NOT NULL,
  key           text NOT NULL,
  value         jsonb NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_pk, task_id, key)
);

-- Workers heartbeat here, one row each; a running task instance whose worker has gone quiet
-- for three heartbeat intervals is handled as Airflow handles zombies.
CREATE TABLE workers (
  id             uuid PRIMARY KEY,
  hostname       text NOT NULL,
  slots          int NOT NULL,
  deployment_id  uuid,  -- serves one deployment only, or all when NULL
  heartbeat_ms   int NOT NULL,
  started_at     timestamptz NOT NULL DEFAULT now(),
  last_heartbeat timestamptz NOT NULL DEFAULT now()
);
)sql";

const char* kV3 = R"sql(
-- The pair's fencing state as the metadata database knows it: a promoted region writes its
-- epoch here before it starts anything, and the active region's heartbeat row gives the
-- replica a commit to time its replay lag by.
CREATE TABLE dr_state (
  id           int PRIMARY KEY CHECK (id = 1),
  epoch        bigint NOT NULL,
  region       text NOT NULL,
  changed_at   timestamptz NOT NULL DEFAULT now(),
  heartbeat_at timestamptz NOT NULL DEFAULT now()
);
)sql";

const char* kV4 = R"sql(
-- The OCI image a bundle version was deployed as, in the region's registry, and when the
-- standby's registry was found to hold it too (NULL: not yet; the image replicator retries).
ALTER TABLE bundle_versions ADD COLUMN image_repository text;
ALTER TABLE bundle_versions ADD COLUMN image_digest text;
ALTER TABLE bundle_versions ADD COLUMN image_bytes bigint;
ALTER TABLE bundle_versions ADD COLUMN image_replicated_at timestamptz;
CREATE INDEX bundle_versions_unreplicated ON bundle_versions (created_at)
  WHERE image_digest IS NOT NULL AND image_replicated_at IS NULL;
)sql";

const char* kV5 = R"sql(
-- The task instances not finished yet, by run: a scheduler pass ends the runs that have none.
-- Without it that statement read the whole table, every pass, however many runs were done.
CREATE INDEX task_instances_unfinished ON task_instances (run_pk)
  WHERE state IS NULL OR state IN ('scheduled', 'queued', 'running', 'up_for_retry');
)sql";

const char* kV6 = R"sql(
-- When a try was put back to be retried because its worker or its region was lost (a lost
-- worker reaped, a failover's reconciliation): for a while such tries are admitted after fresh
-- work of the same priority weight, so that a region taking over hundreds of them still starts
-- what its users trigger at once. Cleared when the try is claimed.
ALTER TABLE task_instances ADD COLUMN recovered_at timestamptz;
)sql";

const char* kV7 = R"sql(
-- Who may do what (docs/security.md). Workspaces group deployments; every deployment is in one,
-- `default` when nothing else was said. Users and API tokens are principals; their roles live
-- here, in the metadata, so that the region left after a failover checks requests exactly as
-- the lost one did. Tokens are kept as the SHA-256 of their secret, never the secret.
CREATE TABLE workspaces (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name        text NOT NULL UNIQUE,
  description text NOT NULL DEFAULT '',
  created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO workspaces (name, description)
  VALUES ('default', 'The deployments not placed in another workspace.');
ALTER TABLE deployments ADD COLUMN workspace_id uuid REFERENCES workspaces (id);
UPDATE deployments SET workspace_id = (SELECT id FROM workspaces WHERE name = 'default');
ALTER TABLE deployments ALTER COLUMN workspace_id SET NOT NULL;

CREATE TABLE users (
  id                   uuid PRIMARY KEY,
  name                 text NOT NULL UNIQUE,
  password_hash        text,          -- argon2id in libsodium's encoding; NULL: no password
  disabled_at          timestamptz,
  session_generation   bigint NOT NULL DEFAULT 0,  -- in every session token; +1 ends them all
  created_at           timestamptz NOT NULL DEFAULT now()
);

-- A user's roles; scope_id is '' for the platform.
CREATE TABLE role_bindings (
  user_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  scope    text NOT NULL CHECK (scope IN ('platform', 'workspace', 'deployment')),
  scope_id text NOT NULL DEFAULT '',
  role     text NOT NULL,
  PRIMARY KEY (user_id, scope, scope_id)
);

-- An API token has exactly one role, on the scope it was made for.
CREATE TABLE api_tokens (
  id            text PRIMARY KEY,     -- the token's public part
  name          text NOT NULL,
  description   text NOT NULL DEFAULT '',
  secret_sha256 text NOT NULL,
  scope         text NOT NULL CHECK (scope IN ('platform', 'workspace', 'deployment')),
  scope_id      text NOT NULL DEFAULT '',
  role          text NOT NULL,
  created_by    text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz,
  revoked_at    timestamptz
);
CREATE INDEX api_tokens_scope ON api_tokens (scope, scope_id);
)sql";

const char* kV8 = R"sql(
-- The audit trail: every write and every refusal, who (principal), from where, what, the
-- outcome. Append-only: the trigger refuses to change or remove a row, so the trail survives
-- in the metadata — replicated, promoted with the rest — as it was written.
CREATE TABLE audit_events (
  id            bigserial PRIMARY KEY,
  at            timestamptz NOT NULL DEFAULT now(),
  principal     text NOT NULL,        -- "token ci", "user alice", "anonymous"
  principal_id  text NOT NULL DEFAULT '',
  source        text NOT NULL,        -- the client's address
  event         text NOT NULL,        -- post_variables, delete_deployments, login, ...
  method        text NOT NULL,
  route         text NOT NULL,        -- the route's pattern
  path          text NOT NULL,
  deployment_id uuid,
  dag_id        text,
  run_id        text,
  task_id       text,
  status        int NOT NULL,
  outcome       text NOT NULL CHECK (outcome IN ('ok', 'refused', 'failed')),
  detail        jsonb NOT NULL DEFAULT '{}'  -- the request, secrets masked
);
CREATE INDEX audit_events_deployment ON audit_events (deployment_id, id);
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the audit trail is append-only';
END $$;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
)sql";

const char* kV9 = R"sql(
-- Worker credentials: what a worker presents to the Execution API, kept as hashes like API
-- tokens and revocable. One made for a deployment claims only that deployment's tasks; one made
-- for the platform (deployment_id NULL) serves a pool that claims every deployment's.
CREATE TABLE worker_credentials (
  id            text PRIMARY KEY,     -- the credential's public part
  name          text NOT NULL,
  description   text NOT NULL DEFAULT '',
  secret_sha256 text NOT NULL,
  deployment_id uuid REFERENCES deployments (id),
  created_by    text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz,
  revoked_at    timestamptz
);
CREATE INDEX worker_credentials_deployment ON worker_credentials (deployment_id);
)sql";

const char* kV10 = R"sql(
-- Each deployment's number among the users its tasks run as: a worker started as root runs the
-- deployment's tasks as uid workers.task_uid_base + task_uid, a user of their own. Never reused:
-- a deleted deployment keeps its number, so its files can never become another's.
ALTER TABLE deployments ADD COLUMN task_uid serial;
CREATE UNIQUE INDEX deployments_task_uid ON deployments (task_uid);
)sql";

const char* kV11 = R"sql(
-- The keyring: the data keys that seal secrets at rest, each wrapped (sealed) under a key derived
-- from the pair's secret key. New values are sealed under the one active key; a rotation makes a
-- new key active, reseals every value under it, and retires the old keys, whose material it
-- drops. Values name their key in their first five bytes.
CREATE TABLE keyring (
  id          integer PRIMARY KEY CHECK (id > 0),
  state       text NOT NULL CHECK (state IN ('active', 'retiring', 'retired')),
  wrapped     bytea,
  created_at  timestamptz NOT NULL DEFAULT now(),
  retired_at  timestamptz,
  CHECK ((wrapped IS NULL) = (state = 'retired'))
);
CREATE UNIQUE INDEX keyring_one_active ON keyring ((true)) WHERE state = 'active';
)sql";

}  // namespace

const std::vector<Migration>& Migrations() {
  static const std::vector<Migration> kAll = {
      {1, "deployments, env vars, connections, variables, pools", kV1},
      {2, "bundles, DAGs, runs, task instances, XComs, import errors, workers", kV2},
      {3, "the pair's epoch and heartbeat", kV3},
      {4, "deployed images of bundle versions", kV4},
      {5, "an index of unfinished task instances by run", kV5},
      {6, "when a try was put back after its worker or region was lost", kV6},
      {7, "workspaces, users, role bindings and API tokens", kV7},
      {8, "the audit trail", kV8},
      {9, "worker credentials", kV9},
      {10, "the number of each deployment's task user", kV10},
      {11, "the keyring of the keys sealing secrets at rest", kV11},
  };
  return kAll;
}

int LatestSchemaVersion() { return Migrations().back().version; }

Result<int> SchemaVersion(pg::Conn& conn) {
  ASSIGN_OR_RETURN(pg::Rows exists,
                   conn.Exec("SELECT to_regclass('schema_migrations') IS NOT NULL"));
  if (!exists.Bool(0, 0)) return 0;
  ASSIGN_OR_RETURN(pg::Rows v, conn.Exec("SELECT coalesce(max(version), 0) FROM "
                                         "schema_migrations"));
  return static_cast<int>(v.Int(0, 0));
}

Result<int> Migrate(pg::Conn& conn) {
  RETURN_IF_ERROR(conn.ExecScript("BEGIN"));
  auto body = [&]() -> Result<int> {
    RETURN_IF_ERROR(
        conn.Exec(std::string("SELECT pg_advisory_xact_lock(") + kLockKey + ")").status());
    RETURN_IF_ERROR(
        conn.ExecScript("CREATE TABLE IF NOT EXISTS schema_migrations ("
                        "  version int PRIMARY KEY, name text NOT NULL,"
                        "  applied_at timestamptz NOT NULL DEFAULT now())"));
    ASSIGN_OR_RETURN(int current, SchemaVersion(conn));
    if (current > LatestSchemaVersion()) {
      return FailedPrecondition("the database schema is at version " + std::to_string(current) +
                                ", newer than this tandem knows (up to " +
                                std::to_string(LatestSchemaVersion()) +
                                "); start a tandem at least as new as the one that migrated it");
    }
    for (const Migration& m : Migrations()) {
      if (m.version <= current) continue;
      Status s = conn.ExecScript(m.sql);
      if (!s.ok()) return s.WithContext("migration " + std::to_string(m.version));
      RETURN_IF_ERROR(conn.Exec("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                                {std::to_string(m.version), m.name})
                          .status());
    }
    return LatestSchemaVersion();
  };
  Result<int> r = body();
  if (!r.ok()) {
    (void)conn.ExecScript("ROLLBACK");
    return r;
  }
  RETURN_IF_ERROR(conn.ExecScript("COMMIT"));
  return r;
}

}  // namespace tandem::store
