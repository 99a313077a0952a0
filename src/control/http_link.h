// RegionLink over the region agent's internal DR API (rpc::Client; docs/api.md).
#pragma once

#include <memory>
#include <string>

#include "control/region_link.h"
#include "tls/certificates.h"

namespace tandem::rpc {
class Client;
}

namespace tandem::control {

class HttpRegionLink final : public RegionLink {
 public:
  // `url` is the region's "http://address:port"; `credential` the pair's internal bearer.
  // `timeout` bounds quick calls (state, promise, resume, rejoin); step-down and promote,
  // which take as long as draining and promotion take, get their own longer bounds.
  HttpRegionLink(std::string name, const std::string& url, const std::string& credential,
                 Duration timeout, std::string source_address = "", tls::Trust trust = {});
  ~HttpRegionLink() override;

  const std::string& name() const override { return name_; }
  Result<RegionView> State() override;
  Result<PromiseResult> Promise(int64_t epoch) override;
  Result<StepDownResult> StepDown(int64_t epoch, Duration drain) override;
  Status Resume(int64_t epoch) override;
  Result<PromoteResult> Promote(int64_t epoch, bool forced) override;
  Status Rejoin(int64_t epoch, const std::string& primary) override;

 private:
  std::string name_;
  std::string url_;
  std::string credential_;
  std::string source_;
  const tls::Trust trust_;
  std::unique_ptr<rpc::Client> quick_;
  std::unique_ptr<rpc::Client> slow_;
};

}  // namespace tandem::control
