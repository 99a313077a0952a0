// When a DAG's runs happen: 5-field cron expressions, the @presets, and the data intervals they
// cut time into.
//
// Semantics are Airflow's data-interval timetables (Airflow 2's default, Airflow 3's
// `create_cron_data_intervals = True`): a run covers the interval [start, end) between two
// consecutive fire times, its logical date is `start`, and it may run once `end` has passed.
// `@once` is a single run whose interval is [start_date, start_date]. All times are UTC.
//
// Pure: no I/O, no clock. Thread-safe once built (immutable).
#pragma once

#include <bitset>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"

namespace tandem::dag {

// Seconds since the Unix epoch, UTC.
using TimePoint = std::chrono::sys_seconds;

// A parsed 5-field cron expression: minute hour day-of-month month day-of-week. Fields take
// `*`, numbers, ranges `a-b`, lists `a,b`, steps `*/n` and `a-b/n`; month and day-of-week
// also take names (JAN-DEC, SUN-SAT); day-of-week 7 is Sunday. When both day-of-month and
// day-of-week are restricted, a day matches if either does (Vixie cron).
class Cron {
 public:
  // Errors name the field and what is wrong ("cron field 2 (hour): 24 is out of 0-23").
  static Result<Cron> Parse(std::string_view expression);

  // The first fire time strictly after `t`, or nullopt when there is none within 5 years
  // (for example "0 0 30 2 *").
  std::optional<TimePoint> Next(TimePoint t) const;
  // The last fire time at or before `t`, or nullopt when none within 5 years.
  std::optional<TimePoint> PrevOrAt(TimePoint t) const;

  const std::string& expression() const { return expression_; }

 private:
  Cron() = default;
  bool Matches(TimePoint t) const;

  std::string expression_;
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_of_month_;  // 1..31
  std::bitset<13> months_;         // 1..12
  std::bitset<7> days_of_week_;    // 0 = Sunday
  bool dom_restricted_ = false;
  bool dow_restricted_ = false;
};

struct Interval {
  TimePoint start;
  TimePoint end;
  friend bool operator==(const Interval&, const Interval&) = default;
};

// A DAG's schedule. Manual-only DAGs have no Timetable at all (std::optional at the caller).
class Timetable {
 public:
  // Accepts a cron expression or @once, @hourly, @daily, @midnight, @weekly, @monthly,
  // @yearly, @annually (surrounding spaces ignored).
  static Result<Timetable> Parse(std::string_view schedule);

  bool once() const { return once_; }
  // The text it was parsed from, trimmed (Airflow's timetable_summary).
  const std::string& summary() const { return summary_; }
  // A sentence for people ("At 00:00", "Every hour", "Once, at the start date").
  std::string Description() const;

  // The first interval whose start is at or after `start_date` (cron times aligned up).
  std::optional<Interval> First(TimePoint start_date) const;
  // The interval that follows `previous`; nullopt for @once.
  std::optional<Interval> After(const Interval& previous) const;
  // The latest interval that starts at or after `start_date` and has ended by `now`
  // (end <= now); what a DAG without catchup runs first. For @once: [start_date, start_date]
  // when start_date <= now.
  std::optional<Interval> LatestComplete(TimePoint start_date, TimePoint now) const;

 private:
  Timetable() = default;
  bool once_ = false;
  std::string summary_;
  std::optional<Cron> cron_;
};

// "2024-01-01", "2024-01-01T06:00:00", "2024-01-01 06:00", with an optional "Z" or "+HH:MM"
// offset (converted to UTC); fractional seconds are dropped.
Result<TimePoint> ParseTime(std::string_view text);
// RFC 3339 with an explicit UTC offset: "2024-01-01T06:00:00+00:00" (Airflow's str(datetime)).
std::string FormatTime(TimePoint t);
// RFC 3339 with "Z", as the Airflow REST API writes datetimes.
std::string FormatTimeZ(TimePoint t);
// Durations: an integer number of seconds, or "90s", "5m", "2h", "1d", "1h30m", or "HH:MM:SS".
Result<std::chrono::seconds> ParseDuration(std::string_view text);

}  // namespace tandem::dag
