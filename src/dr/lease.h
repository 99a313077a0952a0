// The lease: how the active region knows it may act as primary, and how a failover knows the
// old primary has stopped.
//
// Three voters: the control plane C and the two region agents. Each keeps, durably, the highest
// epoch it has promised, and in memory the leases it granted (holder, epoch, expiry on its own
// monotonic clock).
//
//  1. The active region H asks every voter (itself included) "grant me epoch e for d". A voter
//     grants when e >= promised and no other holder has an unexpired grant from it; the grant
//     expires d after the voter granted it.
//  2. H holds the lease while a majority (2 of 3) granted the same round, and only until
//     asked_at + d - margin by its own clock: it measures from when it *asked*, which is before
//     any voter granted, so its lease ends before any of the grants that make it up.
//  3. A failover to R at epoch e+1 gets the promise of C and R (a majority). Both then refuse
//     renewals below e+1, so H cannot win another round; once every grant they made has expired
//     (Promise answers how long that is) H's lease has ended and R may be promoted.
//  4. A voter that restarts has forgotten its grants. For `restart_unknown` after it starts it
//     counts as having an unknown grant to an unknown holder: it grants nothing and reports that
//     window as outstanding.
//
// Durations are capped at kMaxLease on both sides, so a holder never believes in a longer lease
// than its voters granted.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "base/clock.h"
#include "base/status.h"

namespace tandem::dr {

// The longest lease a voter grants, whatever is asked.
inline constexpr Duration kMaxLease = std::chrono::seconds(60);

struct GrantRequest {
  std::string holder;  // the asking region's name
  int64_t epoch = 0;   // the epoch it acts under
  Duration duration{};  // how long it asks for (capped at kMaxLease)
};

struct GrantAnswer {
  bool granted = false;
  int64_t promised = 0;  // the voter's promised epoch after this request
  std::string detail;    // when refused: a sentence saying why, naming the epoch or the holder
};

// One of the three voters. Thread-safe: every method takes mu_.
class Voter {
 public:
  // `promised` is the durable value read at start. `persist(v)` must store a new promised value
  // durably; it is called under the voter's lock before a higher value takes effect, and when it
  // fails the grant or promise fails with its Status and nothing changes. `restart_unknown` is
  // how long after construction the voter counts as holding an unknown grant (the longest lease
  // it may have granted before it started; 0 when it knows it granted none). `clock` must
  // outlive the voter.
  Voter(const Clock* clock, std::string self_name, int64_t promised,
        std::function<Status(int64_t)> persist, Duration restart_unknown);

  Voter(const Voter&) = delete;
  Voter& operator=(const Voter&) = delete;

  // Grants when r.epoch >= promised, no other holder has an unexpired grant from this voter and
  // the restart window has passed; raises promised to r.epoch (persisting) when higher and
  // records expiry = now + duration. A renewal by the same holder replaces its grant. Records
  // now as the holder's last request time whether or not it is granted. InvalidArgument for an
  // empty holder or a non-positive duration; the persist error when persisting fails.
  Result<GrantAnswer> Grant(const GrantRequest& r);

  // Raises promised to `epoch` (persisting; a no-op when already >= epoch). Grants made for
  // lower epochs stay recorded (their holders may still count on them) but none is renewed.
  // Answers how long until every grant this voter made, to anyone, has expired, the restart
  // window included (0 when none).
  Result<Duration> Promise(int64_t epoch);

  // The holder gives its lease back (step-down): its grant ends now. Ignored unless `holder`
  // holds a grant for exactly `epoch`.
  void Release(const std::string& holder, int64_t epoch);

  int64_t promised() const;
  const std::string& name() const { return self_name_; }

  // Time until every grant made to anyone but `except` has expired, the restart window
  // included (0 when none).
  Duration OutstandingExcept(const std::string& except) const;

  // Time since `holder` last asked this voter for a grant; nullopt if it never did.
  std::optional<Duration> SilentFor(const std::string& holder) const;

 private:
  struct Granted {
    int64_t epoch = 0;
    MonoTime expires{};
  };

  // REQUIRES: mu_ held. Raises promised_ to `epoch` through persist_ when higher.
  Status RaiseLocked(int64_t epoch);
  // REQUIRES: mu_ held. Time until the grants to anyone but `except` (all when empty) and the
  // restart window have passed.
  Duration OutstandingLocked(const std::string& except, MonoTime now) const;

  // Constant after construction.
  const Clock* const clock_;
  const std::string self_name_;
  const std::function<Status(int64_t)> persist_;
  const MonoTime unknown_until_;  // end of the restart window

  mutable std::mutex mu_;
  int64_t promised_;                           // guarded by mu_
  std::map<std::string, Granted> grants_;      // guarded by mu_: the last grant per holder
  std::map<std::string, MonoTime> last_asked_;  // guarded by mu_
};

// The holder's side: whether the lease it last won is still valid. A round asked at `asked_at`
// that won `grants` votes (itself included) out of three holds until
// asked_at + duration - margin when grants >= 2. Thread-safe.
class HolderLease {
 public:
  // `duration` is what the holder asks each voter for (capped at kMaxLease like the voters cap
  // it); `margin` is how early it stops, to cover clock rate differences and the time a grant
  // spends in flight. `clock` must outlive this object.
  HolderLease(const Clock* clock, Duration duration, Duration margin);

  // A round finished. grants < 2 leaves the previous validity alone (it expires on its own).
  // A round for a higher epoch replaces the lease; one for a lower epoch than the last won is
  // ignored; within an epoch the later expiry wins (rounds may finish out of order). A round asked before the last
  // Drop is ignored, so a renewal in flight cannot undo a step-down.
  void RoundDone(MonoTime asked_at, int64_t epoch, int grants);
  // True while the lease is unexpired and for `epoch`.
  bool Valid(int64_t epoch) const;
  // Time left; 0 when no lease is held.
  Duration Remaining() const;
  // Stops holding now (step-down, fencing).
  void Drop();

 private:
  // Constant after construction.
  const Clock* const clock_;
  const Duration duration_;
  const Duration margin_;

  mutable std::mutex mu_;
  int64_t epoch_ = 0;                     // guarded by mu_
  std::optional<MonoTime> valid_until_;   // guarded by mu_; nullopt when none was won
  std::optional<MonoTime> dropped_at_;    // guarded by mu_
};

}  // namespace tandem::dr
