#include "control/http_link.h"

#include <nlohmann/json.hpp>

#include "control/wire.h"
#include "rpc/client.h"

namespace tandem::control {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

Result<Json> ParseReply(const std::string& body, const std::string& what) {
  Json j = Json::parse(body, nullptr, false);
  if (!j.is_object()) return Internal(what + ": the region answered something that is not JSON");
  return j;
}

}  // namespace

HttpRegionLink::HttpRegionLink(std::string name, const std::string& url,
                               const std::string& credential, Duration timeout,
                               std::string source_address, tls::Trust trust)
    : name_(std::move(name)),
      url_(url),
      credential_(credential),
      source_(std::move(source_address)),
      trust_(std::move(trust)),
      quick_(std::make_unique<rpc::Client>(url, credential, timeout, source_, trust_)),
      slow_(std::make_unique<rpc::Client>(url, credential, 120s, source_, trust_)) {}

HttpRegionLink::~HttpRegionLink() = default;

Result<RegionView> HttpRegionLink::State() {
  ASSIGN_OR_RETURN(std::string body, quick_->CallOk("GET", "/internal/v1/dr/state"));
  return ViewFromJson(body);
}

Result<PromiseResult> HttpRegionLink::Promise(int64_t epoch) {
  ASSIGN_OR_RETURN(std::string body, quick_->CallOk("POST", "/internal/v1/dr/promise",
                                                    Json{{"epoch", epoch}}.dump()));
  ASSIGN_OR_RETURN(Json j, ParseReply(body, "promise"));
  PromiseResult r;
  r.promised = j.value("promised", int64_t{0});
  r.outstanding = std::chrono::milliseconds(j.value("outstanding_ms", int64_t{0}));
  return r;
}

Result<StepDownResult> HttpRegionLink::StepDown(int64_t epoch, Duration drain) {
  const auto drain_ms = std::chrono::duration_cast<std::chrono::milliseconds>(drain).count();
  rpc::Client c(url_, credential_, drain + 30s, source_, trust_);
  ASSIGN_OR_RETURN(std::string body,
                   c.CallOk("POST", "/internal/v1/dr/step-down",
                            Json{{"epoch", epoch}, {"drain_ms", drain_ms}}.dump()));
  ASSIGN_OR_RETURN(Json j, ParseReply(body, "step-down"));
  StepDownResult r;
  r.final_lsn = j.value("final_lsn", uint64_t{0});
  r.still_running = j.value("still_running", int64_t{0});
  return r;
}

Status HttpRegionLink::Resume(int64_t epoch) {
  return quick_->CallOk("POST", "/internal/v1/dr/resume", Json{{"epoch", epoch}}.dump()).status();
}

Result<PromoteResult> HttpRegionLink::Promote(int64_t epoch, bool forced) {
  ASSIGN_OR_RETURN(std::string body,
                   slow_->CallOk("POST", "/internal/v1/dr/promote",
                                 Json{{"epoch", epoch}, {"forced", forced}}.dump()));
  ASSIGN_OR_RETURN(Json j, ParseReply(body, "promote"));
  PromoteResult r;
  r.reconciled = j.value("reconciled", int64_t{0});
  return r;
}

Status HttpRegionLink::Rejoin(int64_t epoch, const std::string& primary) {
  return quick_
      ->CallOk("POST", "/internal/v1/dr/rejoin",
               Json{{"epoch", epoch}, {"primary", primary}}.dump())
      .status();
}

}  // namespace tandem::control
