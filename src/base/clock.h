// Time is injected: failover logic is all timeouts, and tests drive a simulated clock.
// Only clock.cc reads the real time.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>

namespace tandem {

using Duration = std::chrono::nanoseconds;
using MonoTime = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;

// Whole seconds since the Unix epoch, as tokens carry time.
inline int64_t UnixSeconds(WallTime t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

class Clock {
 public:
  virtual ~Clock() = default;
  virtual MonoTime Now() const = 0;
  // The calendar time, for schedules and nothing that measures a duration.
  virtual WallTime Wall() const = 0;
  // Blocks the calling thread for `d` of this clock's time.
  virtual void SleepFor(Duration d) = 0;
};

// The process-wide real clock. Owned by the process; never deleted.
Clock& RealClock();

// A clock that moves only when told to. SleepFor advances it (single-threaded tests);
// thread-safe.
class FakeClock final : public Clock {
 public:
  MonoTime Now() const override;
  WallTime Wall() const override;
  void SleepFor(Duration d) override { Advance(d); }
  // Moves both clocks.
  void Advance(Duration d);
  void SetWall(WallTime t);

 private:
  mutable std::mutex mu_;
  MonoTime now_{};   // guarded by mu_
  WallTime wall_{};  // guarded by mu_
};

// Exponential backoff with a ceiling: 0.1 s, 0.2 s, 0.4 s, ... up to `max`.
class Backoff {
 public:
  explicit Backoff(Duration initial = std::chrono::milliseconds(100),
                   Duration max = std::chrono::seconds(5))
      : next_(initial), max_(max) {}
  Duration Next();

 private:
  Duration next_;
  Duration max_;
};

}  // namespace tandem
