// Verdicts: whether a benchmark met a target, judged the same way by every benchmark.
//
// A benchmark measures a figure once per run (or round) and reports the median. The verdict is
// what a reader trusts without reading the runs, so it is strict: a target is judged only when
// every run asked for gave its figure — a run that could not measure it (a NaN: a ramp that
// timed out, an interrupted probe) makes the verdict "not measured", never a median over the
// runs that did. A loss target of zero is met only when nothing was lost at all, whatever the
// median of the lost ages says.
#pragma once

#include <string_view>
#include <vector>

namespace tandem::bench {

enum class Verdict { kNotMeasured, kMet, kMissed };

// "NOT MEASURED", "met" or "MISSED", as the benchmarks print them.
std::string_view VerdictName(Verdict v);

// A figure measured once per run (NaN where a run could not) against `limit`: met when the
// median is at most `limit` (below it, when `strict`).
Verdict JudgeMedian(const std::vector<double>& per_run, int runs_asked, double limit,
                    bool strict = false);

// The acknowledged writes a failover lost. `rpo_per_run` is each run's age, at the failure, of
// the oldest acknowledged write missing afterwards (0 when none is); `missing` counts those
// writes over every run and `lost_after` those of them acknowledged after the failure — writes
// a region took while it was not the only active one, never allowed. Where `target` is 0 no
// write may be missing; elsewhere the median age must be at most `target`.
Verdict JudgeLoss(const std::vector<double>& rpo_per_run, int runs_asked, double target,
                  int missing, int lost_after);

}  // namespace tandem::bench
