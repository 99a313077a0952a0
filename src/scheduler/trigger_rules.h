// Airflow's trigger rules: given what a task's upstream task instances have come to, may it
// run now, must it wait, or is its fate already decided? Pure.
#pragma once

#include <optional>
#include <string>

#include "store/scheduling.h"

namespace tandem::scheduler {

// The state a pending task instance moves to now ("scheduled", "skipped", "upstream_failed",
// or "success" for an EmptyOperator that may run), or nullopt to wait. Removed upstream tasks
// do not count. Follows Airflow: under all_success a failed upstream makes upstream_failed and
// a skipped one makes skipped; one_success with every upstream done and none succeeded is
// upstream_failed (skipped when all were skipped); none_failed fails upstream on a failure.
std::optional<std::string> Evaluate(const store::PendingTask& t);

}  // namespace tandem::scheduler
