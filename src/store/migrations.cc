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

}  // namespace

const std::vector<Migration>& Migrations() {
  static const std::vector<Migration> kAll = {
      {1, "deployments, env vars, connections, variables, pools", kV1},
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
    RETURN_IF_ERROR(conn.Exec(std::string("SELECT pg_advisory_xact_lock(") + kLockKey + ")")
                        .status());
    RETURN_IF_ERROR(conn.ExecScript(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "  version int PRIMARY KEY, name text NOT NULL,"
        "  applied_at timestamptz NOT NULL DEFAULT now())"));
    ASSIGN_OR_RETURN(int current, SchemaVersion(conn));
    if (current > LatestSchemaVersion()) {
      return FailedPrecondition(
          "the database schema is at version " + std::to_string(current) +
          ", newer than this tandem knows (up to " + std::to_string(LatestSchemaVersion()) +
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
