#include "base/clock.h"

#include <thread>

namespace tandem {
namespace {

class SteadyClock final : public Clock {
 public:
  MonoTime Now() const override { return std::chrono::steady_clock::now(); }
  WallTime Wall() const override { return std::chrono::system_clock::now(); }
  void SleepFor(Duration d) override { std::this_thread::sleep_for(d); }
};

}  // namespace

Clock& RealClock() {
  static SteadyClock* clock = new SteadyClock();  // never deleted: used until exit
  return *clock;
}

MonoTime FakeClock::Now() const {
  std::lock_guard lock(mu_);
  return now_;
}

WallTime FakeClock::Wall() const {
  std::lock_guard lock(mu_);
  return wall_;
}

void FakeClock::Advance(Duration d) {
  std::lock_guard lock(mu_);
  now_ += d;
  wall_ += std::chrono::duration_cast<WallTime::duration>(d);
}

void FakeClock::SetWall(WallTime t) {
  std::lock_guard lock(mu_);
  wall_ = t;
}

Duration Backoff::Next() {
  Duration d = next_;
  next_ = std::min(next_ * 2, max_);
  return d;
}

}  // namespace tandem
