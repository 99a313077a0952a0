#include "store/store.h"

#include <map>

#include "base/random.h"
#include "model/validate.h"
#include "store/sql.h"

namespace tandem::store {
namespace {

using model::Connection;
using model::Deployment;
using model::EnvVar;
using model::Page;
using model::PageRequest;
using model::Pool;
using model::Variable;
using pg::Conn;
using pg::Param;
using pg::Params;
using pg::Rows;
using sql::B;
using sql::ListPage;
using sql::ListSpec;
using sql::N;
using sql::Opt;
using sql::OptInt;
using sql::Ts;

constexpr const char* kKeyCheckPlain = "tandem secret key check v1";
constexpr const char* kKeyCheckAad = "meta/secret_key_check";

const std::string kDeploymentColumns =
    "d.id, d.name, d.namespace, d.description, d.worker_slots, d.catchup, d.max_active_runs, "
    "d.max_active_tasks, d.metrics_enabled, d.metrics_format, d.metrics_endpoint, "
    "d.metrics_interval, " +
    Ts("d.created_at") + ", " + Ts("d.updated_at") +
    ", "
    "coalesce((SELECT slots FROM pools p WHERE p.deployment_id = d.id AND p.name = "
    "'default_pool'), 0), d.workspace_id";

Deployment DeploymentFromRow(const Rows& r, int i) {
  Deployment d;
  d.id = DeploymentId(r.Text(i, 0));
  d.name = r.Text(i, 1);
  d.ns = r.Text(i, 2);
  d.description = r.Text(i, 3);
  d.config.worker_slots = static_cast<int>(r.Int(i, 4));
  d.config.schedule.catchup = r.Bool(i, 5);
  d.config.schedule.max_active_runs = static_cast<int>(r.Int(i, 6));
  d.config.schedule.max_active_tasks = static_cast<int>(r.Int(i, 7));
  d.metrics.enabled = r.Bool(i, 8);
  d.metrics.format = r.Text(i, 9);
  d.metrics.endpoint = r.Text(i, 10);
  d.metrics.interval_seconds = static_cast<int>(r.Int(i, 11));
  d.created_at = r.Text(i, 12);
  d.updated_at = r.Text(i, 13);
  d.config.default_pool_slots = static_cast<int>(r.Int(i, 14));
  d.workspace_id = r.Text(i, 15);
  return d;
}

std::string Quote(std::string_view s) { return "`" + std::string(s) + "`"; }

const ListSpec kConnections{
    "connections",
    "conn_id, conn_type, description, host, schema, login, password_enc, port, extra_enc",
    "conn_id",
    {{"id", "id"},
     {"connection_id", "conn_id"},
     {"conn_id", "conn_id"},
     {"conn_type", "conn_type"},
     {"host", "host"},
     {"port", "port"}},
    "Connection",
    "connection_id"};

const ListSpec kVariables{"variables", "key, value, value_enc, description, is_secret",
                          "key",       {{"id", "id"}, {"key", "key"}},
                          "Variable",  "key"};

// Usage per state, counted from the task instances that hold the pool's slots.
std::string PoolUsage(const std::string& state) {
  return "(SELECT coalesce(sum(t.pool_slots), 0) FROM task_instances t WHERE t.deployment_id = "
         "pools.deployment_id AND t.pool = pools.name AND t.state = '" +
         state + "')";
}

const ListSpec kPools{"pools",
                      "name, slots, description, include_deferred, " + PoolUsage("running") + ", " +
                          PoolUsage("queued") + ", " + PoolUsage("scheduled"),
                      "name",
                      {{"id", "id"}, {"name", "name"}, {"pool", "name"}, {"slots", "slots"}},
                      "Pool",
                      "name"};

Pool PoolFromRow(const Rows& r, int i) {
  Pool p{r.Text(i, 0), static_cast<int>(r.Int(i, 1)), r.Opt(i, 2), r.Bool(i, 3)};
  p.running = static_cast<int>(r.Int(i, 4));
  p.queued = static_cast<int>(r.Int(i, 5));
  p.scheduled = static_cast<int>(r.Int(i, 6));
  return p;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

Result<std::unique_ptr<Store>> Store::Open(pg::Pool* pool, SecretBox box, bool replica) {
  std::unique_ptr<Store> s(new Store(pool, std::move(box)));
  Status st = pool->WithTx([&](Conn& c) -> Status {
    // A replica cannot lock rows; it only reads (and its primary wrote the check).
    ASSIGN_OR_RETURN(Rows r, c.Exec(std::string("SELECT value FROM meta WHERE key = "
                                                "'secret_key_check'") +
                                    (replica ? "" : " FOR UPDATE")));
    if (r.size() == 0) {
      if (replica) return Status::Ok();
      return c
          .Exec("INSERT INTO meta (key, value) VALUES ('secret_key_check', $1)",
                {pg::ByteaParam(s->box_.Seal(kKeyCheckPlain, kKeyCheckAad))})
          .status();
    }
    auto sealed = pg::DecodeBytea(r.Text(0, 0));
    auto opened = sealed.ok() ? s->box_.Open(*sealed, kKeyCheckAad) : sealed.status();
    if (!opened.ok() || *opened != kKeyCheckPlain) {
      return FailedPrecondition(
          "the secret key does not match the one this region's database was encrypted with; "
          "use the original key (secrets.key_file or secrets.key)");
    }
    // A new database gets its first data key now, so `tandem keys list` shows it.
    if (!replica) RETURN_IF_ERROR(s->ActiveKey(c).status());
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return s;
}

// ---- deployments -----------------------------------------------------------------------------

Result<Deployment> Store::CreateDeployment(Deployment d) {
  d.id = DeploymentId(NewUuid());
  d.ns = model::DeriveNamespace(d.name, d.id);
  Status st = pool_->WithTx([&](Conn& c) -> Status {
    auto ins = c.Exec(
        "INSERT INTO deployments (id, name, namespace, description, worker_slots, catchup, "
        "max_active_runs, max_active_tasks, metrics_enabled, metrics_format, metrics_endpoint, "
        "metrics_interval, workspace_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
        "$12, coalesce($13::uuid, (SELECT id FROM workspaces WHERE name = 'default')))",
        {d.id.value(), d.name, d.ns, d.description, N(d.config.worker_slots),
         B(d.config.schedule.catchup), N(d.config.schedule.max_active_runs),
         N(d.config.schedule.max_active_tasks), B(d.metrics.enabled), d.metrics.format,
         d.metrics.endpoint, N(d.metrics.interval_seconds),
         Opt(d.workspace_id.empty() ? std::nullopt : std::optional(d.workspace_id))});
    if (ins.status().code() == Code::kAlreadyExists) {
      return AlreadyExists("a deployment named " + Quote(d.name) + " already exists");
    }
    RETURN_IF_ERROR(ins.status());
    return c
        .Exec(
            "INSERT INTO pools (deployment_id, name, slots, description) "
            "VALUES ($1, 'default_pool', $2, 'Default pool')",
            {d.id.value(), N(d.config.default_pool_slots)})
        .status();
  });
  if (!st.ok()) return st;
  return GetDeployment(d.id.value());
}

Result<Page<Deployment>> Store::ListDeployments(const PageRequest& page) {
  static const ListSpec kDeployments{
      "deployments d", kDeploymentColumns,
      "d.name",        {{"name", "d.name"}, {"id", "d.id"}, {"created_at", "d.created_at"}},
      "deployment",    "name",
      "name",          "d.id"};
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  Page<Deployment> out;
  ASSIGN_OR_RETURN(Rows r,
                   ListPage(*c, kDeployments, "d.deleted_at IS NULL", {}, page, &out.total));
  for (int i = 0; i < r.size(); ++i) out.items.push_back(DeploymentFromRow(r, i));
  return out;
}

namespace {
Result<Deployment> GetDeploymentIn(Conn& c, std::string_view ref, bool for_update) {
  ASSIGN_OR_RETURN(Rows r, c.Exec("SELECT " + kDeploymentColumns +
                                      " FROM deployments d WHERE d.deleted_at IS NULL AND "
                                      "(d.name = $1 OR d.id::text = lower($1))" +
                                      (for_update ? " FOR UPDATE" : ""),
                                  {std::string(ref)}));
  if (r.size() == 0) return NotFound("no deployment named or with id " + Quote(ref));
  return DeploymentFromRow(r, 0);
}
}  // namespace

Result<Deployment> Store::GetDeployment(std::string_view ref) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  return GetDeploymentIn(*c, ref, false);
}

Result<DeploymentId> Store::FindByNamespace(std::string_view ns) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(Rows r, c->Exec("SELECT id FROM deployments WHERE namespace = $1 AND "
                                   "deleted_at IS NULL",
                                   {std::string(ns)}));
  if (r.size() == 0) return NotFound("no deployment has the namespace " + Quote(ns));
  return DeploymentId(r.Text(0, 0));
}

Result<Deployment> Store::UpdateDeployment(std::string_view ref,
                                           const std::function<Status(Deployment&)>& mutate) {
  DeploymentId id;
  Status st = pool_->WithTx([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Deployment d, GetDeploymentIn(c, ref, true));
    Deployment before = d;
    RETURN_IF_ERROR(mutate(d));
    d.id = before.id;
    d.ns = before.ns;
    id = d.id;
    auto up = c.Exec(
        "UPDATE deployments SET name = $2, description = $3, worker_slots = $4, catchup = $5, "
        "max_active_runs = $6, max_active_tasks = $7, metrics_enabled = $8, "
        "metrics_format = $9, metrics_endpoint = $10, metrics_interval = $11, "
        "updated_at = now() WHERE id = $1",
        {d.id.value(), d.name, d.description, N(d.config.worker_slots),
         B(d.config.schedule.catchup), N(d.config.schedule.max_active_runs),
         N(d.config.schedule.max_active_tasks), B(d.metrics.enabled), d.metrics.format,
         d.metrics.endpoint, N(d.metrics.interval_seconds)});
    if (up.status().code() == Code::kAlreadyExists) {
      return AlreadyExists("a deployment named " + Quote(d.name) + " already exists");
    }
    RETURN_IF_ERROR(up.status());
    if (d.config.default_pool_slots != before.config.default_pool_slots) {
      RETURN_IF_ERROR(c.Exec("UPDATE pools SET slots = $2 WHERE deployment_id = $1 AND "
                             "name = 'default_pool'",
                             {d.id.value(), N(d.config.default_pool_slots)})
                          .status());
    }
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return GetDeployment(id.value());
}

Status Store::DeleteDeployment(std::string_view ref) {
  return pool_->WithTx([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Deployment d, GetDeploymentIn(c, ref, true));
    for (const char* table : {"env_vars", "connections", "variables", "pools"}) {
      RETURN_IF_ERROR(
          c.Exec(std::string("DELETE FROM ") + table + " WHERE deployment_id = $1", {d.id.value()})
              .status());
    }
    return c
        .Exec("UPDATE deployments SET deleted_at = now(), updated_at = now() WHERE id = $1",
              {d.id.value()})
        .status();
  });
}

Result<int64_t> Store::CountDeployments() {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(Rows r, c->Exec("SELECT count(*) FROM deployments WHERE deleted_at IS NULL"));
  return r.Int(0, 0);
}

Status Store::InDeployment(const DeploymentId& d, const std::function<Status(Conn&)>& fn) {
  return pool_->WithTx([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows r, c.Exec("SELECT 1 FROM deployments WHERE id = $1 AND "
                                    "deleted_at IS NULL FOR SHARE",
                                    {d.value()}));
    if (r.size() == 0) return NotFound("no deployment with id `" + d.value() + "`");
    return fn(c);
  });
}

// ---- env vars --------------------------------------------------------------------------------

namespace {
std::string EnvAad(const DeploymentId& d, std::string_view key) {
  return "env/" + d.value() + "/" + std::string(key);
}
}  // namespace

Result<std::vector<EnvVar>> Store::ListEnv(const DeploymentId& d) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(Rows r, c->Exec("SELECT key, value, value_enc, is_secret FROM env_vars "
                                   "WHERE deployment_id = $1 ORDER BY key",
                                   {d.value()}));
  std::vector<EnvVar> out;
  for (int i = 0; i < r.size(); ++i) {
    EnvVar v{r.Text(i, 0), r.Text(i, 1), r.Bool(i, 3)};
    if (v.is_secret) {
      ASSIGN_OR_RETURN(v.value, Unseal(*c, r.Text(i, 2), EnvAad(d, v.key)));
    }
    out.push_back(std::move(v));
  }
  return out;
}

Status Store::SetEnv(const DeploymentId& d, const EnvVar& v) {
  Param plain = v.is_secret ? std::nullopt : Param(v.value);
  return InDeployment(d, [&](Conn& c) -> Status {
    Param sealed;
    if (v.is_secret) {
      ASSIGN_OR_RETURN(sealed, Seal(c, v.value, EnvAad(d, v.key)));
    }
    return c
        .Exec(
            "INSERT INTO env_vars (deployment_id, key, value, value_enc, is_secret) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (deployment_id, key) DO UPDATE SET "
            "value = excluded.value, value_enc = excluded.value_enc, "
            "is_secret = excluded.is_secret",
            {d.value(), v.key, plain, sealed, B(v.is_secret)})
        .status();
  });
}

Status Store::UnsetEnv(const DeploymentId& d, std::string_view key) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(Rows r, c->Exec("DELETE FROM env_vars WHERE deployment_id = $1 AND key = $2",
                                   {d.value(), std::string(key)}));
  if (r.affected() == 0) return NotFound("The env var " + Quote(key) + " was not found");
  return Status::Ok();
}

// ---- connections -----------------------------------------------------------------------------

namespace {

std::string ConnAad(const DeploymentId& d, std::string_view id, std::string_view field) {
  return "conn/" + d.value() + "/" + std::string(id) + "/" + std::string(field);
}

}  // namespace

Result<Connection> Store::ConnectionFromRow(Conn& conn, const Rows& r, int i,
                                            const DeploymentId& d) const {
  Connection c{r.Text(i, 0), r.Text(i, 1), r.Opt(i, 2),  r.Opt(i, 3),
               r.Opt(i, 4),  r.Opt(i, 5),  std::nullopt, std::nullopt};
  if (!r.IsNull(i, 7)) c.port = static_cast<int>(r.Int(i, 7));
  if (!r.IsNull(i, 6)) {
    ASSIGN_OR_RETURN(c.password, Unseal(conn, r.Text(i, 6), ConnAad(d, c.conn_id, "password")));
  }
  if (!r.IsNull(i, 8)) {
    ASSIGN_OR_RETURN(c.extra, Unseal(conn, r.Text(i, 8), ConnAad(d, c.conn_id, "extra")));
  }
  return c;
}

Result<Page<Connection>> Store::ListConnections(const DeploymentId& d, const PageRequest& page) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  Page<Connection> out;
  ASSIGN_OR_RETURN(Rows r, ListPage(*c, kConnections, d, page, &out.total));
  for (int i = 0; i < r.size(); ++i) {
    ASSIGN_OR_RETURN(Connection conn, ConnectionFromRow(*c, r, i, d));
    out.items.push_back(std::move(conn));
  }
  return out;
}

namespace {
Result<Rows> SelectOne(Conn& c, const ListSpec& spec, const DeploymentId& d, std::string_view key,
                       bool for_update) {
  ASSIGN_OR_RETURN(Rows r, c.Exec("SELECT " + spec.columns + " FROM " + spec.table +
                                      " WHERE deployment_id = $1 AND " + spec.key_column + " = $2" +
                                      (for_update ? " FOR UPDATE" : ""),
                                  {d.value(), std::string(key)}));
  if (r.size() == 0) {
    return NotFound("The " + spec.noun + " with " + spec.key_name + ": " + Quote(key) +
                    " was not found");
  }
  return r;
}

Status DeleteOne(Conn& c, const ListSpec& spec, const DeploymentId& d, std::string_view key) {
  ASSIGN_OR_RETURN(Rows r, c.Exec("DELETE FROM " + spec.table + " WHERE deployment_id = $1 AND " +
                                      spec.key_column + " = $2",
                                  {d.value(), std::string(key)}));
  if (r.affected() == 0) {
    return NotFound("The " + spec.noun + " with " + spec.key_name + ": " + Quote(key) +
                    " was not found");
  }
  return Status::Ok();
}

// The read-modify-write of one row of `spec` under deployment `d`: in one transaction of
// `in_tx`, lock the row `key`, decode it, let `mutate` change it, and `write` it back.
template <typename T, typename InTx, typename Decode, typename Write>
Result<T> ReadModifyWrite(InTx in_tx, const ListSpec& spec, const DeploymentId& d,
                          std::string_view key, Decode decode,
                          const std::function<Status(T&)>& mutate, Write write) {
  T out;
  Status st = in_tx([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows r, SelectOne(c, spec, d, key, true));
    ASSIGN_OR_RETURN(out, decode(c, r));
    RETURN_IF_ERROR(mutate(out));
    return write(c, out);
  });
  if (!st.ok()) return st;
  return out;
}

Status Conflict(const Status& s, const ListSpec& spec, std::string_view key) {
  if (s.code() != Code::kAlreadyExists) return s;
  return AlreadyExists("The " + spec.noun + " with " + spec.key_name + ": " + Quote(key) +
                       " already exists");
}
}  // namespace

Result<Connection> Store::GetConnection(const DeploymentId& d, std::string_view conn_id) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(Rows r, SelectOne(*c, kConnections, d, conn_id, false));
  return ConnectionFromRow(*c, r, 0, d);
}

Status Store::WriteConnection(Conn& c, const DeploymentId& d, const Connection& conn,
                              std::optional<std::string_view> replacing) const {
  auto seal = [&](const std::optional<std::string>& v, const char* field) -> Result<Param> {
    if (!v) return Param(std::nullopt);
    ASSIGN_OR_RETURN(std::string sealed, Seal(c, *v, ConnAad(d, conn.conn_id, field)));
    return Param(std::move(sealed));
  };
  ASSIGN_OR_RETURN(Param password, seal(conn.password, "password"));
  ASSIGN_OR_RETURN(Param extra, seal(conn.extra, "extra"));
  Params p{d.value(),        conn.conn_id,    conn.conn_type, Opt(conn.description), Opt(conn.host),
           Opt(conn.schema), Opt(conn.login), password,       OptInt(conn.port),     extra};
  if (!replacing) {
    return Conflict(c.Exec("INSERT INTO connections (deployment_id, conn_id, conn_type, "
                           "description, host, schema, login, password_enc, port, extra_enc) "
                           "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                           p)
                        .status(),
                    kConnections, conn.conn_id);
  }
  p.push_back(std::string(*replacing));
  return Conflict(c.Exec("UPDATE connections SET conn_id = $2, conn_type = $3, description = $4, "
                         "host = $5, schema = $6, login = $7, password_enc = $8, port = $9, "
                         "extra_enc = $10 WHERE deployment_id = $1 AND conn_id = $11",
                         p)
                      .status(),
                  kConnections, conn.conn_id);
}

Status Store::CreateConnection(const DeploymentId& d, const Connection& conn) {
  return InDeployment(d, [&](Conn& c) { return WriteConnection(c, d, conn, std::nullopt); });
}

Result<Connection> Store::UpdateConnection(const DeploymentId& d, std::string_view conn_id,
                                           const std::function<Status(Connection&)>& mutate) {
  return ReadModifyWrite<Connection>(
      [&](const auto& fn) { return InDeployment(d, fn); }, kConnections, d, conn_id,
      [&](Conn& c, const Rows& r) { return ConnectionFromRow(c, r, 0, d); }, mutate,
      [&](Conn& c, const Connection& x) { return WriteConnection(c, d, x, conn_id); });
}

Status Store::DeleteConnection(const DeploymentId& d, std::string_view conn_id) {
  return InDeployment(d, [&](Conn& c) { return DeleteOne(c, kConnections, d, conn_id); });
}

// ---- variables -------------------------------------------------------------------------------

namespace {
std::string VarAad(const DeploymentId& d, std::string_view key) {
  return "var/" + d.value() + "/" + std::string(key);
}
}  // namespace

Result<Variable> Store::VariableFromRow(Conn& c, const Rows& r, int i,
                                        const DeploymentId& d) const {
  Variable v{r.Text(i, 0), r.Text(i, 1), r.Opt(i, 3), r.Bool(i, 4)};
  if (v.is_secret) {
    ASSIGN_OR_RETURN(v.value, Unseal(c, r.Text(i, 2), VarAad(d, v.key)));
  }
  return v;
}

Result<Page<Variable>> Store::ListVariables(const DeploymentId& d, const PageRequest& page) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  Page<Variable> out;
  ASSIGN_OR_RETURN(Rows r, ListPage(*c, kVariables, d, page, &out.total));
  for (int i = 0; i < r.size(); ++i) {
    ASSIGN_OR_RETURN(Variable v, VariableFromRow(*c, r, i, d));
    out.items.push_back(std::move(v));
  }
  return out;
}

Result<Variable> Store::GetVariable(const DeploymentId& d, std::string_view key) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(Rows r, SelectOne(*c, kVariables, d, key, false));
  return VariableFromRow(*c, r, 0, d);
}

Status Store::WriteVariable(Conn& c, const DeploymentId& d, const Variable& v,
                            std::optional<std::string_view> replacing) const {
  Param plain = v.is_secret ? std::nullopt : Param(v.value);
  Param sealed;
  if (v.is_secret) {
    ASSIGN_OR_RETURN(sealed, Seal(c, v.value, VarAad(d, v.key)));
  }
  Params p{d.value(), v.key, plain, sealed, Opt(v.description), B(v.is_secret)};
  if (!replacing) {
    return Conflict(c.Exec("INSERT INTO variables (deployment_id, key, value, value_enc, "
                           "description, is_secret) VALUES ($1, $2, $3, $4, $5, $6)",
                           p)
                        .status(),
                    kVariables, v.key);
  }
  p.push_back(std::string(*replacing));
  return Conflict(c.Exec("UPDATE variables SET key = $2, value = $3, value_enc = $4, "
                         "description = $5, is_secret = $6 WHERE deployment_id = $1 AND key = $7",
                         p)
                      .status(),
                  kVariables, v.key);
}

Status Store::CreateVariable(const DeploymentId& d, const Variable& v) {
  return InDeployment(d, [&](Conn& c) { return WriteVariable(c, d, v, std::nullopt); });
}

Result<Variable> Store::UpdateVariable(const DeploymentId& d, std::string_view key,
                                       const std::function<Status(Variable&)>& mutate) {
  return ReadModifyWrite<Variable>(
      [&](const auto& fn) { return InDeployment(d, fn); }, kVariables, d, key,
      [&](Conn& c, const Rows& r) { return VariableFromRow(c, r, 0, d); }, mutate,
      [&](Conn& c, const Variable& x) { return WriteVariable(c, d, x, key); });
}

Status Store::DeleteVariable(const DeploymentId& d, std::string_view key) {
  return InDeployment(d, [&](Conn& c) { return DeleteOne(c, kVariables, d, key); });
}

// ---- pools -----------------------------------------------------------------------------------

Result<Page<Pool>> Store::ListPools(const DeploymentId& d, const PageRequest& page) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  Page<Pool> out;
  ASSIGN_OR_RETURN(Rows r, ListPage(*c, kPools, d, page, &out.total));
  for (int i = 0; i < r.size(); ++i) out.items.push_back(PoolFromRow(r, i));
  return out;
}

Result<Pool> Store::GetPool(const DeploymentId& d, std::string_view name) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(Rows r, SelectOne(*c, kPools, d, name, false));
  return PoolFromRow(r, 0);
}

Status Store::CreatePool(const DeploymentId& d, const Pool& p) {
  return InDeployment(d, [&](Conn& c) {
    return Conflict(
        c.Exec("INSERT INTO pools (deployment_id, name, slots, description, "
               "include_deferred) VALUES ($1, $2, $3, $4, $5)",
               {d.value(), p.name, N(p.slots), Opt(p.description), B(p.include_deferred)})
            .status(),
        kPools, p.name);
  });
}

Result<Pool> Store::UpdatePool(const DeploymentId& d, std::string_view name,
                               const std::function<Status(Pool&)>& mutate) {
  return ReadModifyWrite<Pool>(
      [&](const auto& fn) { return InDeployment(d, fn); }, kPools, d, name,
      [](Conn&, const Rows& r) -> Result<Pool> { return PoolFromRow(r, 0); }, mutate,
      [&](Conn& c, const Pool& x) -> Status {
        if (name == model::kDefaultPool && x.name != model::kDefaultPool) {
          return FailedPrecondition(
              "Only slots, description and include_deferred can be modified on Default Pool");
        }
        return Conflict(c.Exec("UPDATE pools SET name = $2, slots = $3, description = $4, "
                               "include_deferred = $5 WHERE deployment_id = $1 AND name = $6",
                               {d.value(), x.name, N(x.slots), Opt(x.description),
                                B(x.include_deferred), std::string(name)})
                            .status(),
                        kPools, x.name);
      });
}

Status Store::DeletePool(const DeploymentId& d, std::string_view name) {
  if (name == model::kDefaultPool) return FailedPrecondition("Default Pool can't be deleted");
  return InDeployment(d, [&](Conn& c) { return DeleteOne(c, kPools, d, name); });
}

}  // namespace tandem::store
