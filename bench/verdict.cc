#include "bench/verdict.h"

#include <cmath>

#include "bench/bench_util.h"

namespace tandem::bench {
namespace {

// Every run asked for was measured, and gave a figure.
bool Complete(const std::vector<double>& per_run, int runs_asked) {
  // Median is NaN when the list is empty or holds a NaN.
  return runs_asked > 0 && static_cast<int>(per_run.size()) == runs_asked &&
         !std::isnan(Median(per_run));
}

}  // namespace

std::string_view VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kNotMeasured:
      return "NOT MEASURED";
    case Verdict::kMet:
      return "met";
    case Verdict::kMissed:
      return "MISSED";
  }
  return "?";
}

Verdict JudgeMedian(const std::vector<double>& per_run, int runs_asked, double limit, bool strict) {
  if (!Complete(per_run, runs_asked)) return Verdict::kNotMeasured;
  const double m = Median(per_run);
  return (strict ? m < limit : m <= limit) ? Verdict::kMet : Verdict::kMissed;
}

Verdict JudgeLoss(const std::vector<double>& rpo_per_run, int runs_asked, double target,
                  int missing, int lost_after) {
  if (!Complete(rpo_per_run, runs_asked)) return Verdict::kNotMeasured;
  if (lost_after > 0) return Verdict::kMissed;
  if (target == 0) return missing == 0 ? Verdict::kMet : Verdict::kMissed;
  return Median(rpo_per_run) <= target ? Verdict::kMet : Verdict::kMissed;
}

}  // namespace tandem::bench
