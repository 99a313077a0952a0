#include "store/identities.h"

#include "store/sql.h"

namespace tandem::store {
namespace {

using pg::Rows;

const std::string kTokenColumns = "id, name, description, scope, scope_id, role, created_by, " +
                                  sql::Ts("created_at") + ", " + sql::Ts("expires_at") + ", " +
                                  sql::Ts("revoked_at");

Result<ApiToken> TokenFromRow(const Rows& r, int i) {
  ApiToken t;
  t.id = r.Text(i, 0);
  t.name = r.Text(i, 1);
  t.description = r.Text(i, 2);
  ASSIGN_OR_RETURN(t.binding.scope, auth::ParseScope(r.Text(i, 3)));
  t.binding.scope_id = r.Text(i, 4);
  ASSIGN_OR_RETURN(t.binding.role, auth::ParseRole(t.binding.scope, r.Text(i, 5)));
  t.created_by = r.Text(i, 6);
  t.created_at = r.Text(i, 7);
  if (!r.IsNull(i, 8)) t.expires_at = r.Text(i, 8);
  if (!r.IsNull(i, 9)) t.revoked_at = r.Text(i, 9);
  return t;
}

const std::string kWorkerColumns = "id, name, description, deployment_id, created_by, " +
                                   sql::Ts("created_at") + ", " + sql::Ts("expires_at") + ", " +
                                   sql::Ts("revoked_at");

WorkerCredential WorkerFromRow(const Rows& r, int i) {
  WorkerCredential w;
  w.id = r.Text(i, 0);
  w.name = r.Text(i, 1);
  w.description = r.Text(i, 2);
  if (!r.IsNull(i, 3)) w.deployment_id = r.Text(i, 3);
  w.created_by = r.Text(i, 4);
  w.created_at = r.Text(i, 5);
  if (!r.IsNull(i, 6)) w.expires_at = r.Text(i, 6);
  if (!r.IsNull(i, 7)) w.revoked_at = r.Text(i, 7);
  return w;
}

Workspace WorkspaceFromRow(const Rows& r, int i) {
  return {r.Text(i, 0), r.Text(i, 1), r.Text(i, 2), r.Text(i, 3)};
}

const std::string kWorkspaceColumns = "id, name, description, " + sql::Ts("created_at");

bool ValidName(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '-' && c != '_'))) return false;
  }
  return true;
}

}  // namespace

Result<Workspace> Identities::CreateWorkspace(const std::string& name,
                                              const std::string& description) {
  if (!ValidName(name)) {
    return InvalidArgument(
        "a workspace name is 1 to 64 of a-z, 0-9, '-' and '_', starting with "
        "a letter or digit");
  }
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  Result<Rows> r = c->Exec(
      "INSERT INTO workspaces (name, description) VALUES ($1, $2) RETURNING " + kWorkspaceColumns,
      {name, description});
  if (r.status().code() == Code::kAlreadyExists) {
    return AlreadyExists("a workspace named `" + name + "` already exists");
  }
  RETURN_IF_ERROR(r.status());
  return WorkspaceFromRow(*r, 0);
}

Result<std::vector<Workspace>> Identities::ListWorkspaces() {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(Rows r,
                   c->Exec("SELECT " + kWorkspaceColumns + " FROM workspaces ORDER BY name"));
  std::vector<Workspace> out;
  out.reserve(r.size());
  for (int i = 0; i < r.size(); ++i) out.push_back(WorkspaceFromRow(r, i));
  return out;
}

Result<Workspace> Identities::GetWorkspace(std::string_view ref) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(Rows r, c->Exec("SELECT " + kWorkspaceColumns +
                                       " FROM workspaces WHERE name = $1 OR id::text = lower($1)",
                                   {std::string(ref)}));
  if (r.size() == 0) return NotFound("no workspace named or with id `" + std::string(ref) + "`");
  return WorkspaceFromRow(r, 0);
}

namespace {

const std::string kUserColumns =
    "id, name, " + sql::Ts("created_at") + ", " + sql::Ts("disabled_at");

bool ValidUserName(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '-' && c != '_' && c != '.' && c != '@'))) return false;
  }
  return true;
}

// The user `ref` names (id or name), with its roles.
Result<User> LoadUser(pg::Conn& c, std::string_view ref) {
  ASSIGN_OR_RETURN(Rows r, c.Exec("SELECT " + kUserColumns +
                                      " FROM users WHERE name = $1 OR id::text = lower($1)",
                                  {std::string(ref)}));
  if (r.size() == 0) return NotFound("no user named or with id `" + std::string(ref) + "`");
  User u{r.Text(0, 0), r.Text(0, 1), {}, r.Text(0, 2), std::nullopt};
  if (!r.IsNull(0, 3)) u.disabled_at = r.Text(0, 3);
  ASSIGN_OR_RETURN(Rows b, c.Exec("SELECT scope, scope_id, role FROM role_bindings WHERE "
                                  "user_id = $1 ORDER BY scope, scope_id",
                                  {u.id}));
  for (int i = 0; i < b.size(); ++i) {
    auth::Binding x;
    ASSIGN_OR_RETURN(x.scope, auth::ParseScope(b.Text(i, 0)));
    x.scope_id = b.Text(i, 1);
    ASSIGN_OR_RETURN(x.role, auth::ParseRole(x.scope, b.Text(i, 2)));
    u.roles.push_back(std::move(x));
  }
  return u;
}

}  // namespace

Result<User> Identities::CreateUser(const std::string& name, const std::string& password_hash) {
  if (!ValidUserName(name)) {
    return InvalidArgument(
        "a user name is 1 to 64 of a-z, 0-9, '.', '_', '@' and '-', starting "
        "with a letter or digit");
  }
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  Result<Rows> r = c->Exec(
      "INSERT INTO users (id, name, password_hash) VALUES "
      "(gen_random_uuid(), $1, $2) RETURNING id",
      {name, password_hash});
  if (r.status().code() == Code::kAlreadyExists) {
    return AlreadyExists("a user named `" + name + "` already exists");
  }
  RETURN_IF_ERROR(r.status());
  return LoadUser(*c, r->Text(0, 0));
}

Result<std::vector<User>> Identities::ListUsers() {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(Rows r, c->Exec("SELECT id FROM users ORDER BY name"));
  std::vector<User> out;
  out.reserve(r.size());
  for (int i = 0; i < r.size(); ++i) {
    ASSIGN_OR_RETURN(User u, LoadUser(*c, r.Text(i, 0)));
    out.push_back(std::move(u));
  }
  return out;
}

Result<User> Identities::GetUser(std::string_view ref) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  return LoadUser(*c, ref);
}

Result<User> Identities::SetPassword(std::string_view ref, const std::string& password_hash) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(User u, LoadUser(*c, ref));
  RETURN_IF_ERROR(c->Exec("UPDATE users SET password_hash = $2, session_generation = "
                          "session_generation + 1 WHERE id = $1",
                          {u.id, password_hash})
                      .status());
  return LoadUser(*c, u.id);
}

Result<User> Identities::SetDisabled(std::string_view ref, bool disabled) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(User u, LoadUser(*c, ref));
  RETURN_IF_ERROR(c->Exec(disabled ? "UPDATE users SET disabled_at = coalesce(disabled_at, now()), "
                                     "session_generation = session_generation + 1 WHERE id = $1"
                                   : "UPDATE users SET disabled_at = NULL WHERE id = $1",
                          {u.id})
                      .status());
  return LoadUser(*c, u.id);
}

Result<User> Identities::Grant(std::string_view ref, const auth::Binding& b) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(User u, LoadUser(*c, ref));
  RETURN_IF_ERROR(c->Exec("INSERT INTO role_bindings (user_id, scope, scope_id, role) VALUES "
                          "($1, $2, $3, $4) ON CONFLICT (user_id, scope, scope_id) DO UPDATE "
                          "SET role = EXCLUDED.role",
                          {u.id, std::string(auth::ScopeName(b.scope)), b.scope_id,
                           std::string(auth::RoleName(b.role))})
                      .status());
  return LoadUser(*c, u.id);
}

Result<User> Identities::Ungrant(std::string_view ref, auth::Scope scope,
                                 const std::string& scope_id) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(User u, LoadUser(*c, ref));
  ASSIGN_OR_RETURN(Rows r, c->Exec("DELETE FROM role_bindings WHERE user_id = $1 AND scope = $2 "
                                   "AND scope_id = $3 RETURNING role",
                                   {u.id, std::string(auth::ScopeName(scope)), scope_id}));
  if (r.size() == 0) {
    return NotFound("user `" + u.name + "` has no role on that " +
                    std::string(auth::ScopeName(scope)));
  }
  return LoadUser(*c, u.id);
}

Result<Credentials> Identities::CredentialsOf(std::string_view name) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(Rows r, c->Exec("SELECT id, coalesce(password_hash, ''), disabled_at IS NOT "
                                   "NULL, session_generation FROM users WHERE name = $1",
                                   {std::string(name)}));
  if (r.size() == 0) return NotFound("no such user");
  return Credentials{r.Text(0, 0), r.Text(0, 1), r.Bool(0, 2), r.Int(0, 3)};
}

Result<auth::Principal> Identities::AuthenticateSession(const std::string& user_id,
                                                        int64_t generation) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(Rows r, c->Exec("SELECT disabled_at IS NOT NULL, session_generation <> $2 "
                                   "FROM users WHERE id::text = $1",
                                   {user_id, std::to_string(generation)}));
  if (r.size() == 0) return Unauthenticated("the session's user no longer exists");
  if (r.Bool(0, 0)) return Unauthenticated("the user is disabled");
  if (r.Bool(0, 1)) {
    return Unauthenticated("the session ended when the user's password changed: log in again");
  }
  ASSIGN_OR_RETURN(User u, LoadUser(*c, user_id));
  auth::Principal p;
  p.kind = auth::Principal::Kind::kUser;
  p.id = u.id;
  p.name = "user " + u.name;
  p.bindings = std::move(u.roles);
  return p;
}

Result<ApiToken> Identities::CreateToken(ApiToken t, const std::string& secret_hash,
                                         std::optional<int64_t> expires_in_seconds) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(
      Rows r,
      c->Exec(
          "INSERT INTO api_tokens (id, name, description, secret_sha256, scope, scope_id, "
          "role, created_by, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
          "now() + make_interval(secs => $9::bigint)) RETURNING " +
              kTokenColumns,
          {t.id, t.name, t.description, secret_hash, std::string(auth::ScopeName(t.binding.scope)),
           t.binding.scope_id, std::string(auth::RoleName(t.binding.role)), t.created_by,
           sql::Opt(expires_in_seconds ? std::optional(std::to_string(*expires_in_seconds))
                                       : std::nullopt)}));
  return TokenFromRow(r, 0);
}

Result<std::vector<ApiToken>> Identities::ListTokens(auth::Scope scope,
                                                     const std::string& scope_id) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(Rows r, c->Exec("SELECT " + kTokenColumns +
                                       " FROM api_tokens WHERE scope = $1 AND scope_id = $2 "
                                       "ORDER BY created_at DESC, id",
                                   {std::string(auth::ScopeName(scope)), scope_id}));
  std::vector<ApiToken> out;
  for (int i = 0; i < r.size(); ++i) {
    ASSIGN_OR_RETURN(ApiToken t, TokenFromRow(r, i));
    out.push_back(std::move(t));
  }
  return out;
}

Result<ApiToken> Identities::RevokeToken(auth::Scope scope, const std::string& scope_id,
                                         const std::string& id) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(Rows r,
                   c->Exec("UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE "
                           "scope = $1 AND scope_id = $2 AND id = $3 RETURNING " +
                               kTokenColumns,
                           {std::string(auth::ScopeName(scope)), scope_id, id}));
  if (r.size() == 0)
    return NotFound("no token `" + id + "` on this " + std::string(auth::ScopeName(scope)));
  return TokenFromRow(r, 0);
}

Result<auth::Principal> Identities::AuthenticateToken(const auth::TokenParts& t) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(Rows r, c->Exec("SELECT secret_sha256, revoked_at IS NOT NULL, "
                                   "coalesce(expires_at <= now(), false), name, scope, scope_id, "
                                   "role FROM api_tokens WHERE id = $1",
                                   {t.id}));
  // The same answer for an unknown id and a wrong secret: which ids exist is not told.
  if (r.size() == 0 || !auth::SameHash(r.Text(0, 0), auth::SecretHash(t.secret))) {
    return Unauthenticated("the token is not valid");
  }
  if (r.Bool(0, 1)) return Unauthenticated("the token has been revoked");
  if (r.Bool(0, 2)) return Unauthenticated("the token has expired");
  auth::Principal p;
  p.kind = auth::Principal::Kind::kToken;
  p.id = t.id;
  p.name = "token " + r.Text(0, 3);
  auth::Binding b;
  ASSIGN_OR_RETURN(b.scope, auth::ParseScope(r.Text(0, 4)));
  b.scope_id = r.Text(0, 5);
  ASSIGN_OR_RETURN(b.role, auth::ParseRole(b.scope, r.Text(0, 6)));
  p.bindings.push_back(std::move(b));
  return p;
}

Result<WorkerCredential> Identities::CreateWorkerCredential(
    WorkerCredential w, const std::string& secret_hash, std::optional<int64_t> expires_in_seconds) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(
      Rows r, c->Exec("INSERT INTO worker_credentials (id, name, description, secret_sha256, "
                      "deployment_id, created_by, expires_at) VALUES ($1, $2, $3, $4, $5::uuid, "
                      "$6, now() + make_interval(secs => $7::bigint)) RETURNING " +
                          kWorkerColumns,
                      {w.id, w.name, w.description, secret_hash, sql::Opt(w.deployment_id),
                       w.created_by,
                       sql::Opt(expires_in_seconds
                                    ? std::optional(std::to_string(*expires_in_seconds))
                                    : std::nullopt)}));
  return WorkerFromRow(r, 0);
}

Result<std::vector<WorkerCredential>> Identities::ListWorkerCredentials(
    const std::optional<std::string>& deployment_id) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(Rows r, c->Exec("SELECT " + kWorkerColumns +
                                       " FROM worker_credentials WHERE deployment_id IS NOT "
                                       "DISTINCT FROM $1::uuid ORDER BY created_at DESC, id",
                                   {sql::Opt(deployment_id)}));
  std::vector<WorkerCredential> out;
  out.reserve(static_cast<size_t>(r.size()));
  for (int i = 0; i < r.size(); ++i) out.push_back(WorkerFromRow(r, i));
  return out;
}

Result<WorkerCredential> Identities::RevokeWorkerCredential(
    const std::optional<std::string>& deployment_id, const std::string& id) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(Rows r, c->Exec("UPDATE worker_credentials SET revoked_at = "
                                   "coalesce(revoked_at, now()) WHERE deployment_id IS NOT "
                                   "DISTINCT FROM $1::uuid AND id = $2 RETURNING " +
                                       kWorkerColumns,
                                   {sql::Opt(deployment_id), id}));
  if (r.size() == 0) {
    return NotFound("no worker credential `" + id + "` on this " +
                    (deployment_id ? "deployment" : "platform"));
  }
  return WorkerFromRow(r, 0);
}

Result<WorkerCredential> Identities::AuthenticateWorker(const auth::TokenParts& t) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(
      Rows r, c->Exec("SELECT " + kWorkerColumns +
                          ", secret_sha256, coalesce(expires_at <= now(), false), "
                          "w.deployment_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM deployments d "
                          "WHERE d.id = w.deployment_id AND d.deleted_at IS NULL) "
                          "FROM worker_credentials w WHERE id = $1",
                      {t.id}));
  // The same answer for an unknown id and a wrong secret: which ids exist is not told.
  if (r.size() == 0 || !auth::SameHash(r.Text(0, 8), auth::SecretHash(t.secret))) {
    return Unauthenticated("the worker credential is not valid");
  }
  WorkerCredential w = WorkerFromRow(r, 0);
  if (w.revoked_at) return Unauthenticated("the worker credential has been revoked");
  if (r.Bool(0, 9)) return Unauthenticated("the worker credential has expired");
  if (r.Bool(0, 10)) return Unauthenticated("the worker credential's deployment was deleted");
  return w;
}

Result<bool> Identities::Bootstrap(const auth::TokenParts& t) {
  bool stored = false;
  Status s = pool_->WithTx([&](pg::Conn& c) -> Status {
    // One bootstrap at a time, however many regions or restarts race.
    RETURN_IF_ERROR(c.Exec("LOCK TABLE api_tokens IN EXCLUSIVE MODE").status());
    ASSIGN_OR_RETURN(Rows r, c.Exec("SELECT (SELECT count(*) FROM api_tokens) + "
                                    "(SELECT count(*) FROM users)"));
    if (r.Int(0, 0) > 0) return Status::Ok();
    RETURN_IF_ERROR(c.Exec("INSERT INTO api_tokens (id, name, description, secret_sha256, scope, "
                           "scope_id, role, created_by) VALUES ($1, 'bootstrap', "
                           "'The first platform owner, made when the platform was set up.', $2, "
                           "'platform', '', 'owner', 'setup')",
                           {t.id, auth::SecretHash(t.secret)})
                        .status());
    stored = true;
    return Status::Ok();
  });
  RETURN_IF_ERROR(s);
  return stored;
}

Result<auth::Target> Identities::TargetOf(std::string_view deployment_ref) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(Rows r, c->Exec("SELECT id, workspace_id FROM deployments WHERE deleted_at IS "
                                   "NULL AND (name = $1 OR id::text = lower($1))",
                                   {std::string(deployment_ref)}));
  if (r.size() == 0) {
    return NotFound("no deployment named or with id `" + std::string(deployment_ref) + "`");
  }
  return auth::Target{r.Text(0, 1), r.Text(0, 0)};
}

}  // namespace tandem::store
