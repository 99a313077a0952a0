// Cron matching walks calendar fields from the largest down: a month that does not match is
// skipped whole, then a day, then an hour, and only inside a matching hour do we step by
// minutes. Five years is at most 60 month steps, about 1,830 day steps and 24 hour steps per
// matching day, so the worst case stays in the thousands of steps.
#include "dag/timetable.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <limits>
#include <vector>

#include "base/text.h"

namespace tandem::dag {
namespace {

using std::chrono::days;
using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using std::chrono::sys_days;
using std::chrono::year_month_day;

// How far Next and PrevOrAt look before giving up.
constexpr days kHorizon{5 * 366};

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t at = s.find(sep, start);
    if (at == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, at - start));
    start = at + 1;
  }
}

// A non-negative decimal that is all of `s`.
std::optional<int64_t> ParseNumber(std::string_view s) {
  if (s.empty() || s.size() > 18) return std::nullopt;
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < 0) return std::nullopt;
  return v;
}

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

constexpr std::array<std::string_view, 12> kMonthNames = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr std::array<std::string_view, 7> kDayNames = {"SUN", "MON", "TUE", "WED",
                                                       "THU", "FRI", "SAT"};

// What one of the five fields accepts.
struct FieldSpec {
  int number;  // 1-based, for messages
  std::string_view name;
  int lo;
  int hi;
  const std::string_view* names;  // names for lo, lo+1, ...; nullptr when none
  size_t name_count;
};

constexpr std::array<FieldSpec, 5> kFields = {{
    {1, "minute", 0, 59, nullptr, 0},
    {2, "hour", 0, 23, nullptr, 0},
    {3, "day of month", 1, 31, nullptr, 0},
    {4, "month", 1, 12, kMonthNames.data(), kMonthNames.size()},
    {5, "day of week", 0, 7, kDayNames.data(), kDayNames.size()},
}};

Status FieldError(const FieldSpec& f, const std::string& what) {
  return InvalidArgument("cron field " + std::to_string(f.number) + " (" + std::string(f.name) +
                         "): " + what);
}

// A number or (for month and day of week) a name, checked against the field's range.
Result<int> ParseValue(const FieldSpec& f, std::string_view s) {
  if (s.empty()) return FieldError(f, "a value is missing");
  if (std::optional<int64_t> n = ParseNumber(s)) {
    if (*n < f.lo || *n > f.hi) {
      return FieldError(
          f, std::string(s) + " is out of " + std::to_string(f.lo) + "-" + std::to_string(f.hi));
    }
    return static_cast<int>(*n);
  }
  std::string upper = Upper(s);
  for (size_t i = 0; i < f.name_count; ++i) {
    if (f.names[i] == upper) return f.lo == 0 ? static_cast<int>(i) : static_cast<int>(i) + 1;
  }
  return FieldError(
      f, "'" + std::string(s) + "' is not a number" + (f.names != nullptr ? " or a name" : ""));
}

// One field into a set of values in [lo, hi] (as bits). Day of week 7 is folded into 0 later.
Result<std::bitset<64>> ParseField(const FieldSpec& f, std::string_view text) {
  std::bitset<64> bits;
  for (std::string_view item : Split(text, ',')) {
    if (item.empty()) return FieldError(f, "empty list item in '" + std::string(text) + "'");
    int step = 1;
    bool has_step = false;
    if (size_t slash = item.find('/'); slash != std::string_view::npos) {
      std::string_view step_text = item.substr(slash + 1);
      std::optional<int64_t> n = ParseNumber(step_text);
      int most = f.hi - f.lo + 1;
      if (!n || *n == 0 || *n > most) {
        return FieldError(f, "step '" + std::string(step_text) + "' must be a number in 1-" +
                                 std::to_string(most));
      }
      step = static_cast<int>(*n);
      has_step = true;
      item = item.substr(0, slash);
    }
    // Day of week runs 0-6 when not spelled out; 7 is Sunday again, folded into 0 later.
    int top = f.number == 5 ? 6 : f.hi;
    int lo = f.lo;
    int hi = top;
    if (item == "*") {
      // the whole range
    } else if (size_t dash = item.find('-'); dash != std::string_view::npos) {
      ASSIGN_OR_RETURN(lo, ParseValue(f, item.substr(0, dash)));
      ASSIGN_OR_RETURN(hi, ParseValue(f, item.substr(dash + 1)));
      if (lo > hi) {
        return FieldError(f, "range '" + std::string(item) + "' goes backwards");
      }
    } else {
      ASSIGN_OR_RETURN(lo, ParseValue(f, item));
      // "a/n" is croniter's (and so Airflow's) shorthand for "a-max/n".
      hi = has_step ? std::max(lo, top) : lo;
    }
    for (int v = lo; v <= hi; v += step) bits.set(static_cast<size_t>(v));
  }
  return bits;
}

template <size_t N>
std::bitset<N> Narrow(const std::bitset<64>& wide) {
  std::bitset<N> out;
  for (size_t i = 0; i < N; ++i) out[i] = wide[i];
  return out;
}

// The five fields of an expression, as sets of the values they match.
struct CronFields {
  std::bitset<60> minutes;
  std::bitset<24> hours;
  std::bitset<32> days_of_month;
  std::bitset<13> months;
  std::bitset<7> days_of_week;
  bool dom_restricted = false;
  bool dow_restricted = false;
};

Result<CronFields> ParseCronFields(std::string_view text) {
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    size_t start = i;
    while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i > start) words.push_back(text.substr(start, i - start));
  }
  if (words.size() != 5) {
    return InvalidArgument("cron expression '" + std::string(text) + "' has " +
                           std::to_string(words.size()) +
                           " fields; it needs 5 (minute hour day-of-month month day-of-week)");
  }
  std::array<std::bitset<64>, 5> bits;
  for (size_t f = 0; f < 5; ++f) {
    ASSIGN_OR_RETURN(bits[f], ParseField(kFields[f], words[f]));
  }
  if (bits[4][7]) bits[4].set(0);
  CronFields out;
  out.minutes = Narrow<60>(bits[0]);
  out.hours = Narrow<24>(bits[1]);
  out.days_of_month = Narrow<32>(bits[2]);
  out.months = Narrow<13>(bits[3]);
  out.days_of_week = Narrow<7>(bits[4]);
  // As croniter decides it: a field is restricted when it does not list every value, so
  // "*/1" is as unrestricted as "*".
  out.dom_restricted = out.days_of_month.count() != 31;
  out.dow_restricted = !out.days_of_week.all();
  return out;
}

struct Calendar {
  year_month_day ymd;
  std::chrono::weekday wd;
  int hour;
  int minute;
};

Calendar ToCalendar(TimePoint t) {
  sys_days day = std::chrono::floor<days>(t);
  std::chrono::hh_mm_ss<seconds> hms(t - day);
  return {year_month_day(day), std::chrono::weekday(day), static_cast<int>(hms.hours().count()),
          static_cast<int>(hms.minutes().count())};
}

sys_days FirstOfMonth(const year_month_day& ymd) {
  return sys_days(ymd.year() / ymd.month() / std::chrono::day(1));
}

std::string TwoDigits(int v) {
  std::array<char, 8> buf{};
  std::snprintf(buf.data(), buf.size(), "%02d", v);
  return buf.data();
}

// "0", "0, 30", "9-17", "1, 3-5": the set bits of `bits` in [lo, hi], ranges collapsed.
template <size_t N>
std::string ListOf(const std::bitset<N>& bits, int lo, int hi, std::string (*name)(int) = nullptr) {
  auto text = [&](int x) { return name != nullptr ? name(x) : std::to_string(x); };
  std::string out;
  for (int v = lo; v <= hi; ++v) {
    if (!bits[static_cast<size_t>(v)]) continue;
    int end = v;
    while (end < hi && bits[static_cast<size_t>(end) + 1]) ++end;
    if (!out.empty()) out += ", ";
    if (end - v >= 2) {
      out += text(v) + (name != nullptr ? " through " : "-") + text(end);
    } else {
      out += text(v);
      if (end > v) out += ", " + text(end);
    }
    v = end;
  }
  return out;
}

std::string MonthName(int m) {
  static constexpr std::array<std::string_view, 12> kNames = {
      "January", "February", "March",     "April",   "May",      "June",
      "July",    "August",   "September", "October", "November", "December"};
  return std::string(kNames[static_cast<size_t>(m - 1)]);
}

std::string DayName(int d) {
  static constexpr std::array<std::string_view, 7> kNames = {
      "Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"};
  return std::string(kNames[static_cast<size_t>(d)]);
}

// The step n when `bits` is exactly {0, n, 2n, ...} below `size` with n > 1, else 0.
template <size_t N>
int EvenStep(const std::bitset<N>& bits, int size) {
  if (!bits[0] || bits.count() < 2) return 0;
  int n = 1;
  while (!bits[static_cast<size_t>(n)]) ++n;
  for (int v = 0; v < size; ++v) {
    if (bits[static_cast<size_t>(v)] != (v % n == 0)) return 0;
  }
  return n;
}

template <size_t N>
int FirstSet(const std::bitset<N>& bits) {
  size_t v = 0;
  while (v < N && !bits[v]) ++v;
  return static_cast<int>(v);
}

// In the manner of cron_descriptor, which Airflow uses: "At 06:00, only on Monday".
std::string DescribeCron(const CronFields& c) {
  std::string out;
  bool every_hour = c.hours.all();
  int minute = FirstSet(c.minutes);
  if (c.minutes.all() && every_hour) {
    out = "Every minute";
  } else if (c.minutes.count() == 1 && every_hour) {
    out = minute == 0 ? "Every hour" : "At " + std::to_string(minute) + " minutes past the hour";
  } else if (int step = EvenStep(c.minutes, 60); step > 0 && every_hour) {
    out = "Every " + std::to_string(step) + " minutes";
  } else if (int hstep = EvenStep(c.hours, 24); hstep > 0 && c.minutes.count() == 1) {
    out = "Every " + std::to_string(hstep) + " hours";
    if (minute != 0) out += ", at " + std::to_string(minute) + " minutes past the hour";
  } else if (c.minutes.count() == 1 && c.hours.count() <= 4) {
    for (int h = 0; h < 24; ++h) {
      if (!c.hours[static_cast<size_t>(h)]) continue;
      out += (out.empty() ? "At " : ", ") + TwoDigits(h) + ":" + TwoDigits(minute);
    }
  } else {
    out = c.minutes.all() ? "Every minute" : "At minute " + ListOf(c.minutes, 0, 59);
    if (!every_hour) out += " past hour " + ListOf(c.hours, 0, 23);
  }
  std::string dom = ListOf(c.days_of_month, 1, 31);
  std::string dow = ListOf(c.days_of_week, 0, 6, DayName);
  if (c.dom_restricted && c.dow_restricted) {
    out += ", on day " + dom + " of the month or on " + dow;
  } else if (c.dom_restricted) {
    out += ", on day " + dom + " of the month";
  } else if (c.dow_restricted) {
    out += ", only on " + dow;
  }
  if (c.months.count() != 12) out += ", only in " + ListOf(c.months, 1, 12, MonthName);
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Cron

Result<Cron> Cron::Parse(std::string_view expression) {
  std::string_view text = TrimSpace(expression);
  ASSIGN_OR_RETURN(CronFields f, ParseCronFields(text));
  Cron cron;
  cron.expression_ = std::string(text);
  cron.minutes_ = f.minutes;
  cron.hours_ = f.hours;
  cron.days_of_month_ = f.days_of_month;
  cron.months_ = f.months;
  cron.days_of_week_ = f.days_of_week;
  cron.dom_restricted_ = f.dom_restricted;
  cron.dow_restricted_ = f.dow_restricted;
  return cron;
}

namespace {

bool DayMatches(const Calendar& f, const std::bitset<32>& dom, const std::bitset<7>& dow,
                bool dom_restricted, bool dow_restricted) {
  bool dom_ok = dom[static_cast<unsigned>(f.ymd.day())];
  bool dow_ok = dow[f.wd.c_encoding()];
  if (dom_restricted && dow_restricted) return dom_ok || dow_ok;
  return dom_ok && dow_ok;
}

}  // namespace

bool Cron::Matches(TimePoint t) const {
  Calendar f = ToCalendar(t);
  return months_[static_cast<unsigned>(f.ymd.month())] &&
         DayMatches(f, days_of_month_, days_of_week_, dom_restricted_, dow_restricted_) &&
         hours_[static_cast<size_t>(f.hour)] && minutes_[static_cast<size_t>(f.minute)];
}

std::optional<TimePoint> Cron::Next(TimePoint t) const {
  TimePoint limit = t + kHorizon;
  TimePoint c = std::chrono::floor<minutes>(t) + minutes(1);
  while (c <= limit) {
    Calendar f = ToCalendar(c);
    if (!months_[static_cast<unsigned>(f.ymd.month())]) {
      c = FirstOfMonth(f.ymd + std::chrono::months(1));
      continue;
    }
    if (!DayMatches(f, days_of_month_, days_of_week_, dom_restricted_, dow_restricted_)) {
      c = std::chrono::floor<days>(c) + days(1);
      continue;
    }
    if (!hours_[static_cast<size_t>(f.hour)]) {
      c = std::chrono::floor<hours>(c) + hours(1);
      continue;
    }
    int m = f.minute;
    while (m < 60 && !minutes_[static_cast<size_t>(m)]) ++m;
    if (m == 60) {
      c = std::chrono::floor<hours>(c) + hours(1);
      continue;
    }
    c = std::chrono::floor<hours>(c) + minutes(m);
    assert(Matches(c));
    return c <= limit ? std::optional<TimePoint>(c) : std::nullopt;
  }
  return std::nullopt;
}

std::optional<TimePoint> Cron::PrevOrAt(TimePoint t) const {
  TimePoint limit = t - kHorizon;
  TimePoint c = std::chrono::floor<minutes>(t);
  while (c >= limit) {
    Calendar f = ToCalendar(c);
    if (!months_[static_cast<unsigned>(f.ymd.month())]) {
      c = TimePoint(FirstOfMonth(f.ymd)) - minutes(1);
      continue;
    }
    if (!DayMatches(f, days_of_month_, days_of_week_, dom_restricted_, dow_restricted_)) {
      c = TimePoint(std::chrono::floor<days>(c)) - minutes(1);
      continue;
    }
    if (!hours_[static_cast<size_t>(f.hour)]) {
      c = std::chrono::floor<hours>(c) - minutes(1);
      continue;
    }
    int m = f.minute;
    while (m >= 0 && !minutes_[static_cast<size_t>(m)]) --m;
    if (m < 0) {
      c = std::chrono::floor<hours>(c) - minutes(1);
      continue;
    }
    c = std::chrono::floor<hours>(c) + minutes(m);
    assert(Matches(c));
    return c >= limit ? std::optional<TimePoint>(c) : std::nullopt;
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Timetable

Result<Timetable> Timetable::Parse(std::string_view schedule) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 7> kPresets = {{
      {"@hourly", "0 * * * *"},
      {"@daily", "0 0 * * *"},
      {"@midnight", "0 0 * * *"},
      {"@weekly", "0 0 * * 0"},
      {"@monthly", "0 0 1 * *"},
      {"@yearly", "0 0 1 1 *"},
      {"@annually", "0 0 1 1 *"},
  }};
  std::string_view text = TrimSpace(schedule);
  Timetable tt;
  tt.summary_ = std::string(text);
  if (text == "@once") {
    tt.once_ = true;
    return tt;
  }
  std::string_view cron_text = text;
  if (!text.empty() && text.front() == '@') {
    cron_text = {};
    for (const auto& [preset, expansion] : kPresets) {
      if (text == preset) cron_text = expansion;
    }
    if (cron_text.empty()) {
      return InvalidArgument("unknown schedule preset '" + std::string(text) +
                             "' (known: @once, @hourly, @daily, @midnight, @weekly, @monthly, "
                             "@yearly, @annually)");
    }
  }
  ASSIGN_OR_RETURN(Cron cron, Cron::Parse(cron_text));
  tt.cron_ = std::move(cron);
  return tt;
}

std::string Timetable::Description() const {
  if (once_) return "Once, at the start date";
  // Cron keeps its sets private; parsing its text again cannot fail, since it did not before.
  Result<CronFields> fields = ParseCronFields(cron_->expression());
  return fields.ok() ? DescribeCron(*fields) : cron_->expression();
}

std::optional<Interval> Timetable::First(TimePoint start_date) const {
  if (once_) return Interval{start_date, start_date};
  std::optional<TimePoint> start = cron_->Next(start_date - seconds(1));
  if (!start) return std::nullopt;
  std::optional<TimePoint> end = cron_->Next(*start);
  if (!end) return std::nullopt;
  return Interval{*start, *end};
}

std::optional<Interval> Timetable::After(const Interval& previous) const {
  if (once_) return std::nullopt;
  return First(previous.end);
}

std::optional<Interval> Timetable::LatestComplete(TimePoint start_date, TimePoint now) const {
  if (once_) {
    if (start_date > now) return std::nullopt;
    return Interval{start_date, start_date};
  }
  std::optional<TimePoint> end = cron_->PrevOrAt(now);
  if (!end) return std::nullopt;
  std::optional<TimePoint> start = cron_->PrevOrAt(*end - seconds(1));
  if (!start || *start < start_date) return std::nullopt;
  return Interval{*start, *end};
}

// ---------------------------------------------------------------------------------------------
// Times and durations

namespace {

// Reads exactly `n` digits at `pos`, advancing it.
std::optional<int> Digits(std::string_view s, size_t& pos, size_t n) {
  if (pos + n > s.size()) return std::nullopt;
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  pos += n;
  return v;
}

bool Eat(std::string_view s, size_t& pos, char c) {
  if (pos < s.size() && s[pos] == c) {
    ++pos;
    return true;
  }
  return false;
}

std::string Format(TimePoint t, std::string_view zone) {
  sys_days day = std::chrono::floor<days>(t);
  year_month_day ymd(day);
  std::chrono::hh_mm_ss<seconds> hms(t - day);
  std::array<char, 48> buf{};
  std::snprintf(buf.data(), buf.size(), "%04d-%02u-%02uT%02d:%02d:%02d",
                static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()), static_cast<int>(hms.hours().count()),
                static_cast<int>(hms.minutes().count()), static_cast<int>(hms.seconds().count()));
  return std::string(buf.data()) + std::string(zone);
}

}  // namespace

Result<TimePoint> ParseTime(std::string_view text) {
  std::string_view s = TrimSpace(text);
  auto bad = [&](std::string_view why) -> Status {
    return InvalidArgument("'" + std::string(s) + "' is not a date and time (" + std::string(why) +
                           "; expected YYYY-MM-DD[THH:MM[:SS]][Z|+HH:MM])");
  };
  size_t pos = 0;
  std::optional<int> y = Digits(s, pos, 4);
  bool dash1 = Eat(s, pos, '-');
  std::optional<int> mo = Digits(s, pos, 2);
  bool dash2 = Eat(s, pos, '-');
  std::optional<int> d = Digits(s, pos, 2);
  if (!y || !dash1 || !mo || !dash2 || !d) return bad("the date is not YYYY-MM-DD");
  year_month_day ymd{std::chrono::year(*y), std::chrono::month(static_cast<unsigned>(*mo)),
                     std::chrono::day(static_cast<unsigned>(*d))};
  if (!ymd.ok()) return bad("there is no such day");
  TimePoint t{sys_days(ymd)};
  if (pos == s.size()) return t;
  if (!Eat(s, pos, 'T') && !Eat(s, pos, 't') && !Eat(s, pos, ' ')) {
    return bad("unexpected text after the date");
  }
  std::optional<int> h = Digits(s, pos, 2);
  bool colon = Eat(s, pos, ':');
  std::optional<int> mi = Digits(s, pos, 2);
  if (!h || !colon || !mi) return bad("the time is not HH:MM");
  int sec = 0;
  if (Eat(s, pos, ':')) {
    std::optional<int> v = Digits(s, pos, 2);
    if (!v) return bad("the seconds are not two digits");
    sec = *v;
    if (Eat(s, pos, '.') || Eat(s, pos, ',')) {
      size_t start = pos;
      while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
      if (pos == start) return bad("no digits after the decimal point");
    }
  }
  if (*h > 23 || *mi > 59 || sec > 59) return bad("the time is out of range");
  t += hours(*h) + minutes(*mi) + seconds(sec);
  if (pos == s.size()) return t;
  if (Eat(s, pos, 'Z') || Eat(s, pos, 'z')) {
    if (pos != s.size()) return bad("unexpected text after 'Z'");
    return t;
  }
  bool plus = Eat(s, pos, '+');
  if (!plus && !Eat(s, pos, '-')) return bad("unexpected text after the time");
  std::optional<int> oh = Digits(s, pos, 2);
  Eat(s, pos, ':');
  std::optional<int> om = Digits(s, pos, 2);
  if (!oh || !om || pos != s.size()) return bad("the offset is not +HH:MM");
  if (*oh > 23 || *om > 59) return bad("the offset is out of range");
  seconds offset = hours(*oh) + minutes(*om);
  // Local time = UTC + offset.
  return plus ? t - offset : t + offset;
}

std::string FormatTime(TimePoint t) { return Format(t, "+00:00"); }

std::string FormatTimeZ(TimePoint t) { return Format(t, "Z"); }

Result<seconds> ParseDuration(std::string_view text) {
  std::string_view s = TrimSpace(text);
  auto bad = [&](std::string_view why) -> Status {
    return InvalidArgument("'" + std::string(s) + "' is not a duration (" + std::string(why) +
                           "; expected seconds, a form like 90s, 5m, 2h, 1d, 1h30m, or HH:MM:SS)");
  };
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max() / 2;
  if (s.empty()) return bad("it is empty");
  if (s.front() == '-') return bad("it is negative");
  if (std::optional<int64_t> n = ParseNumber(s)) return seconds(*n);

  if (s.find(':') != std::string_view::npos) {
    std::vector<std::string_view> parts = Split(s, ':');
    if (parts.size() != 3) return bad("a clock form needs three parts");
    if (parts[1].size() != 2 || parts[2].size() != 2) {
      return bad("hours, minutes and seconds must be digits, MM and SS two");
    }
    // value_or, not optionals held across branches: GCC 12 at -O2 takes those for
    // maybe-uninitialized.
    const int64_t h = ParseNumber(parts[0]).value_or(-1);
    const int64_t m = ParseNumber(parts[1]).value_or(-1);
    const int64_t sec = ParseNumber(parts[2]).value_or(-1);
    if (h < 0 || m < 0 || sec < 0) {
      return bad("hours, minutes and seconds must be digits, MM and SS two");
    }
    if (m > 59 || sec > 59) return bad("minutes and seconds must be below 60");
    if (h > kMax / 3600) return bad("it is too long");
    return seconds(h * 3600 + m * 60 + sec);
  }

  static constexpr std::array<std::pair<char, int64_t>, 4> kUnits = {
      {{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}}};
  int64_t total = 0;
  size_t next_unit = 0;  // units must come largest first, each at most once
  size_t pos = 0;
  while (pos < s.size()) {
    size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
    if (pos == start) return bad("a number is missing before a unit");
    std::optional<int64_t> n = ParseNumber(s.substr(start, pos - start));
    if (!n) return bad("it is too long");
    if (pos == s.size()) return bad("the last number has no unit");
    char unit = static_cast<char>(std::tolower(static_cast<unsigned char>(s[pos])));
    ++pos;
    size_t u = next_unit;
    while (u < kUnits.size() && kUnits[u].first != unit) ++u;
    if (u == kUnits.size()) {
      bool known = unit == 'd' || unit == 'h' || unit == 'm' || unit == 's';
      return bad(known ? "units must go from days down to seconds, each once"
                       : "unknown unit '" + std::string(1, s[pos - 1]) + "'");
    }
    if (*n > (kMax - total) / kUnits[u].second) return bad("it is too long");
    total += *n * kUnits[u].second;
    next_unit = u + 1;
  }
  return seconds(total);
}

}  // namespace tandem::dag
