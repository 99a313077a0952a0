#include "scheduler/trigger_rules.h"

namespace tandem::scheduler {
namespace {

enum class Verdict { kWait, kRun, kSkip, kUpstreamFailed };

Verdict Judge(const store::PendingTask& t) {
  const int failed = t.failed + t.upstream_failed;
  const bool all_done = t.done >= t.upstream;
  const std::string& rule = t.trigger_rule;
  if (rule == "always" || t.upstream == 0) return Verdict::kRun;
  if (rule == "all_success") {
    if (failed > 0) return Verdict::kUpstreamFailed;
    if (t.skipped > 0) return Verdict::kSkip;
    return t.success == t.upstream ? Verdict::kRun : Verdict::kWait;
  }
  if (rule == "all_failed") {
    if (t.success > 0 || t.skipped > 0) return Verdict::kSkip;
    return failed == t.upstream ? Verdict::kRun : Verdict::kWait;
  }
  if (rule == "all_done") return all_done ? Verdict::kRun : Verdict::kWait;
  if (rule == "one_success") {
    if (t.success > 0) return Verdict::kRun;
    if (!all_done) return Verdict::kWait;
    return t.skipped == t.upstream ? Verdict::kSkip : Verdict::kUpstreamFailed;
  }
  if (rule == "one_failed") {
    if (failed > 0) return Verdict::kRun;
    return all_done ? Verdict::kSkip : Verdict::kWait;
  }
  if (rule == "none_failed") {
    if (failed > 0) return Verdict::kUpstreamFailed;
    return all_done ? Verdict::kRun : Verdict::kWait;
  }
  if (rule == "none_skipped") {
    if (t.skipped > 0) return Verdict::kSkip;
    return all_done ? Verdict::kRun : Verdict::kWait;
  }
  return Verdict::kWait;  // unknown rules never reach here: bundles are checked at import
}

}  // namespace

std::optional<std::string> Evaluate(const store::PendingTask& t) {
  switch (Judge(t)) {
    case Verdict::kWait:
      return std::nullopt;
    case Verdict::kRun:
      return t.operator_name == "EmptyOperator" ? "success" : "scheduled";
    case Verdict::kSkip:
      return "skipped";
    case Verdict::kUpstreamFailed:
      return "upstream_failed";
  }
  return std::nullopt;
}

}  // namespace tandem::scheduler
