#include "dr/lease.h"

#include <algorithm>
#include <cstdio>
#include <utility>

namespace tandem::dr {
namespace {

// "1.5 s", for sentences.
std::string Seconds(Duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", std::chrono::duration<double>(d).count());
  return buf;
}

Duration Left(MonoTime until, MonoTime now) {
  return until > now ? until - now : Duration::zero();
}

}  // namespace

Voter::Voter(const Clock* clock, std::string self_name, int64_t promised,
             std::function<Status(int64_t)> persist, Duration restart_unknown)
    : clock_(clock),
      self_name_(std::move(self_name)),
      persist_(std::move(persist)),
      unknown_until_(clock->Now() + std::max(restart_unknown, Duration::zero())),
      promised_(promised) {}

Status Voter::RaiseLocked(int64_t epoch) {
  if (epoch <= promised_) return Status::Ok();
  Status st = persist_(epoch);
  if (!st.ok()) {
    return st.WithContext(self_name_ + " could not store its promise of epoch " +
                          std::to_string(epoch));
  }
  promised_ = epoch;
  return Status::Ok();
}

Duration Voter::OutstandingLocked(const std::string& except, MonoTime now) const {
  Duration longest = Left(unknown_until_, now);
  for (const auto& [holder, g] : grants_) {
    if (!except.empty() && holder == except) continue;
    longest = std::max(longest, Left(g.expires, now));
  }
  return longest;
}

Result<GrantAnswer> Voter::Grant(const GrantRequest& r) {
  if (r.holder.empty()) return InvalidArgument("a lease request must name its holder");
  if (r.duration <= Duration::zero()) {
    return InvalidArgument("a lease request must ask for a positive duration");
  }
  std::lock_guard lock(mu_);
  const MonoTime now = clock_->Now();
  last_asked_[r.holder] = now;

  GrantAnswer answer;
  answer.promised = promised_;
  if (r.epoch < promised_) {
    answer.detail = "epoch " + std::to_string(r.epoch) + " is below epoch " +
                    std::to_string(promised_) + ", which " + self_name_ + " has promised";
    return answer;
  }
  if (now < unknown_until_) {
    answer.detail = self_name_ +
                    " restarted recently and cannot know which leases it granted before; it "
                    "grants none for another " +
                    Seconds(unknown_until_ - now);
    return answer;
  }
  for (const auto& [holder, g] : grants_) {
    if (holder != r.holder && g.expires > now) {
      answer.detail = holder + " holds a lease from " + self_name_ + " at epoch " +
                      std::to_string(g.epoch) + " for another " + Seconds(g.expires - now);
      return answer;
    }
  }
  RETURN_IF_ERROR(RaiseLocked(r.epoch));
  grants_[r.holder] = Granted{r.epoch, now + std::min(r.duration, kMaxLease)};
  answer.granted = true;
  answer.promised = promised_;
  return answer;
}

Result<Duration> Voter::Promise(int64_t epoch) {
  std::lock_guard lock(mu_);
  RETURN_IF_ERROR(RaiseLocked(epoch));
  return OutstandingLocked("", clock_->Now());
}

void Voter::Release(const std::string& holder, int64_t epoch) {
  std::lock_guard lock(mu_);
  auto it = grants_.find(holder);
  if (it != grants_.end() && it->second.epoch == epoch) grants_.erase(it);
}

int64_t Voter::promised() const {
  std::lock_guard lock(mu_);
  return promised_;
}

Duration Voter::OutstandingExcept(const std::string& except) const {
  std::lock_guard lock(mu_);
  // An empty `except` would mean "nobody excepted"; no holder has an empty name.
  return OutstandingLocked(except, clock_->Now());
}

std::optional<Duration> Voter::SilentFor(const std::string& holder) const {
  std::lock_guard lock(mu_);
  auto it = last_asked_.find(holder);
  if (it == last_asked_.end()) return std::nullopt;
  return clock_->Now() - it->second;
}

HolderLease::HolderLease(const Clock* clock, Duration duration, Duration margin)
    : clock_(clock), duration_(std::min(duration, kMaxLease)), margin_(margin) {}

void HolderLease::RoundDone(MonoTime asked_at, int64_t epoch, int grants) {
  if (grants < 2) return;
  std::lock_guard lock(mu_);
  if (dropped_at_ && asked_at <= *dropped_at_) return;  // asked before a step-down
  if (epoch < epoch_) return;                             // a stale round
  const MonoTime until = asked_at + duration_ - margin_;
  if (!valid_until_ || epoch > epoch_) {
    epoch_ = epoch;
    valid_until_ = until;
  } else {
    valid_until_ = std::max(*valid_until_, until);
  }
}

bool HolderLease::Valid(int64_t epoch) const {
  std::lock_guard lock(mu_);
  return valid_until_ && epoch_ == epoch && clock_->Now() < *valid_until_;
}

Duration HolderLease::Remaining() const {
  std::lock_guard lock(mu_);
  return valid_until_ ? Left(*valid_until_, clock_->Now()) : Duration::zero();
}

void HolderLease::Drop() {
  std::lock_guard lock(mu_);
  valid_until_.reset();
  dropped_at_ = clock_->Now();
}

}  // namespace tandem::dr
