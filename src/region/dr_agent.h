// The region agent's part in the pair: its role, its lease, and the failover steps the control
// plane asks of it (docs/disaster-recovery.md, "Roles" and "Fencing: epochs and leases").
//
// Roles:
//   active        the primary: its PostgreSQL takes writes; it schedules runs, starts tasks and
//                 accepts API writes only while it holds an unexpired lease for its epoch.
//   standby       its PostgreSQL streams from the peer; it answers reads, refuses writes (503
//                 naming the active region) and starts nothing.
//   stepped_down  a primary that stopped acting for a planned failover; waits for promote of the
//                 peer (then rejoin) or resume (rollback).
//   fenced        saw a higher epoch than its own while it thought itself active: stops at once,
//                 and rejoins the peer as a replica once the peer is active.
//   rejoining     becoming a replica of the peer (pg_rewind, or a fresh base backup).
//
// The role, the epoch and the highest epoch promised are kept in <state_dir>/dr.json, written
// (fsynced) before a change takes effect, so a restarted agent never acts on less than it knew.
// The agent is also one of the three lease voters (dr::Voter), for its peer.
//
// Threads: a lease thread (renews every lease_renew_ms while active), a monitor thread (samples
// PostgreSQL every 250 ms for status and manages synchronous mode), a heartbeat thread (a timed
// commit every 500 ms while acting), and a rejoin thread while rejoining. Every public method is
// thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/metrics.h"
#include "base/status.h"
#include "control/region_link.h"
#include "region/config.h"
#include "rpc/client.h"

namespace tandem::pg {
class Server;
struct Upstream;
}  // namespace tandem::pg
namespace tandem::store {
class DrStore;
}
namespace tandem::dr {
class Voter;
class HolderLease;
}  // namespace tandem::dr
namespace tandem::rpc {
class Client;
}
namespace tandem::api {
class Router;
struct Request;
}  // namespace tandem::api

namespace tandem::region {

class TaskLogs;

// What dr.json holds.
struct DrLocalState {
  std::string role;      // active, standby, stepped_down, fenced, rejoining
  int64_t epoch = 1;     // the epoch the role is held in
  int64_t promised = 1;  // the highest epoch this region has promised (as a voter)
};

class DrAgent {
 public:
  struct Hooks {
    // The region may start its local workers (true) or must stop them, killing their tasks
    // (false: fenced, stepped down, rejoining). Called from the agent's threads, never with the
    // agent's locks held.
    std::function<void(bool)> workers;
    // Ends the Execution API's waiting claims at once (a step-down must not wait them out).
    std::function<void()> wake_claims;
  };

  // Reads dr.json (or, on the very first start, takes the configured initial role).
  static Result<std::unique_ptr<DrAgent>> Open(const RegionConfig& cfg, std::string credential,
                                               MetricsRegistry* metrics);
  ~DrAgent();

  // How this start must bring up PostgreSQL. Before Start(): may consult the peer and the
  // control plane, so that a region that comes back after a failover never starts its
  // PostgreSQL as a primary that nobody will grant a lease to.
  DrLocalState StartState();
  // The replication source when this region is (or becomes) a replica of its peer.
  pg::Upstream PeerUpstream() const;
  // The slot name a region's replica uses on its primary.
  static std::string SlotFor(const std::string& region);

  // Starts the agent's threads. `pg` and `store` must outlive it.
  void Start(pg::Server* pg, store::DrStore* store, Hooks hooks);
  void Stop();

  // The region may schedule runs and start tasks now.
  bool MayAct() const;
  // Unauthenticated unless the request carries the pair's internal credential.
  Status CheckCredential(const api::Request& req) const;
  // Admission of an API request (api::ServerOptions::admit): reads always; writes only while
  // active with a valid lease; the value is held while the write runs.
  Result<std::shared_ptr<void>> Admit(const api::Request& req);
  // A request that names a deployment by host name is for the active region: OK while this
  // region is active and holds its lease; Unavailable (503) while active without a lease (it
  // may have been replaced); else Misdirected (HTTP 421) naming the active region and its
  // address. A client that followed a stale DNS answer thus looks the name up again instead of
  // reading a replica's data or having its write refused.
  Status ServesHostNames(const std::string& host) const;
  // The internal DR API (/internal/v1/dr/...), for the control plane and the peer, and the
  // peer's task log chunks (/internal/v1/logs/chunks).
  void RegisterRoutes(api::Router& router);

  // The region's task logs, before Start() and before a rejoin at start: shipped to the peer
  // while this region acts, flushed by a step-down, their backlog discarded by a rejoin.
  void AttachTaskLogs(TaskLogs* logs) { logs_ = logs; }
  // What the region's image replicator has left to copy, for View(): the count and the last
  // error. Set before Start().
  void AttachImages(std::function<std::pair<int64_t, std::string>()> images) {
    images_ = std::move(images);
  }

  control::RegionView View() const;
  DrLocalState Local() const;

  // At start, when StartState() says fenced or rejoining: becomes a replica of the peer before
  // the region serves (blocks until the peer is active and the rewind or base backup is done).
  Status RejoinAtStart(pg::Server* pg);

 private:
  DrAgent(const RegionConfig& cfg, std::string credential, MetricsRegistry* metrics,
          DrLocalState st, bool first_start);

  Status Persist(const DrLocalState& st);  // REQUIRES: mu_ held
  void LeaseLoop();
  void MonitorLoop();
  void SampleOnce();
  void HeartbeatLoop();
  void RejoinLoop(int64_t epoch);
  // Renews once; true when it holds a valid lease afterwards.
  bool RenewOnce();
  // A voter answered with a higher epoch than ours: stop acting and rejoin the peer.
  void Fence(int64_t higher, const std::string& why);
  void SetActing(bool acting);
  void StartRejoin(int64_t epoch);  // REQUIRES: mu_ not held
  Status RejoinNow(int64_t epoch);
  bool WaitStop(Duration d);  // false when stopping
  void ManageSync();

  Result<std::string> HandleLease(const std::string& body);
  Result<std::string> HandleRelease(const std::string& body);
  Result<std::string> HandlePromise(const std::string& body);
  Result<std::string> HandleStepDown(const std::string& body);
  Result<std::string> HandleResume(const std::string& body);
  Result<std::string> HandlePromote(const std::string& body);
  Result<std::string> HandleRejoin(const std::string& body);
  Result<std::string> HandleLogChunks(const std::string& body);
  Result<std::string> HandleLogSizes(const std::string& body);

  const RegionConfig cfg_;
  const DrSettings dr_;
  const std::string credential_;
  MetricsRegistry* const metrics_;
  std::unique_ptr<rpc::Client> control_;
  std::unique_ptr<rpc::Client> peer_;
  // Lease requests per voter, kept until answered (see RenewOnce).
  std::mutex lease_calls_mu_;
  std::map<const rpc::Client*, std::shared_future<Result<rpc::Reply>>> lease_calls_;
  std::unique_ptr<dr::Voter> voter_;
  std::unique_ptr<dr::HolderLease> holder_;

  pg::Server* pg_ = nullptr;
  store::DrStore* store_ = nullptr;
  TaskLogs* logs_ = nullptr;
  std::function<std::pair<int64_t, std::string>()> images_;
  Hooks hooks_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  DrLocalState st_;                          // guarded by mu_
  bool stopping_ = false;                    // guarded by mu_
  bool draining_ = false;                    // guarded by mu_: planned failover, starts nothing
  bool promoting_ = false;  // guarded by mu_: promoted, not yet reconciled; starts nothing
  bool acting_ = false;                      // guarded by mu_: workers started
  std::string resync_state_;                 // guarded by mu_
  std::string resync_detail_;                // guarded by mu_
  bool rejoin_running_ = false;              // guarded by mu_
  control::RegionView sample_;               // guarded by mu_: the last PostgreSQL sample
  bool sampled_ = false;  // guarded by mu_: sample_ holds a real reading
  std::vector<double> commit_ms_;            // guarded by mu_: recent heartbeat commit times
  bool sync_on_ = false;                     // guarded by mu_: synchronous_standby_names is set
  std::optional<MonoTime> peer_gone_since_;  // guarded by mu_ (synchronous mode)
  // guarded by mu_: the peer has streamed from this region since it became the primary
  bool peer_streamed_ = false;
  bool sync_applied_ = false;  // guarded by mu_: PostgreSQL's setting was written by this process
  std::mutex transition_mu_;  // one failover step at a time (promote, step-down, resume, rejoin)
  // Writes in flight (admitted, not yet answered), and whether new ones are refused: a
  // step-down closes the gate, then waits on cv_ for the count to reach zero.
  int writes_in_flight_ = 0;  // guarded by mu_
  bool gate_closed_ = false;  // guarded by mu_

  std::thread lease_thread_, monitor_thread_, heartbeat_thread_, rejoin_thread_;
};

}  // namespace tandem::region
