// Principals and workspaces in the metadata database: the workspaces deployments belong to, the
// API tokens (kept as hashes) and what a request's credential turns into — a Principal with its
// roles (auth/policy.h decides what those allow).
//
// They live beside the deployments so that they fail over with them: the region left after a
// failover authenticates exactly as the lost one did, with or without the control plane, and a
// revoked token is revoked on the standby as soon as the revocation has replicated.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/api_token.h"
#include "auth/policy.h"
#include "base/status.h"
#include "pg/conn.h"

namespace tandem::store {

struct Workspace {
  std::string id;
  std::string name;
  std::string description;
  std::string created_at;
};

struct User {
  std::string id;
  std::string name;
  std::vector<auth::Binding> roles;
  std::string created_at;
  std::optional<std::string> disabled_at;
};

// What a login checks a password against.
struct Credentials {
  std::string user_id;
  std::string password_hash;  // "" when the user has none
  bool disabled = false;
  int64_t session_generation = 0;  // what a session issued now carries
};

struct ApiToken {
  std::string id;  // the public part
  std::string name;
  std::string description;
  auth::Binding binding;  // its one role
  std::string created_by;
  std::string created_at;
  std::optional<std::string> expires_at;  // RFC 3339
  std::optional<std::string> revoked_at;
};

// A worker credential: what a worker presents to the Execution API.
struct WorkerCredential {
  std::string id;  // the public part
  std::string name;
  std::string description;
  std::optional<std::string> deployment_id;  // nullopt: the platform's pool, every deployment
  std::string created_by;
  std::string created_at;
  std::optional<std::string> expires_at;  // RFC 3339
  std::optional<std::string> revoked_at;
};

class Identities {
 public:
  explicit Identities(pg::Pool* pool) : pool_(pool) {}

  // ---- workspaces
  // AlreadyExists when the name is taken; InvalidArgument for a name that is not 1–64 of
  // [a-z0-9-_], starting with a letter or digit.
  Result<Workspace> CreateWorkspace(const std::string& name, const std::string& description);
  Result<std::vector<Workspace>> ListWorkspaces();
  // By id or name.
  Result<Workspace> GetWorkspace(std::string_view ref);

  // ---- API tokens
  // Stores the token: `t.id`, `t.name` and `t.binding` set; `expires_in_seconds` > 0 sets the
  // expiry. Returns it as stored.
  Result<ApiToken> CreateToken(ApiToken t, const std::string& secret_hash,
                               std::optional<int64_t> expires_in_seconds);
  // The tokens made for one scope, revoked ones included, newest first.
  Result<std::vector<ApiToken>> ListTokens(auth::Scope scope, const std::string& scope_id);
  // NotFound unless the token exists on that scope; revoking twice is not an error.
  Result<ApiToken> RevokeToken(auth::Scope scope, const std::string& scope_id,
                               const std::string& id);

  // ---- worker credentials (the same shape and lifetime rules as API tokens)
  Result<WorkerCredential> CreateWorkerCredential(WorkerCredential w,
                                                  const std::string& secret_hash,
                                                  std::optional<int64_t> expires_in_seconds);
  // A deployment's credentials, or (nullopt) the platform's, revoked ones included, newest
  // first.
  Result<std::vector<WorkerCredential>> ListWorkerCredentials(
      const std::optional<std::string>& deployment_id);
  // NotFound unless the credential exists there; revoking twice is not an error.
  Result<WorkerCredential> RevokeWorkerCredential(const std::optional<std::string>& deployment_id,
                                                  const std::string& id);
  // The credential `t` names, checked: Unauthenticated when it is unknown, its secret differs,
  // it was revoked or expired, or its deployment was deleted.
  Result<WorkerCredential> AuthenticateWorker(const auth::TokenParts& t);

  // ---- users
  // AlreadyExists when the name is taken; InvalidArgument for a name that is not 1–64 of
  // [a-z0-9._@-], starting with a letter or digit.
  Result<User> CreateUser(const std::string& name, const std::string& password_hash);
  Result<std::vector<User>> ListUsers();
  // By id or name.
  Result<User> GetUser(std::string_view ref);
  // A new password, or disabling: either ends every session the user has.
  Result<User> SetPassword(std::string_view ref, const std::string& password_hash);
  Result<User> SetDisabled(std::string_view ref, bool disabled);
  // Gives the user `b` (replacing the role it had on that scope), or takes its role there away.
  Result<User> Grant(std::string_view ref, const auth::Binding& b);
  Result<User> Ungrant(std::string_view ref, auth::Scope scope, const std::string& scope_id);

  // ---- authentication
  // A user's password hash by name, for a login. NotFound when there is no such user.
  Result<Credentials> CredentialsOf(std::string_view name);
  // The principal of a session of `generation`: Unauthenticated when the user is gone or
  // disabled, or the session predates its last password change (an older generation).
  Result<auth::Principal> AuthenticateSession(const std::string& user_id, int64_t generation);
  // The principal of an API token: Unauthenticated when it is unknown, its secret differs,
  // it was revoked or it expired (each with its own message, none echoing the token).
  Result<auth::Principal> AuthenticateToken(const auth::TokenParts& t);
  // On a platform with no token and no user yet, stores `t` as a platform owner token named
  // "bootstrap"; otherwise does nothing. True when it stored it.
  Result<bool> Bootstrap(const auth::TokenParts& t);

  // The workspace of a live deployment, by id or name: what a request on it is checked
  // against. NotFound when there is none.
  Result<auth::Target> TargetOf(std::string_view deployment_ref);

 private:
  pg::Pool* pool_;
};

}  // namespace tandem::store
