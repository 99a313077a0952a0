#include "dag/timetable.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace tandem::dag {
namespace {

using std::chrono::days;
using std::chrono::minutes;
using std::chrono::seconds;

// A time from its text; the tests below only pass well-formed ones.
TimePoint T(std::string_view text) {
  Result<TimePoint> t = ParseTime(text);
  EXPECT_TRUE(t.ok()) << text << ": " << t.status().ToString();
  return t.ok() ? *t : TimePoint{};
}

std::string Show(std::optional<TimePoint> t) { return t ? FormatTimeZ(*t) : "none"; }

std::string Show(std::optional<Interval> i) {
  return i ? FormatTimeZ(i->start) + " .. " + FormatTimeZ(i->end) : "none";
}

Cron MustCron(std::string_view expression) {
  Result<Cron> c = Cron::Parse(expression);
  EXPECT_TRUE(c.ok()) << expression << ": " << c.status().ToString();
  return c.ok() ? *c : *Cron::Parse("* * * * *");
}

Timetable MustTimetable(std::string_view schedule) {
  Result<Timetable> t = Timetable::Parse(schedule);
  EXPECT_TRUE(t.ok()) << schedule << ": " << t.status().ToString();
  return t.ok() ? *t : *Timetable::Parse("@once");
}

// The fire times strictly after `from`, `n` of them.
std::vector<std::string> Fires(const Cron& cron, TimePoint from, int n) {
  std::vector<std::string> out;
  std::optional<TimePoint> t = from;
  for (int i = 0; i < n && t; ++i) {
    t = cron.Next(*t);
    out.push_back(Show(t));
  }
  return out;
}

// The error message of a schedule that must not parse.
std::string CronError(std::string_view expression) {
  Result<Cron> c = Cron::Parse(expression);
  EXPECT_FALSE(c.ok()) << expression;
  EXPECT_EQ(c.status().code(), Code::kInvalidArgument);
  return c.status().message();
}

// `status` refuses `text` with a message holding both `what` and `why`.
void ExpectRefused(const Status& status, std::string_view text, std::string_view why,
                   std::string_view what) {
  EXPECT_EQ(status.code(), Code::kInvalidArgument) << text;
  EXPECT_NE(status.message().find(why), std::string::npos) << text << " -> " << status.message();
  EXPECT_NE(status.message().find(what), std::string::npos) << text << " -> " << status.message();
}

// ---------------------------------------------------------------------------------------------
// Presets

TEST(TimetableTest, EveryPresetFiresWhereAirflowsDoes) {
  struct Case {
    std::string preset;
    std::string start;  // start_date
    std::string first;  // First(start)
    std::string description;
  };
  // 2024-01-03 is a Wednesday.
  std::vector<Case> cases = {
      {"@hourly", "2024-01-03T10:30:00Z", "2024-01-03T11:00:00Z .. 2024-01-03T12:00:00Z",
       "Every hour"},
      {"@daily", "2024-01-03T10:30:00Z", "2024-01-04T00:00:00Z .. 2024-01-05T00:00:00Z",
       "At 00:00"},
      {"@midnight", "2024-01-03T10:30:00Z", "2024-01-04T00:00:00Z .. 2024-01-05T00:00:00Z",
       "At 00:00"},
      {"@weekly", "2024-01-03T10:30:00Z", "2024-01-07T00:00:00Z .. 2024-01-14T00:00:00Z",
       "At 00:00, only on Sunday"},
      {"@monthly", "2024-01-15T00:00:00Z", "2024-02-01T00:00:00Z .. 2024-03-01T00:00:00Z",
       "At 00:00, on day 1 of the month"},
      {"@yearly", "2024-03-01T00:00:00Z", "2025-01-01T00:00:00Z .. 2026-01-01T00:00:00Z",
       "At 00:00, on day 1 of the month, only in January"},
      {"@annually", "2024-03-01T00:00:00Z", "2025-01-01T00:00:00Z .. 2026-01-01T00:00:00Z",
       "At 00:00, on day 1 of the month, only in January"},
  };
  for (const Case& c : cases) {
    Timetable tt = MustTimetable(c.preset);
    EXPECT_FALSE(tt.once()) << c.preset;
    EXPECT_EQ(tt.summary(), c.preset);
    EXPECT_EQ(Show(tt.First(T(c.start))), c.first) << c.preset;
    EXPECT_EQ(tt.Description(), c.description) << c.preset;
  }
}

TEST(TimetableTest, OnceIsOneRunAtTheStartDate) {
  Timetable tt = MustTimetable("  @once ");
  EXPECT_TRUE(tt.once());
  EXPECT_EQ(tt.summary(), "@once");
  EXPECT_EQ(tt.Description(), "Once, at the start date");
  TimePoint start = T("2024-01-01T06:07:08Z");
  std::optional<Interval> first = tt.First(start);
  ASSERT_TRUE(first);
  EXPECT_EQ(*first, (Interval{start, start}));
  EXPECT_FALSE(tt.After(*first));
  EXPECT_EQ(tt.LatestComplete(start, start), (Interval{start, start}));
  EXPECT_EQ(tt.LatestComplete(start, start + days(400)), (Interval{start, start}));
  EXPECT_FALSE(tt.LatestComplete(start, start - seconds(1)));
}

TEST(TimetableTest, SummaryIsTrimmedAndCronIsAccepted) {
  Timetable tt = MustTimetable("\t 0 6 * * 1-5  \n");
  EXPECT_EQ(tt.summary(), "0 6 * * 1-5");
  EXPECT_FALSE(tt.once());
  EXPECT_EQ(tt.Description(), "At 06:00, only on Monday through Friday");
}

TEST(TimetableTest, UnknownPresetsAndBadCronAreRefused) {
  Result<Timetable> t = Timetable::Parse("@fortnightly");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), Code::kInvalidArgument);
  EXPECT_NE(t.status().message().find("unknown schedule preset '@fortnightly'"), std::string::npos)
      << t.status().message();
  EXPECT_FALSE(Timetable::Parse("@").ok());
  EXPECT_FALSE(Timetable::Parse("@Daily").ok());
  EXPECT_FALSE(Timetable::Parse("").ok());
  Result<Timetable> bad = Timetable::Parse("0 24 * * *");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "cron field 2 (hour): 24 is out of 0-23");
}

TEST(TimetableTest, Descriptions) {
  std::vector<std::pair<std::string, std::string>> cases = {
      {"* * * * *", "Every minute"},
      {"*/15 * * * *", "Every 15 minutes"},
      {"30 * * * *", "At 30 minutes past the hour"},
      {"0 */2 * * *", "Every 2 hours"},
      {"15 */6 * * *", "Every 6 hours, at 15 minutes past the hour"},
      {"0 9,17 * * *", "At 09:00, 17:00"},
      {"0,30 9-17 * * *", "At minute 0, 30 past hour 9-17"},
      {"0 0 13 * 5", "At 00:00, on day 13 of the month or on Friday"},
      {"0 0 1,15 * *", "At 00:00, on day 1, 15 of the month"},
      {"0 0 * JAN,JUL SAT,SUN", "At 00:00, only on Sunday, Saturday, only in January, July"},
      {"0 0 * * 7", "At 00:00, only on Sunday"},
      {"5 4 * * 0-7", "At 04:05"},
  };
  for (const auto& [cron, description] : cases) {
    EXPECT_EQ(MustTimetable(cron).Description(), description) << cron;
  }
}

// ---------------------------------------------------------------------------------------------
// Cron fields

TEST(CronTest, StepsFromStar) {
  Cron c = MustCron("*/15 * * * *");
  EXPECT_EQ(Show(c.Next(T("2024-01-01T10:07:00Z"))), "2024-01-01T10:15:00Z");
  EXPECT_EQ(Show(c.Next(T("2024-01-01T10:14:59Z"))), "2024-01-01T10:15:00Z");
  EXPECT_EQ(Show(c.Next(T("2024-01-01T10:15:00Z"))), "2024-01-01T10:30:00Z");  // strictly after
  EXPECT_EQ(Show(c.Next(T("2024-01-01T10:45:00Z"))), "2024-01-01T11:00:00Z");
  EXPECT_EQ(Show(c.PrevOrAt(T("2024-01-01T10:15:00Z"))), "2024-01-01T10:15:00Z");  // at
  EXPECT_EQ(Show(c.PrevOrAt(T("2024-01-01T10:15:59Z"))), "2024-01-01T10:15:00Z");
  EXPECT_EQ(Show(c.PrevOrAt(T("2024-01-01T10:14:59Z"))), "2024-01-01T10:00:00Z");
  EXPECT_EQ(c.expression(), "*/15 * * * *");
}

TEST(CronTest, RangesWithAndWithoutSteps) {
  Cron hours = MustCron("0 9-17 * * *");
  EXPECT_EQ(Show(hours.Next(T("2024-01-01T08:59:00Z"))), "2024-01-01T09:00:00Z");
  EXPECT_EQ(Show(hours.Next(T("2024-01-01T17:00:00Z"))), "2024-01-02T09:00:00Z");
  EXPECT_EQ(Show(hours.PrevOrAt(T("2024-01-02T08:00:00Z"))), "2024-01-01T17:00:00Z");

  Cron stepped = MustCron("0 9-17/4 * * *");
  EXPECT_EQ(Fires(stepped, T("2024-01-01T00:00:00Z"), 4),
            (std::vector<std::string>{"2024-01-01T09:00:00Z", "2024-01-01T13:00:00Z",
                                      "2024-01-01T17:00:00Z", "2024-01-02T09:00:00Z"}));
}

TEST(CronTest, ListsAndStartSteps) {
  EXPECT_EQ(Fires(MustCron("5,10,50 * * * *"), T("2024-01-01T10:07:00Z"), 4),
            (std::vector<std::string>{"2024-01-01T10:10:00Z", "2024-01-01T10:50:00Z",
                                      "2024-01-01T11:05:00Z", "2024-01-01T11:10:00Z"}));
  // croniter reads "a/n" as "a-max/n".
  EXPECT_EQ(Fires(MustCron("5/20 * * * *"), T("2024-01-01T10:00:00Z"), 4),
            (std::vector<std::string>{"2024-01-01T10:05:00Z", "2024-01-01T10:25:00Z",
                                      "2024-01-01T10:45:00Z", "2024-01-01T11:05:00Z"}));
  // A list mixing a value, a range and a stepped range.
  EXPECT_EQ(Fires(MustCron("0 1,3-4,20-23/2 * * *"), T("2024-01-01T00:00:00Z"), 6),
            (std::vector<std::string>{"2024-01-01T01:00:00Z", "2024-01-01T03:00:00Z",
                                      "2024-01-01T04:00:00Z", "2024-01-01T20:00:00Z",
                                      "2024-01-01T22:00:00Z", "2024-01-02T01:00:00Z"}));
}

TEST(CronTest, MonthAndDayNamesInAnyCase) {
  // 2024-01-01 is a Monday.
  Cron c = MustCron("0 0 * jan,Jul MON-fri");
  EXPECT_EQ(Fires(c, T("2024-01-04T12:00:00Z"), 3),
            (std::vector<std::string>{"2024-01-05T00:00:00Z", "2024-01-08T00:00:00Z",
                                      "2024-01-09T00:00:00Z"}));
  EXPECT_EQ(Show(c.Next(T("2024-01-31T00:00:00Z"))), "2024-07-01T00:00:00Z");
  EXPECT_EQ(Show(c.PrevOrAt(T("2024-07-01T00:00:00Z") - seconds(1))), "2024-01-31T00:00:00Z");
}

TEST(CronTest, SevenIsSunday) {
  TimePoint wednesday = T("2024-01-03T00:00:00Z");
  EXPECT_EQ(Show(MustCron("0 0 * * 7").Next(wednesday)), "2024-01-07T00:00:00Z");
  EXPECT_EQ(Show(MustCron("0 0 * * 0").Next(wednesday)), "2024-01-07T00:00:00Z");
  EXPECT_EQ(Show(MustCron("0 0 * * SUN").Next(wednesday)), "2024-01-07T00:00:00Z");
  EXPECT_EQ(Fires(MustCron("0 0 * * 5-7"), wednesday, 4),
            (std::vector<std::string>{"2024-01-05T00:00:00Z", "2024-01-06T00:00:00Z",
                                      "2024-01-07T00:00:00Z", "2024-01-12T00:00:00Z"}));
}

TEST(CronTest, DayOfMonthOrDayOfWeekWhenBothAreRestricted) {
  // The 13th, or any Friday.
  EXPECT_EQ(Fires(MustCron("0 0 13 * 5"), T("2024-09-01T00:00:00Z"), 9),
            (std::vector<std::string>{
                "2024-09-06T00:00:00Z", "2024-09-13T00:00:00Z", "2024-09-20T00:00:00Z",
                "2024-09-27T00:00:00Z", "2024-10-04T00:00:00Z", "2024-10-11T00:00:00Z",
                "2024-10-13T00:00:00Z", "2024-10-18T00:00:00Z", "2024-10-25T00:00:00Z"}));
  // Only the day of month restricted: every 13th, whatever the weekday.
  EXPECT_EQ(Fires(MustCron("0 0 13 * *"), T("2024-09-01T00:00:00Z"), 2),
            (std::vector<std::string>{"2024-09-13T00:00:00Z", "2024-10-13T00:00:00Z"}));
  // Only the weekday restricted ("*/1" counts as "*"): every Friday.
  EXPECT_EQ(Fires(MustCron("0 0 */1 * 5"), T("2024-09-01T00:00:00Z"), 2),
            (std::vector<std::string>{"2024-09-06T00:00:00Z", "2024-09-13T00:00:00Z"}));
  // A stepped day of month is a restriction, so it ORs with the weekday as croniter does.
  EXPECT_EQ(Fires(MustCron("0 0 */10 * 1"), T("2024-01-01T00:00:00Z"), 4),
            (std::vector<std::string>{"2024-01-08T00:00:00Z", "2024-01-11T00:00:00Z",
                                      "2024-01-15T00:00:00Z", "2024-01-21T00:00:00Z"}));
}

TEST(CronTest, LeapDays) {
  Cron c = MustCron("0 12 29 2 *");
  EXPECT_EQ(Show(c.Next(T("2023-03-01T00:00:00Z"))), "2024-02-29T12:00:00Z");
  EXPECT_EQ(Show(c.Next(T("2024-02-29T12:00:00Z"))), "2028-02-29T12:00:00Z");
  EXPECT_EQ(Show(c.PrevOrAt(T("2028-02-28T00:00:00Z"))), "2024-02-29T12:00:00Z");
  // 2100 is not a leap year: from 2096 the next one is 2104, more than 5 years away.
  EXPECT_EQ(Show(c.Next(T("2096-03-01T00:00:00Z"))), "none");
}

TEST(CronTest, MonthEnds) {
  Cron thirty_first = MustCron("0 0 31 * *");
  EXPECT_EQ(Fires(thirty_first, T("2024-01-31T00:00:00Z"), 4),
            (std::vector<std::string>{"2024-03-31T00:00:00Z", "2024-05-31T00:00:00Z",
                                      "2024-07-31T00:00:00Z", "2024-08-31T00:00:00Z"}));
  EXPECT_EQ(Show(thirty_first.PrevOrAt(T("2024-07-30T23:59:59Z"))), "2024-05-31T00:00:00Z");
  Cron first = MustCron("0 0 1 * *");
  EXPECT_EQ(Show(first.PrevOrAt(T("2024-03-01T00:00:00Z"))), "2024-03-01T00:00:00Z");
  EXPECT_EQ(Show(first.PrevOrAt(T("2024-02-29T23:59:59Z"))), "2024-02-01T00:00:00Z");
  Cron last_minute = MustCron("59 23 28-31 * *");
  EXPECT_EQ(Show(last_minute.Next(T("2023-02-28T23:59:00Z"))), "2023-03-28T23:59:00Z");
  EXPECT_EQ(Show(last_minute.PrevOrAt(T("2023-03-28T23:58:00Z"))), "2023-02-28T23:59:00Z");
}

TEST(CronTest, YearRollover) {
  EXPECT_EQ(Show(MustCron("0 0 * * *").Next(T("2024-12-31T23:59:59Z"))), "2025-01-01T00:00:00Z");
  Cron new_years_eve = MustCron("30 23 31 12 *");
  EXPECT_EQ(Show(new_years_eve.Next(T("2024-12-31T23:30:00Z"))), "2025-12-31T23:30:00Z");
  EXPECT_EQ(Show(new_years_eve.PrevOrAt(T("2025-12-31T23:29:59Z"))), "2024-12-31T23:30:00Z");
  Cron yearly = MustCron("0 0 1 1 *");
  EXPECT_EQ(Show(yearly.PrevOrAt(T("2024-06-01T00:00:00Z"))), "2024-01-01T00:00:00Z");
  EXPECT_EQ(Show(yearly.PrevOrAt(T("2023-12-31T23:59:00Z"))), "2023-01-01T00:00:00Z");
  // Monday 09:00 before Monday 2024-01-01 08:00 is in the previous year.
  EXPECT_EQ(Show(MustCron("0 9 * * MON").PrevOrAt(T("2024-01-01T08:00:00Z"))),
            "2023-12-25T09:00:00Z");
}

TEST(CronTest, ImpossibleDatesHaveNoFireTime) {
  Cron c = MustCron("0 0 30 2 *");
  EXPECT_FALSE(c.Next(T("2024-01-01T00:00:00Z")));
  EXPECT_FALSE(c.PrevOrAt(T("2024-01-01T00:00:00Z")));
  // Many calls stay fast: the search skips whole months and days, not minutes.
  for (int i = 0; i < 2000; ++i) {
    ASSERT_FALSE(c.Next(T("2024-01-01T00:00:00Z") + days(i)));
    ASSERT_FALSE(MustCron("59 23 31 4 *").PrevOrAt(T("2024-01-01T00:00:00Z") + days(i)));
  }
}

TEST(CronTest, NextAndPrevOrAtAgreeOnEveryMinute) {
  // Walks three days minute by minute: a minute is a fire time exactly when PrevOrAt returns
  // it, and the fire times found that way are the chain Next produces.
  for (std::string_view expression :
       {"*/7 1-3,22 * * *", "0 0 13 * 5", "15 */5 * * SAT,SUN", "59 23 * * *", "0 12 31 * *"}) {
    Cron c = MustCron(expression);
    TimePoint from = T("2024-03-29T00:00:00Z");
    std::vector<TimePoint> by_prev;
    for (TimePoint t = from; t < from + days(3); t += minutes(1)) {
      if (c.PrevOrAt(t) == t) by_prev.push_back(t);
    }
    std::vector<TimePoint> by_next;
    for (std::optional<TimePoint> t = c.Next(from - seconds(1)); t && *t < from + days(3);
         t = c.Next(*t)) {
      by_next.push_back(*t);
    }
    EXPECT_FALSE(by_next.empty()) << expression;
    EXPECT_EQ(by_prev, by_next) << expression;
  }
}

TEST(CronTest, MalformedFieldsAreNamed) {
  std::vector<std::pair<std::string, std::string>> cases = {
      {"", "cron expression '' has 0 fields; it needs 5"},
      {"* * * *", "has 4 fields"},
      {"* * * * * *", "has 6 fields"},
      {"60 * * * *", "cron field 1 (minute): 60 is out of 0-59"},
      {"0 24 * * *", "cron field 2 (hour): 24 is out of 0-23"},
      {"0 0 0 * *", "cron field 3 (day of month): 0 is out of 1-31"},
      {"0 0 32 * *", "cron field 3 (day of month): 32 is out of 1-31"},
      {"0 0 * 13 *", "cron field 4 (month): 13 is out of 1-12"},
      {"0 0 * * 8", "cron field 5 (day of week): 8 is out of 0-7"},
      {"0 0 * FOO *", "cron field 4 (month): 'FOO' is not a number or a name"},
      {"0 0 * * SUNDAY", "cron field 5 (day of week): 'SUNDAY' is not a number or a name"},
      {"x * * * *", "cron field 1 (minute): 'x' is not a number"},
      {"*/0 * * * *", "cron field 1 (minute): step '0' must be a number in 1-60"},
      {"*/61 * * * *", "step '61' must be a number in 1-60"},
      {"*/ * * * *", "step '' must be a number"},
      {"0 17-9 * * *", "cron field 2 (hour): range '17-9' goes backwards"},
      {"1,,2 * * * *", "cron field 1 (minute): empty list item in '1,,2'"},
      {"0 0 * * MON-", "cron field 5 (day of week): a value is missing"},
      {"-5 * * * *", "cron field 1 (minute): a value is missing"},
      {"0 0 L * *", "cron field 3 (day of month): 'L' is not a number"},
  };
  for (const auto& [expression, message] : cases) {
    std::string error = CronError(expression);
    EXPECT_NE(error.find(message), std::string::npos) << expression << " -> " << error;
  }
  // A field that is out of range is not a name either.
  EXPECT_EQ(CronError("0 0 * 1-13 *"), "cron field 4 (month): 13 is out of 1-12");
}

// ---------------------------------------------------------------------------------------------
// Intervals

TEST(TimetableTest, IntervalsFollowEachOther) {
  Timetable tt = MustTimetable("0 6 * * *");
  std::optional<Interval> i = tt.First(T("2024-01-01T00:00:00Z"));
  EXPECT_EQ(Show(i), "2024-01-01T06:00:00Z .. 2024-01-02T06:00:00Z");
  i = tt.After(*i);
  EXPECT_EQ(Show(i), "2024-01-02T06:00:00Z .. 2024-01-03T06:00:00Z");
  i = tt.After(*i);
  EXPECT_EQ(Show(i), "2024-01-03T06:00:00Z .. 2024-01-04T06:00:00Z");
}

TEST(TimetableTest, FirstAlignsAStartDateUp) {
  Timetable tt = MustTimetable("0 6 * * *");
  EXPECT_EQ(Show(tt.First(T("2024-01-01T06:00:00Z"))),
            "2024-01-01T06:00:00Z .. 2024-01-02T06:00:00Z");  // aligned: kept
  EXPECT_EQ(Show(tt.First(T("2024-01-01T06:00:01Z"))),
            "2024-01-02T06:00:00Z .. 2024-01-03T06:00:00Z");
  EXPECT_EQ(Show(tt.First(T("2024-01-01T05:59:59Z"))),
            "2024-01-01T06:00:00Z .. 2024-01-02T06:00:00Z");
  EXPECT_FALSE(MustTimetable("0 0 30 2 *").First(T("2024-01-01T00:00:00Z")));
}

TEST(TimetableTest, MonthlyIntervalsHaveCalendarLengths) {
  Timetable tt = MustTimetable("@monthly");
  std::optional<Interval> i = tt.First(T("2023-12-01T00:00:00Z"));
  std::vector<std::string> seen;
  for (int n = 0; n < 4 && i; ++n, i = tt.After(*i)) seen.push_back(Show(i));
  EXPECT_EQ(seen, (std::vector<std::string>{"2023-12-01T00:00:00Z .. 2024-01-01T00:00:00Z",
                                            "2024-01-01T00:00:00Z .. 2024-02-01T00:00:00Z",
                                            "2024-02-01T00:00:00Z .. 2024-03-01T00:00:00Z",
                                            "2024-03-01T00:00:00Z .. 2024-04-01T00:00:00Z"}));
}

TEST(TimetableTest, AfterAnUnalignedIntervalStartsAtTheNextFireTime) {
  Timetable tt = MustTimetable("@hourly");
  Interval odd{T("2024-01-01T09:30:00Z"), T("2024-01-01T10:30:00Z")};
  EXPECT_EQ(Show(tt.After(odd)), "2024-01-01T11:00:00Z .. 2024-01-01T12:00:00Z");
}

TEST(TimetableTest, LatestCompleteAtTheBoundaries) {
  Timetable tt = MustTimetable("@daily");
  TimePoint start = T("2024-01-01");
  // An interval counts once its end has come: end == now.
  EXPECT_EQ(Show(tt.LatestComplete(start, T("2024-01-05T00:00:00Z"))),
            "2024-01-04T00:00:00Z .. 2024-01-05T00:00:00Z");
  EXPECT_EQ(Show(tt.LatestComplete(start, T("2024-01-04T23:59:59Z"))),
            "2024-01-03T00:00:00Z .. 2024-01-04T00:00:00Z");
  // The first interval itself.
  EXPECT_EQ(Show(tt.LatestComplete(start, T("2024-01-02T00:00:00Z"))),
            "2024-01-01T00:00:00Z .. 2024-01-02T00:00:00Z");
  // Nothing has ended yet.
  EXPECT_EQ(Show(tt.LatestComplete(start, T("2024-01-01T23:59:59Z"))), "none");
  EXPECT_EQ(Show(tt.LatestComplete(start, T("2023-06-01T00:00:00Z"))), "none");
}

TEST(TimetableTest, LatestCompleteNeverStartsBeforeAnUnalignedStartDate) {
  Timetable tt = MustTimetable("@daily");
  TimePoint start = T("2024-01-01T12:00:00Z");
  // [01-01, 01-02) has ended but began before the start date.
  EXPECT_EQ(Show(tt.LatestComplete(start, T("2024-01-02T00:00:00Z"))), "none");
  EXPECT_EQ(Show(tt.LatestComplete(start, T("2024-01-02T23:59:59Z"))), "none");
  EXPECT_EQ(Show(tt.LatestComplete(start, T("2024-01-03T00:00:00Z"))),
            "2024-01-02T00:00:00Z .. 2024-01-03T00:00:00Z");
}

TEST(TimetableTest, LatestCompleteWithGapsBetweenFireTimes) {
  Timetable tt = MustTimetable("0 9 * * 1-5");  // weekdays at 09:00
  // Saturday 2024-01-06: the last complete interval is Thursday 09:00 to Friday 09:00.
  EXPECT_EQ(Show(tt.LatestComplete(T("2024-01-01"), T("2024-01-06T12:00:00Z"))),
            "2024-01-04T09:00:00Z .. 2024-01-05T09:00:00Z");
  // Monday 2024-01-08 09:00: Friday to Monday is one interval.
  EXPECT_EQ(Show(tt.LatestComplete(T("2024-01-01"), T("2024-01-08T09:00:00Z"))),
            "2024-01-05T09:00:00Z .. 2024-01-08T09:00:00Z");
}

// ---------------------------------------------------------------------------------------------
// Times and durations

TEST(TimeTest, ParseTimeForms) {
  std::vector<std::pair<std::string, std::string>> cases = {
      {"2024-01-01", "2024-01-01T00:00:00Z"},
      {"2024-01-01T06:00:00", "2024-01-01T06:00:00Z"},
      {"2024-01-01 06:00", "2024-01-01T06:00:00Z"},
      {"2024-01-01t06:07", "2024-01-01T06:07:00Z"},
      {"2024-01-01T06:07:08Z", "2024-01-01T06:07:08Z"},
      {"2024-01-01T06:07:08z", "2024-01-01T06:07:08Z"},
      {"2024-01-01T06:07:08.987654Z", "2024-01-01T06:07:08Z"},
      {"2024-01-01T06:07:08+00:00", "2024-01-01T06:07:08Z"},
      {"2024-01-01T06:00:00+02:00", "2024-01-01T04:00:00Z"},
      {"2024-01-01T01:00:00+02:00", "2023-12-31T23:00:00Z"},
      {"2024-12-31T20:00:00-05:30", "2025-01-01T01:30:00Z"},
      {"2024-01-01T06:00+0100", "2024-01-01T05:00:00Z"},
      {"2024-02-29", "2024-02-29T00:00:00Z"},
      {"  2024-01-01  ", "2024-01-01T00:00:00Z"},
      {"1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"},
  };
  for (const auto& [text, want] : cases) {
    Result<TimePoint> t = ParseTime(text);
    ASSERT_TRUE(t.ok()) << text << ": " << t.status().ToString();
    EXPECT_EQ(FormatTimeZ(*t), want) << text;
  }
  EXPECT_EQ(T("1970-01-01T00:00:00Z").time_since_epoch().count(), 0);
  EXPECT_EQ(T("2024-01-01").time_since_epoch().count(), 1704067200);
}

TEST(TimeTest, ParseTimeRefusesMalformedText) {
  std::vector<std::pair<std::string, std::string>> cases = {
      {"", "the date is not YYYY-MM-DD"},
      {"2024-1-1", "the date is not YYYY-MM-DD"},
      {"24-01-01", "the date is not YYYY-MM-DD"},
      {"2024/01/01", "the date is not YYYY-MM-DD"},
      {"2024-13-01", "there is no such day"},
      {"2023-02-29", "there is no such day"},
      {"2024-04-31", "there is no such day"},
      {"2024-01-01X", "unexpected text after the date"},
      {"2024-01-01T06", "the time is not HH:MM"},
      {"2024-01-01T6:00", "the time is not HH:MM"},
      {"2024-01-01T24:00", "the time is out of range"},
      {"2024-01-01T06:60", "the time is out of range"},
      {"2024-01-01T06:00:60", "the time is out of range"},
      {"2024-01-01T06:00:0", "the seconds are not two digits"},
      {"2024-01-01T06:00:00.", "no digits after the decimal point"},
      {"2024-01-01T06:00:00Zjunk", "unexpected text after 'Z'"},
      {"2024-01-01T06:00:00 UTC", "unexpected text after the time"},
      {"2024-01-01T06:00:00+2", "the offset is not +HH:MM"},
      {"2024-01-01T06:00:00+02:00:00", "the offset is not +HH:MM"},
      {"2024-01-01T06:00:00+24:00", "the offset is out of range"},
  };
  for (const auto& [text, why] : cases) {
    ExpectRefused(ParseTime(text).status(), text, why, "is not a date and time");
  }
}

TEST(TimeTest, FormatBothWays) {
  TimePoint t = T("2024-03-05T07:08:09Z");
  EXPECT_EQ(FormatTime(t), "2024-03-05T07:08:09+00:00");
  EXPECT_EQ(FormatTimeZ(t), "2024-03-05T07:08:09Z");
  EXPECT_EQ(FormatTime(TimePoint{}), "1970-01-01T00:00:00+00:00");
  EXPECT_EQ(FormatTimeZ(T("1969-12-31T23:59:59Z")), "1969-12-31T23:59:59Z");
  // Each parses back to itself.
  EXPECT_EQ(T(FormatTime(t)), t);
  EXPECT_EQ(T(FormatTimeZ(t)), t);
}

TEST(DurationTest, Forms) {
  std::vector<std::pair<std::string, int64_t>> cases = {
      {"0", 0},           {"300", 300},          {"90s", 90},
      {"5m", 300},        {"2h", 7200},          {"1d", 86400},
      {"1h30m", 5400},    {"1d2h3m4s", 93784},   {"2h5s", 7205},
      {"01:30:00", 5400}, {"100:00:01", 360001}, {"0:00:05", 5},
      {" 5m ", 300},      {"2H", 7200},          {"0s", 0},
  };
  for (const auto& [text, want] : cases) {
    Result<std::chrono::seconds> d = ParseDuration(text);
    ASSERT_TRUE(d.ok()) << text << ": " << d.status().ToString();
    EXPECT_EQ(d->count(), want) << text;
  }
}

TEST(DurationTest, Errors) {
  std::vector<std::pair<std::string, std::string>> cases = {
      {"", "it is empty"},
      {"   ", "it is empty"},
      {"-5", "it is negative"},
      {"-5m", "it is negative"},
      {"5x", "unknown unit 'x'"},
      {"1.5h", "unknown unit '.'"},
      {"m", "a number is missing before a unit"},
      {"1h5", "the last number has no unit"},
      {"30m1h", "units must go from days down to seconds, each once"},
      {"1h1h", "units must go from days down to seconds, each once"},
      {"1:30", "a clock form needs three parts"},
      {"1:2:3", "MM and SS two"},
      {"01:60:00", "minutes and seconds must be below 60"},
      {"01:00:60", "minutes and seconds must be below 60"},
      {"99999999999999999d", "it is too long"},
      {"9999999999999999999", "it is too long"},
  };
  for (const auto& [text, why] : cases) {
    ExpectRefused(ParseDuration(text).status(), text, why, "is not a duration");
  }
}

}  // namespace
}  // namespace tandem::dag
