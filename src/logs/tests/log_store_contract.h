// The LogStore contract as tests: every backend runs the same cases. A test binary
// instantiates LogStoreContractTest with the backends it can provide:
//
//   INSTANTIATE_TEST_SUITE_P(Dir, LogStoreContractTest,
//                            ::testing::Values(ContractParam{"dir", &MakeDirBackend}),
//                            ContractParamName);
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "logs/log_store.h"

namespace tandem::logs::test {

// What one test runs against: a store, and another store on the same objects, as a second
// process would open it. Owns whatever the store needs (a directory, a server).
class ContractBackend {
 public:
  virtual ~ContractBackend() = default;
  virtual LogStore& store() = 0;
  virtual Result<LogStorePtr> OpenAnother() = 0;
};

struct ContractParam {
  const char* name;
  Result<std::unique_ptr<ContractBackend>> (*make)();
};

inline std::string ContractParamName(const ::testing::TestParamInfo<ContractParam>& info) {
  return info.param.name;
}

class LogStoreContractTest : public ::testing::TestWithParam<ContractParam> {
 protected:
  void SetUp() override;
  LogStore& store() { return backend_->store(); }
  // The whole object, read in pieces of `piece` bytes following next_offset.
  std::string ReadAll(LogStore& s, const std::string& key, uint64_t piece = uint64_t{1} << 30);
  std::string ReadAll(const std::string& key) { return ReadAll(store(), key); }

  std::unique_ptr<ContractBackend> backend_;
};

}  // namespace tandem::logs::test
