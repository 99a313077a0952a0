// Distinct types for identities, so a run id can never be passed where a deployment id goes.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>

namespace tandem {

// A value of type T tagged with Tag. Explicit in, explicit out.
template <typename T, typename Tag>
class StrongId {
 public:
  StrongId() = default;
  explicit StrongId(T v) : v_(std::move(v)) {}
  const T& value() const { return v_; }
  auto operator<=>(const StrongId&) const = default;  // NOLINT(modernize-use-nullptr): a
                                                       // clang-tidy 14 false positive on <=>

 private:
  T v_{};
};

using DeploymentId = StrongId<std::string, struct DeploymentIdTag>;  // UUID text
using Epoch = StrongId<int64_t, struct EpochTag>;
using Lsn = StrongId<uint64_t, struct LsnTag>;

}  // namespace tandem

template <typename T, typename Tag>
struct std::hash<tandem::StrongId<T, Tag>> {
  size_t operator()(const tandem::StrongId<T, Tag>& id) const noexcept {
    return std::hash<T>{}(id.value());
  }
};
