// The protocol is described at the top of failover.h. Two rules shape this file:
//  - a step is recorded before it is acted on, so a restart knows the furthest the operation
//    may have gone;
//  - nothing is rolled back once "promoting" is recorded (the target may have promoted even if
//    its answer was lost), and the pair row names a new active region only after Promote
//    answered OK.
#include "control/failover.h"

#include <algorithm>
#include <cstdio>
#include <utility>

namespace tandem::control {
namespace {

constexpr const char* kRunning = "running";
constexpr const char* kSucceeded = "succeeded";
constexpr const char* kRolledBack = "rolled_back";
constexpr const char* kFailed = "failed";

constexpr const char* kStarted = "started";
constexpr const char* kSteppingDown = "stepping_down";
constexpr const char* kCatchingUp = "catching_up";
constexpr const char* kRaisingEpoch = "raising_epoch";
constexpr const char* kWaitingLeases = "waiting_leases";
constexpr const char* kRollingBack = "rolling_back";
constexpr const char* kPromoting = "promoting";
constexpr const char* kPublishingDns = "publishing_dns";
constexpr const char* kRejoining = "rejoining";

// "1.5 s", for sentences.
std::string Seconds(Duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", std::chrono::duration<double>(d).count());
  return buf;
}

std::string MiB(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

double SecondsSince(MonoTime t, MonoTime now) {
  return std::chrono::duration<double>(now - t).count();
}

// Appends a sentence to an operation's detail.
void Note(OperationRow& op, const std::string& sentence) {
  op.detail += op.detail.empty() ? sentence : "; " + sentence;
}

}  // namespace

Failover::Failover(ControlStore* store, dr::Voter* voter, Clock* clock, FailoverOptions opts,
                   std::function<RegionLink*(const std::string&)> link,
                   std::function<std::optional<RegionView>(const std::string&)> last_view,
                   std::function<void(const OperationRow&, const std::string&)> step,
                   std::function<Status(const std::string&)> publish_dns)
    : store_(store),
      voter_(voter),
      clock_(clock),
      opts_(opts),
      link_(std::move(link)),
      last_view_(std::move(last_view)),
      step_(std::move(step)),
      publish_dns_(std::move(publish_dns)) {}

int64_t Failover::WallMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_->Wall().time_since_epoch())
      .count();
}

Status Failover::Check(const std::string& kind, const std::string& mode, bool declare_dead) {
  // declare_dead changes nothing Check looks at: it only lets a forced failover skip the lease
  // wait, and a reachable old primary is fenced by its promise either way.
  (void)declare_dead;
  if (kind != "failover" && kind != "failback") {
    return InvalidArgument("unknown operation \"" + kind + "\" (failover or failback)");
  }
  if (mode != "planned" && mode != "forced") {
    return InvalidArgument("unknown mode \"" + mode + "\" (planned or forced)");
  }
  if (kind == "failback" && mode != "planned") {
    return InvalidArgument(
        "a failback is always planned; to promote the original primary while the active region "
        "is down, run a forced failover");
  }
  ASSIGN_OR_RETURN(std::optional<OperationRow> running, store_->RunningOperation());
  if (running) {
    return FailedPrecondition("operation " + std::to_string(running->id) + " (" + running->mode +
                              " " + running->kind + " from " + running->from + " to " +
                              running->to + ") is still running, at step \"" + running->step +
                              "\"; wait for it to end");
  }
  ASSIGN_OR_RETURN(PairRow pair, store_->Pair());
  const bool failback = kind == "failback";
  const std::string target = failback ? pair.original_primary : pair.standby;
  if (failback && pair.active == pair.original_primary) {
    return FailedPrecondition(pair.active +
                              ", the original primary, is already active: there is nothing to "
                              "fail back");
  }
  if (target == pair.active) {
    return FailedPrecondition(target + " is the active region already");
  }
  RegionLink* to = link_(target);
  if (to == nullptr) return FailedPrecondition("no link to region " + target);
  Result<RegionView> tv = to->State();
  if (!tv.ok()) {
    return FailedPrecondition(target + " cannot be reached (" + tv.status().message() + "); a " +
                              kind + " needs a reachable standby");
  }
  if (tv->role != "standby") {
    return FailedPrecondition(target + " is " + (tv->role.empty() ? "in no role" : tv->role) +
                              ", not a standby; only a standby can be promoted");
  }
  if (mode == "forced") return Status::Ok();

  if (!tv->streaming) {
    return FailedPrecondition(target + " is not streaming from " + pair.active + "; a planned " +
                              kind + " needs a standby that is streaming (when " + pair.active +
                              " is gone, run a forced failover)");
  }
  RegionLink* from = link_(pair.active);
  if (from == nullptr) return FailedPrecondition("no link to region " + pair.active);
  Result<RegionView> av = from->State();
  if (!av.ok()) {
    return FailedPrecondition("the active region " + pair.active + " cannot be reached (" +
                              av.status().message() + "); a planned " + kind +
                              " needs it to step down (run a forced failover instead)");
  }
  if (failback) {
    if (tv->resync_state != "streaming") {
      return FailedPrecondition(
          target + "'s reverse sync has not caught up (" +
          (tv->resync_state.empty() ? std::string("no resync under way") : tv->resync_state) +
          (tv->resync_detail.empty() ? "" : ": " + tv->resync_detail) +
          "); fail back once it is streaming");
    }
    const uint64_t lag = av->current_lsn > tv->replay_lsn ? av->current_lsn - tv->replay_lsn : 0;
    if (lag > opts_.failback_max_lag_bytes) {
      return FailedPrecondition(target + " is " + MiB(lag) + " behind " + pair.active +
                                " (a failback waits until it is at most " +
                                MiB(opts_.failback_max_lag_bytes) + " behind)");
    }
  }
  return Status::Ok();
}

Result<OperationRow> Failover::Begin(const std::string& kind, const std::string& mode,
                                     bool fall_through, bool declare_dead,
                                     const std::string& started_by) {
  RETURN_IF_ERROR(Check(kind, mode, declare_dead));
  ASSIGN_OR_RETURN(PairRow pair, store_->Pair());
  OperationRow op;
  op.kind = kind;
  op.mode = mode;
  op.from = pair.active;
  op.to = kind == "failback" ? pair.original_primary : pair.standby;
  op.epoch_from = pair.epoch;
  op.epoch_to = pair.epoch + 1;
  op.fall_through = fall_through;
  op.declare_dead = declare_dead;
  op.step = kStarted;
  op.started_ms = WallMs();
  op.started_by = started_by;
  return store_->BeginOperation(std::move(op));
}

Result<FailoverOutcome> Failover::Run(OperationRow op) {
  if (op.state != kRunning) {
    return FailedPrecondition("operation " + std::to_string(op.id) + " is " + op.state +
                              ", not running");
  }
  const MonoTime start = clock_->Now();
  ASSIGN_OR_RETURN(PairRow pair, store_->Pair());
  if (pair.epoch != op.epoch_from || pair.active != op.from) {
    return Finish(op, kFailed,
                  "the pair moved on (" + pair.active + " active at epoch " +
                      std::to_string(pair.epoch) + ") since the operation began");
  }
  RegionLink* from = link_(op.from);
  RegionLink* to = link_(op.to);
  if (to == nullptr || (from == nullptr && op.mode == "planned")) {
    return Finish(op, kFailed, "no link to region " + (to == nullptr ? op.to : op.from));
  }
  if (op.mode == "planned") return Planned(op, from, to);
  return Forced(op, from, to, std::nullopt, start);
}

Result<FailoverOutcome> Failover::Resume(OperationRow op) {
  if (op.state != kRunning) {
    return FailedPrecondition("operation " + std::to_string(op.id) + " is " + op.state +
                              ", not running");
  }
  RegionLink* from = link_(op.from);
  RegionLink* to = link_(op.to);
  if (to == nullptr) return Finish(op, kFailed, "no link to region " + op.to);
  // The monotonic clock restarted with the process: measure the RTO from the wall-clock start.
  const MonoTime start =
      clock_->Now() - std::chrono::milliseconds(std::max<int64_t>(0, WallMs() - op.started_ms));
  if (op.step == kPromoting || op.step == kPublishingDns || op.step == kRejoining) {
    return Promote(op, from, to, start);
  }
  if (op.mode == "planned" && !op.fall_through) {
    if (from == nullptr) return Finish(op, kFailed, "no link to region " + op.from);
    return RollBack(op, from, "the control plane restarted during the failover; rolled back");
  }
  if (op.mode == "planned") {
    op.mode = "forced";
    Note(op, "the control plane restarted during the planned " + op.kind +
                 "; falling through to a forced failover");
  }
  return Forced(op, from, to, std::nullopt, start);
}

Result<FailoverOutcome> Failover::Planned(OperationRow& op, RegionLink* from, RegionLink* to) {
  const MonoTime stepped_at = clock_->Now();
  const MonoTime deadline = stepped_at + opts_.planned_timeout;

  RETURN_IF_ERROR(Record(op, kSteppingDown,
                         "asking " + op.from + " to step down at epoch " +
                             std::to_string(op.epoch_from) + " (draining for up to " +
                             Seconds(opts_.drain_timeout) + ")"));
  Result<StepDownResult> sd = from->StepDown(op.epoch_from, opts_.drain_timeout);
  if (!sd.ok()) {
    return GiveUp(op, from, to, op.from + " did not step down: " + sd.status().message(),
                  std::nullopt, stepped_at);
  }
  const uint64_t final_lsn = sd->final_lsn;
  if (sd->still_running > 0) {
    Note(op, std::to_string(sd->still_running) + " task instance(s) were still running on " +
                 op.from + " when its drain timeout ran out");
  }
  if (clock_->Now() >= deadline) {
    return GiveUp(op, from, to,
                  "the planned timeout (" + Seconds(opts_.planned_timeout) + ") ran out while " +
                      op.from + " stepped down",
                  final_lsn, stepped_at);
  }

  RETURN_IF_ERROR(
      Record(op, kCatchingUp,
             "waiting for " + op.to + " to replay up to LSN " + std::to_string(final_lsn)));
  uint64_t replayed = 0;
  while (true) {
    Result<RegionView> v = to->State();
    if (v.ok()) {
      replayed = v->replay_lsn;
      if (replayed >= final_lsn) break;
    }
    if (clock_->Now() >= deadline) {
      return GiveUp(op, from, to,
                    op.to + " replayed up to LSN " + std::to_string(replayed) + " of " +
                        std::to_string(final_lsn) + " before the planned timeout (" +
                        Seconds(opts_.planned_timeout) + ") ran out",
                    final_lsn, stepped_at);
    }
    clock_->SleepFor(opts_.poll);
  }
  // Raising the epoch commits to waiting out the leases (at most `lease`); when less than that
  // is left, roll back now, while the old primary can still resume at its own epoch.
  if (deadline - clock_->Now() < opts_.lease) {
    return GiveUp(op, from, to,
                  "too little of the planned timeout (" + Seconds(opts_.planned_timeout) +
                      ") was left to wait out the leases",
                  final_lsn, stepped_at);
  }

  RETURN_IF_ERROR(
      Record(op, kRaisingEpoch,
             "the control plane and " + op.to + " promise epoch " + std::to_string(op.epoch_to)));
  Result<Duration> wait = RaiseEpoch(op, to);
  if (!wait.ok()) return GiveUp(op, from, to, wait.status().message(), final_lsn, stepped_at);

  RETURN_IF_ERROR(Record(op, kWaitingLeases,
                         "waiting " + Seconds(*wait) + " for every lease granted before epoch " +
                             std::to_string(op.epoch_to) + " to expire"));
  if (!WaitFor(*wait, deadline)) {
    return GiveUp(op, from, to,
                  "the planned timeout (" + Seconds(opts_.planned_timeout) +
                      ") ran out while the old leases expired",
                  final_lsn, stepped_at);
  }
  op.loss_bytes = 0;  // the target replayed everything the old primary wrote
  op.loss_seconds = 0;
  return Promote(op, from, to, stepped_at);
}

Result<FailoverOutcome> Failover::GiveUp(OperationRow& op, RegionLink* from, RegionLink* to,
                                         const std::string& why, std::optional<uint64_t> final_lsn,
                                         MonoTime rto_from) {
  if (op.fall_through) {
    op.mode = "forced";
    Note(op, "the planned " + op.kind + " could not finish (" + why +
                 "); falling through to a forced failover");
    return Forced(op, from, to, final_lsn, rto_from);
  }
  return RollBack(op, from, "rolled back: " + why);
}

Result<FailoverOutcome> Failover::RollBack(OperationRow& op, RegionLink* from,
                                           const std::string& detail) {
  // If the control plane's voter promised epoch_to, the old primary can no longer win a lease
  // below it: it resumes at epoch_to, and the pair moves there with it.
  const bool raised = voter_->promised() >= op.epoch_to;
  const int64_t epoch = raised ? op.epoch_to : op.epoch_from;
  RETURN_IF_ERROR(Record(op, kRollingBack,
                         "asking " + op.from + " to resume as the active region at epoch " +
                             std::to_string(epoch) + " (" + detail + ")"));
  if (raised) {
    ASSIGN_OR_RETURN(PairRow pair, store_->Pair());
    if (pair.epoch < epoch) {
      pair.epoch = epoch;
      RETURN_IF_ERROR(store_->SetPair(pair));
    }
  }
  Status resumed = from->Resume(epoch);
  if (!resumed.ok()) {
    return Finish(op, kFailed,
                  detail + "; but " + op.from + " did not resume (" + resumed.message() +
                      "), so no region is active: retry the operation, or run a forced "
                      "failover");
  }
  return Finish(op, kRolledBack, detail);
}

Result<Duration> Failover::RaiseEpoch(const OperationRow& op, RegionLink* to) {
  Result<Duration> own = voter_->Promise(op.epoch_to);
  if (!own.ok()) {
    return own.status().WithContext("the control plane could not promise epoch " +
                                    std::to_string(op.epoch_to));
  }
  // The control plane's own grants to the target do not keep the old primary alive.
  const Duration c_wait = voter_->OutstandingExcept(op.to);
  Result<PromiseResult> theirs = to->Promise(op.epoch_to);
  if (!theirs.ok()) {
    return theirs.status().WithContext(op.to + " did not promise epoch " +
                                       std::to_string(op.epoch_to));
  }
  return std::max(c_wait, theirs->outstanding);
}

Result<FailoverOutcome> Failover::Forced(OperationRow& op, RegionLink* from, RegionLink* to,
                                         std::optional<uint64_t> final_lsn, MonoTime rto_from) {
  RETURN_IF_ERROR(Record(op, kRaisingEpoch,
                         "the control plane and " + op.to + " promise epoch " +
                             std::to_string(op.epoch_to) + "; asking " + op.from +
                             " to promise it too"));
  Result<Duration> wait = RaiseEpoch(op, to);
  if (!wait.ok()) return Finish(op, kFailed, wait.status().message());

  // Best effort: a reachable old primary that promises the new epoch stops acting at once.
  Result<PromiseResult> fenced =
      from ? from->Promise(op.epoch_to) : Result<PromiseResult>(Unavailable("no link"));
  if (fenced.ok()) {
    Note(op, op.from + " promised epoch " + std::to_string(op.epoch_to) + " and is fenced");
  } else {
    Note(op, op.from + " could not be told about epoch " + std::to_string(op.epoch_to) + " (" +
                 fenced.status().message() + ")");
  }

  // What the target has, against what the old primary was last seen to have written.
  Result<RegionView> tv = to->State();
  if (!tv.ok()) {
    return Finish(op, kFailed,
                  op.to + " cannot be reached before its promotion: " + tv.status().message());
  }
  std::optional<uint64_t> source = final_lsn;
  if (!source) {
    std::optional<RegionView> seen = last_view_ ? last_view_(op.from) : std::nullopt;
    if (seen) source = seen->current_lsn;
  }
  if (source) {
    op.loss_bytes = *source > tv->replay_lsn ? static_cast<int64_t>(*source - tv->replay_lsn) : 0;
    op.loss_seconds = op.loss_bytes > 0 ? tv->replay_age_s : 0;
  } else {
    op.loss_bytes = -1;  // the old primary was never seen: unknown
    op.loss_seconds = tv->replay_age_s;
  }

  if (op.declare_dead) {
    Note(op, "the lease wait was skipped: the operator declared " + op.from + " dead");
  } else {
    RETURN_IF_ERROR(Record(op, kWaitingLeases,
                           "waiting " + Seconds(*wait) + " for every lease granted before epoch " +
                               std::to_string(op.epoch_to) + " to expire"));
    WaitFor(*wait, std::nullopt);
  }
  return Promote(op, from, to, rto_from);
}

Result<FailoverOutcome> Failover::Promote(OperationRow& op, RegionLink* from, RegionLink* to,
                                          MonoTime rto_from) {
  RETURN_IF_ERROR(
      Record(op, kPromoting, "promoting " + op.to + " at epoch " + std::to_string(op.epoch_to)));
  const MonoTime give_up = clock_->Now() + opts_.promote_timeout;
  Backoff backoff(opts_.poll, std::chrono::seconds(1));
  Result<PromoteResult> promoted = Unavailable("not asked yet");
  while (true) {
    promoted = to->Promote(op.epoch_to, op.mode == "forced");
    if (promoted.ok() || clock_->Now() >= give_up) break;
    clock_->SleepFor(backoff.Next());
  }
  if (!promoted.ok()) {
    // Not rolled back: the target may have promoted and lost its answer. The old primary has
    // promised the new epoch or stepped down, so at most the target acts.
    return Finish(op, kFailed,
                  op.to + " did not confirm its promotion at epoch " + std::to_string(op.epoch_to) +
                      " within " + Seconds(opts_.promote_timeout) + " (" +
                      promoted.status().message() +
                      "); it may or may not be primary: "
                      "check its state before acting");
  }
  op.rto_seconds = SecondsSince(rto_from, clock_->Now());
  if (promoted->reconciled > 0) {
    Note(op, op.to + " moved " + std::to_string(promoted->reconciled) +
                 " task instance(s) of the old primary to retry or failed");
  }
  ASSIGN_OR_RETURN(PairRow pair, store_->Pair());
  pair.epoch = std::max(pair.epoch, op.epoch_to);
  pair.active = op.to;
  pair.standby = op.from;
  RETURN_IF_ERROR(store_->SetPair(pair));

  if (publish_dns_) {
    // Clients find the region by name: the names move before the operation reports success.
    RETURN_IF_ERROR(Record(op, kPublishingDns, "pointing every host name of the pair at " + op.to));
    const MonoTime dns_give_up = clock_->Now() + opts_.dns_timeout;
    Backoff dns_backoff(opts_.poll, std::chrono::seconds(1));
    Status published;
    while (true) {
      published = publish_dns_(op.to);
      if (published.ok() || clock_->Now() >= dns_give_up) break;
      if (step_) step_(op, "the DNS update failed (" + published.message() + "); retrying");
      clock_->SleepFor(dns_backoff.Next());
    }
    if (!published.ok()) {
      Note(op, "the host names still point at " + op.from + ": the DNS update failed for " +
                   Seconds(opts_.dns_timeout) + " (" + published.message() +
                   "); the control plane keeps retrying");
    }
  }

  RETURN_IF_ERROR(
      Record(op, kRejoining, "asking " + op.from + " to rejoin as a replica of " + op.to));
  Status rejoin =
      from ? from->Rejoin(op.epoch_to, op.to) : Status(Unavailable("no link to " + op.from));
  if (!rejoin.ok()) {
    Note(op, op.from + " did not take the rejoin request (" + rejoin.message() +
                 "); the control plane asks again later");
  }
  return Finish(op, kSucceeded, op.to + " is active at epoch " + std::to_string(op.epoch_to));
}

Status Failover::Record(OperationRow& op, const std::string& step, const std::string& message) {
  op.step = step;
  RETURN_IF_ERROR(store_->UpdateOperation(op));
  if (step_) step_(op, message);
  return Status::Ok();
}

Result<FailoverOutcome> Failover::Finish(OperationRow& op, const std::string& state,
                                         const std::string& detail) {
  op.state = state;
  // The headline first, then the notes gathered on the way.
  op.detail = op.detail.empty() ? detail : detail + "; " + op.detail;
  op.finished_ms = WallMs();
  RETURN_IF_ERROR(store_->UpdateOperation(op));
  if (step_) step_(op, op.detail);
  ASSIGN_OR_RETURN(PairRow pair, store_->Pair());
  FailoverOutcome out;
  out.state = op.state;
  out.detail = op.detail;
  out.epoch = pair.epoch;
  out.active = pair.active;
  out.loss_bytes = op.loss_bytes;
  out.loss_seconds = op.loss_seconds;
  out.rto_seconds = op.rto_seconds;
  return out;
}

bool Failover::WaitFor(Duration d, std::optional<MonoTime> deadline) {
  const MonoTime until = clock_->Now() + d;
  while (true) {
    const MonoTime now = clock_->Now();
    if (now >= until) return true;
    if (deadline && now >= *deadline) return false;
    clock_->SleepFor(std::min(opts_.poll, until - now));
  }
}

}  // namespace tandem::control
