// The JSON of the region's internal DR API (docs/api.md, "Internal DR API"): one place that
// writes a RegionView (the region agent) and reads it (the control plane), so the two cannot
// drift apart.
#pragma once

#include <string>

#include "base/status.h"
#include "control/region_link.h"

namespace tandem::control {

std::string ViewToJson(const RegionView& v);
// InvalidArgument naming the field when the text is not a RegionView.
Result<RegionView> ViewFromJson(const std::string& text);

}  // namespace tandem::control
