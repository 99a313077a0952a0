#include "control/wire.h"

#include <nlohmann/json.hpp>

namespace tandem::control {

using Json = nlohmann::json;

std::string ViewToJson(const RegionView& v) {
  Json replicas = Json::array();
  for (const ReplicaView& r : v.replicas) {
    replicas.push_back({{"name", r.name},
                        {"state", r.state},
                        {"sync_state", r.sync_state},
                        {"replay_lsn", r.replay_lsn},
                        {"replay_lag_s", r.replay_lag_s}});
  }
  Json j = {{"name", v.name},
            {"role", v.role},
            {"epoch", v.epoch},
            {"promised", v.promised},
            {"lease_held", v.lease_held},
            {"lease_remaining_s", v.lease_remaining_s},
            {"in_recovery", v.in_recovery},
            {"current_lsn", v.current_lsn},
            {"receive_lsn", v.receive_lsn},
            {"replay_lsn", v.replay_lsn},
            {"replay_age_s", v.replay_age_s},
            {"streaming", v.streaming},
            {"replicas", replicas},
            {"sync_mode", v.sync_mode},
            {"sync_degraded", v.sync_degraded},
            {"commit_ms", v.commit_ms},
            {"peer_silent_s", v.peer_silent_s},
            {"resync_state", v.resync_state},
            {"resync_detail", v.resync_detail},
            {"running_tasks", v.running_tasks},
            {"logs",
             {{"chunks_behind", v.log_chunks_behind},
              {"bytes_behind", v.log_bytes_behind},
              {"oldest_s", v.log_oldest_s},
              {"lag_p50_s", v.log_lag_p50_s},
              {"lag_p99_s", v.log_lag_p99_s},
              {"error", v.log_error}}},
            {"images", {{"unreplicated", v.images_unreplicated}, {"error", v.images_error}}}};
  if (v.namespaces) j["namespaces"] = *v.namespaces;
  return j.dump();
}

Result<RegionView> ViewFromJson(const std::string& text) {
  Json j = Json::parse(text, nullptr, false);
  if (!j.is_object()) return InvalidArgument("a region's state is not a JSON object");
  RegionView v;
  try {
    v.name = j.at("name").get<std::string>();
    v.role = j.at("role").get<std::string>();
    v.epoch = j.at("epoch").get<int64_t>();
    v.promised = j.at("promised").get<int64_t>();
    v.lease_held = j.at("lease_held").get<bool>();
    v.lease_remaining_s = j.at("lease_remaining_s").get<double>();
    v.in_recovery = j.at("in_recovery").get<bool>();
    v.current_lsn = j.at("current_lsn").get<uint64_t>();
    v.receive_lsn = j.at("receive_lsn").get<uint64_t>();
    v.replay_lsn = j.at("replay_lsn").get<uint64_t>();
    v.replay_age_s = j.at("replay_age_s").get<double>();
    v.streaming = j.at("streaming").get<bool>();
    for (const Json& r : j.at("replicas")) {
      v.replicas.push_back({r.at("name").get<std::string>(), r.at("state").get<std::string>(),
                            r.at("sync_state").get<std::string>(),
                            r.at("replay_lsn").get<uint64_t>(),
                            r.at("replay_lag_s").get<double>()});
    }
    v.sync_mode = j.at("sync_mode").get<std::string>();
    v.sync_degraded = j.at("sync_degraded").get<bool>();
    v.commit_ms = j.at("commit_ms").get<double>();
    v.peer_silent_s = j.at("peer_silent_s").get<double>();
    v.resync_state = j.at("resync_state").get<std::string>();
    v.resync_detail = j.at("resync_detail").get<std::string>();
    v.running_tasks = j.at("running_tasks").get<int64_t>();
    // Absent from a region that replicates no logs or images.
    if (j.contains("logs")) {
      const Json& l = j["logs"];
      v.log_chunks_behind = l.at("chunks_behind").get<uint64_t>();
      v.log_bytes_behind = l.at("bytes_behind").get<uint64_t>();
      v.log_oldest_s = l.at("oldest_s").get<double>();
      v.log_lag_p50_s = l.at("lag_p50_s").get<double>();
      v.log_lag_p99_s = l.at("lag_p99_s").get<double>();
      v.log_error = l.at("error").get<std::string>();
    }
    if (j.contains("images")) {
      v.images_unreplicated = j["images"].at("unreplicated").get<int64_t>();
      v.images_error = j["images"].at("error").get<std::string>();
    }
    if (j.contains("namespaces")) v.namespaces = j["namespaces"].get<std::vector<std::string>>();
  } catch (const Json::exception& e) {
    return InvalidArgument(std::string("a region's state is malformed: ") + e.what());
  }
  return v;
}

}  // namespace tandem::control
