// The metadata store: deployments and everything they own, on the region's PostgreSQL.
//
// Store is the only module that writes SQL about deployments. Every method is one transaction;
// a method that fails has changed nothing. Secrets are sealed here on the way in and opened on
// the way out (callers see plaintext and decide what to mask), under the keyring's active data
// key (crypto/keyring.h); the keyring is kept in the database, wrapped under the pair's secret
// key, which Open() checks against the one the database was first written with.
//
// Deployments are referred to by id or by name (`ref`); deleted ones become tombstones so their
// ids are never reused.
//
// Thread-safety: all methods may be called from any thread; the pool serialises connections.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "crypto/keyring.h"
#include "crypto/secret_box.h"
#include "model/deployment.h"
#include "pg/conn.h"

namespace tandem::store {

// A data key of the keyring, as `tandem keys list` shows it (never its material).
struct DataKey {
  KeyId id;
  std::string state;  // active | retiring | retired
  std::string created_at;
  std::optional<std::string> retired_at;
  int64_t values = 0;  // secrets sealed under it now
};

struct KeyringView {
  std::vector<DataKey> keys;  // newest first
  // Secrets sealed directly under the pair's secret key, before the keyring existed; the next
  // rotation reseals them.
  int64_t unkeyed_values = 0;
};

struct KeyRotation {
  DataKey key;           // the new active key
  int64_t resealed = 0;  // values this rotation resealed
  std::vector<KeyId> retired;
};

class Store {
 public:
  // `pool` must outlive the Store. Fails with FailedPrecondition when `box` is not the key this
  // database's secrets were sealed with. REQUIRES: migrations applied. `replica`: the database
  // is a read-only replica (the check is read, never written).
  static Result<std::unique_ptr<Store>> Open(pg::Pool* pool, SecretBox box, bool replica = false);

  // ---- the keyring
  Result<KeyringView> ListKeys();
  // Makes a new data key active, reseals every secret under it in batches (each its own short
  // transaction, so the platform keeps serving), then retires each older key that no value uses
  // any more, dropping its material. Secrets written meanwhile are sealed under the new key. An
  // interrupted rotation leaves older keys `retiring`, still usable; the next one finishes it.
  Result<KeyRotation> RotateKey();

  // ---- deployments
  // Assigns the id and namespace; creates `default_pool` with config.default_pool_slots.
  Result<model::Deployment> CreateDeployment(model::Deployment d);
  Result<model::Page<model::Deployment>> ListDeployments(const model::PageRequest& page);
  Result<model::Deployment> GetDeployment(std::string_view ref);
  // The live deployment whose namespace (and so hostname) is `ns`.
  Result<DeploymentId> FindByNamespace(std::string_view ns);
  // Reads the deployment, lets `mutate` change it (id, namespace and timestamps are kept),
  // writes it back; all under a row lock. `mutate` may refuse by returning an error.
  Result<model::Deployment> UpdateDeployment(
      std::string_view ref, const std::function<Status(model::Deployment&)>& mutate);
  Status DeleteDeployment(std::string_view ref);
  Result<int64_t> CountDeployments();

  // ---- env vars
  Result<std::vector<model::EnvVar>> ListEnv(const DeploymentId& d);
  Status SetEnv(const DeploymentId& d, const model::EnvVar& v);  // insert or replace
  Status UnsetEnv(const DeploymentId& d, std::string_view key);

  // ---- connections
  Result<model::Page<model::Connection>> ListConnections(const DeploymentId& d,
                                                         const model::PageRequest& page);
  Result<model::Connection> GetConnection(const DeploymentId& d, std::string_view conn_id);
  Status CreateConnection(const DeploymentId& d, const model::Connection& c);
  Result<model::Connection> UpdateConnection(
      const DeploymentId& d, std::string_view conn_id,
      const std::function<Status(model::Connection&)>& mutate);
  Status DeleteConnection(const DeploymentId& d, std::string_view conn_id);

  // ---- variables
  Result<model::Page<model::Variable>> ListVariables(const DeploymentId& d,
                                                     const model::PageRequest& page);
  Result<model::Variable> GetVariable(const DeploymentId& d, std::string_view key);
  Status CreateVariable(const DeploymentId& d, const model::Variable& v);
  Result<model::Variable> UpdateVariable(const DeploymentId& d, std::string_view key,
                                         const std::function<Status(model::Variable&)>& mutate);
  Status DeleteVariable(const DeploymentId& d, std::string_view key);

  // ---- pools
  Result<model::Page<model::Pool>> ListPools(const DeploymentId& d, const model::PageRequest& page);
  Result<model::Pool> GetPool(const DeploymentId& d, std::string_view name);
  Status CreatePool(const DeploymentId& d, const model::Pool& p);
  Result<model::Pool> UpdatePool(const DeploymentId& d, std::string_view name,
                                 const std::function<Status(model::Pool&)>& mutate);
  // `default_pool` cannot be deleted (FailedPrecondition).
  Status DeletePool(const DeploymentId& d, std::string_view name);

 private:
  Store(pg::Pool* pool, SecretBox box);

  // Runs `fn` in one transaction that first takes a share lock on the live deployment `d`, so a
  // concurrent DeleteDeployment either waits for it or makes it fail with NotFound: nothing is
  // ever written under a deleted deployment.
  Status InDeployment(const DeploymentId& d, const std::function<Status(pg::Conn&)>& fn);
  // The active data key, loaded into keys_, under a share lock that a rotation waits for; made
  // (the first one) when there is none.
  Result<KeyId> ActiveKey(pg::Conn& c) const;
  // A new random data key with the next id, made active (ActiveKey loads it from its row, once
  // this transaction sees it); none when another transaction's active key got there first.
  Result<std::optional<DataKey>> InsertActiveKey(pg::Conn& c) const;
  // Loads data key `id` into keys_ (Internal when it is retired or unknown).
  Status LoadKey(pg::Conn& c, KeyId id) const;
  // Unwraps data key `id` from its stored `wrapped` column (bytea text) into keys_.
  Status AddWrappedKey(KeyId id, const std::string& wrapped_text) const;
  // Sealed bytea text for a parameter (under the active key), and back.
  Result<std::string> Seal(pg::Conn& c, std::string_view plain, const std::string& aad) const;
  Result<std::string> Unseal(pg::Conn& c, const std::string& bytea_text,
                             const std::string& aad) const;
  Result<model::Connection> ConnectionFromRow(pg::Conn& c, const pg::Rows& r, int i,
                                              const DeploymentId& d) const;
  Result<model::Variable> VariableFromRow(pg::Conn& c, const pg::Rows& r, int i,
                                          const DeploymentId& d) const;
  // One batch of RotateKey's reseal: how many values it resealed (0: none left).
  Result<int64_t> ResealBatch();
  Result<std::vector<KeyId>> RetireUnusedKeys();
  // Inserts, or replaces the row keyed `replacing`.
  Status WriteConnection(pg::Conn& c, const DeploymentId& d, const model::Connection& conn,
                         std::optional<std::string_view> replacing) const;
  Status WriteVariable(pg::Conn& c, const DeploymentId& d, const model::Variable& v,
                       std::optional<std::string_view> replacing) const;

  pg::Pool* const pool_;
  const SecretBox box_;   // the pair's secret key: the key check, and unkeyed values
  const SecretBox wrap_;  // derived from it: wraps the data keys
  mutable Keyring keys_;  // the data keys loaded so far
};

}  // namespace tandem::store
