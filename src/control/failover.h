// Failover and failback: the control plane's durable state machine that moves the active role
// from one region to the other.
//
// Planned (switchover, every failback), from A active at epoch e to B:
//   stepping_down   A stops starting tasks, drains up to drain_timeout, gives up its lease and
//                   answers its final WAL position.
//   catching_up     B replays up to that position.
//   raising_epoch   the control plane's voter and B promise e+1 (a majority of the three voters):
//                   neither renews a lease below e+1 any more.
//   waiting_leases  until every lease either of them granted (to anyone but B) has expired.
//   promoting       B.Promote(e+1); then the pair row says B active at e+1.
//   publishing_dns  every host name of the pair is pointed at B in one signed DNS update
//                   (retried for up to dns_timeout; after that the control plane goes on
//                   retrying on its own and the operation says so).
//   rejoining       A is asked to become B's replica (best effort: the control plane re-asks).
// If it cannot reach "promoting" within planned_timeout it rolls back (A resumes, at e+1 when
// the epoch was already raised) or, when asked to, falls through to a forced failover.
//
// Forced (A gone): raising_epoch (also asks A to promise e+1, best effort, which fences it at
// once when it answers), waiting_leases (skipped when the operator declared A dead), promoting,
// rejoining. Loss is estimated from the last LSN seen on A and what B replayed.
//
// Every step is written to the ControlStore before it is acted on, so a restarted control plane
// resumes: before "promoting" a planned operation rolls back and a forced one starts again from
// raising_epoch (every step is idempotent); from "promoting" on it promotes again (Promote is
// idempotent for one epoch) and finishes. The pair row's active region changes only after
// Promote returned OK, and nothing is rolled back once "promoting" is recorded, so two regions
// are never both promoted.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "base/clock.h"
#include "base/status.h"
#include "control/control_store.h"
#include "control/region_link.h"
#include "dr/lease.h"

namespace tandem::control {

struct FailoverOptions {
  Duration drain_timeout = std::chrono::seconds(60);     // how long the old primary drains
  Duration planned_timeout = std::chrono::seconds(120);  // a planned op must reach "promoting"
  Duration poll = std::chrono::milliseconds(20);         // between checks while waiting
  Duration lease = std::chrono::seconds(2);  // the longest lease any holder asks for
  // How long to keep asking the target to promote before the operation is marked failed.
  Duration promote_timeout = std::chrono::seconds(30);
  // How long the publishing_dns step retries a DNS update that fails.
  Duration dns_timeout = std::chrono::seconds(10);
  // A failback is refused while the original primary replays further behind than this.
  uint64_t failback_max_lag_bytes = uint64_t{16} << 20;
};

struct FailoverOutcome {
  std::string state;   // the operation's end state
  std::string detail;  // a sentence or two: what happened, and why when it did not succeed
  int64_t epoch = 0;   // the pair's epoch afterwards
  std::string active;  // the pair's active region afterwards
  int64_t loss_bytes = -1;
  double loss_seconds = -1;
  double rto_seconds = -1;
};

// Drives one operation at a time. Owns no thread: the control plane calls Run or Resume on its
// own thread, and they return when the operation has ended. Not thread-safe; `store`, `voter`
// and `clock` must outlive it.
class Failover {
 public:
  // `voter` is the control plane's own voter. `link(name)` returns the link to a region (nullptr
  // for an unknown name). `last_view(name)` returns the control plane's latest health-check view
  // of a region (nullopt if never reached), used to estimate the loss of a forced failover.
  // `step(op, message)` is called for each step and at the end (op.state then says which), after
  // the store has recorded it; the caller records events or prints. `publish_dns(region)`, when
  // set, points the pair's host names at `region` (the publishing_dns step).
  Failover(ControlStore* store, dr::Voter* voter, Clock* clock, FailoverOptions opts,
           std::function<RegionLink*(const std::string&)> link,
           std::function<std::optional<RegionView>(const std::string&)> last_view,
           std::function<void(const OperationRow&, const std::string&)> step,
           std::function<Status(const std::string&)> publish_dns = {});

  // Checks a request without changing anything. InvalidArgument for an unknown kind or mode (a
  // failback is always planned). FailedPrecondition with a sentence when an operation is
  // running; when the target is the active region, unreachable, not a standby, or (planned) not
  // streaming; when (planned) the active region cannot be reached; when (failback) the original
  // primary is already active or its reverse sync has not caught up (resync_state not
  // "streaming", or more than failback_max_lag_bytes behind).
  Status Check(const std::string& kind, const std::string& mode, bool declare_dead);

  // Check, then records a new running operation: from the active region to the standby
  // (failover) or to the original primary (failback), from the pair's epoch to the next, asked
  // for by `started_by`.
  Result<OperationRow> Begin(const std::string& kind, const std::string& mode, bool fall_through,
                             bool declare_dead, const std::string& started_by);

  // Drives a running operation from its start to an end state. An error means the store could
  // not record a step; the operation then stays running and Resume finishes it later.
  Result<FailoverOutcome> Run(OperationRow op);

  // Finishes an operation found running after a control plane restart: before "promoting", a
  // planned one rolls back (or, with fall_through, goes on as forced) and a forced one starts
  // again from raising_epoch; from "promoting" on, it promotes (again) and finishes.
  Result<FailoverOutcome> Resume(OperationRow op);

 private:
  Result<FailoverOutcome> Planned(OperationRow& op, RegionLink* from, RegionLink* to);
  // From raising_epoch. `final_lsn`: the old primary's last position when it stepped down.
  Result<FailoverOutcome> Forced(OperationRow& op, RegionLink* from, RegionLink* to,
                                 std::optional<uint64_t> final_lsn, MonoTime rto_from);
  // From promoting.
  Result<FailoverOutcome> Promote(OperationRow& op, RegionLink* from, RegionLink* to,
                                  MonoTime rto_from);
  // A planned operation that cannot finish: falls through when asked to, else rolls back.
  Result<FailoverOutcome> GiveUp(OperationRow& op, RegionLink* from, RegionLink* to,
                                 const std::string& why, std::optional<uint64_t> final_lsn,
                                 MonoTime rto_from);
  // Resumes the old primary at epoch_to when the control plane's voter has promised it, else at
  // epoch_from; `detail` says why.
  Result<FailoverOutcome> RollBack(OperationRow& op, RegionLink* from, const std::string& detail);
  // The control plane's voter and `to` promise op.epoch_to. Answers how long until every lease
  // either granted to anyone but `to` has expired.
  Result<Duration> RaiseEpoch(const OperationRow& op, RegionLink* to);

  // Records op at `step` in the store, then tells the caller.
  Status Record(OperationRow& op, const std::string& step, const std::string& message);
  // Records op's end state and builds the outcome from the pair row.
  Result<FailoverOutcome> Finish(OperationRow& op, const std::string& state,
                                 const std::string& detail);
  // Sleeps in steps of opts_.poll until `d` has passed (true) or `deadline` came first (false).
  bool WaitFor(Duration d, std::optional<MonoTime> deadline);
  int64_t WallMs() const;

  // Constant after construction.
  ControlStore* const store_;
  dr::Voter* const voter_;
  Clock* const clock_;
  const FailoverOptions opts_;
  const std::function<RegionLink*(const std::string&)> link_;
  const std::function<std::optional<RegionView>(const std::string&)> last_view_;
  const std::function<void(const OperationRow&, const std::string&)> step_;
  const std::function<Status(const std::string&)> publish_dns_;
};

}  // namespace tandem::control
