#include "api/pipeline_json.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "dag/timetable.h"

namespace tandem::api {
namespace {

// Seconds since the epoch of an RFC 3339 time, with its fraction (dag::ParseTime drops it).
std::optional<double> EpochSeconds(const std::string& t) {
  auto whole = dag::ParseTime(t);
  if (!whole.ok()) return std::nullopt;
  double s = static_cast<double>(whole->time_since_epoch().count());
  size_t dot = t.find('.');
  if (dot != std::string::npos) {
    double scale = 0.1;
    for (size_t i = dot + 1; i < t.size() && std::isdigit(static_cast<unsigned char>(t[i]));
         ++i, scale /= 10) {
      s += (t[i] - '0') * scale;
    }
  }
  return s;
}

// Airflow's DagVersionResponse from the version fields a task instance carries.
Json TiDagVersion(const model::TaskInstance& ti) {
  if (ti.dag_version_id.empty()) return nullptr;
  return DagVersionJson({ti.dag_version_id, ti.dag_version_number, ti.dag_id, ti.bundle_version,
                         ti.dag_version_created_at});
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

Json TextOrNull(const std::string& s) { return s.empty() ? Json(nullptr) : Json(s); }

Json DurationOrNull(const std::string& start, const std::string& end) {
  if (start.empty() || end.empty()) return nullptr;
  std::optional<double> a = EpochSeconds(start);
  std::optional<double> b = EpochSeconds(end);
  if (!a || !b) return nullptr;
  return *b - *a;
}

Json DagVersionJson(const model::DagVersion& v) {
  return {{"id", v.id},
          {"version_number", v.version_number},
          {"dag_id", v.dag_id},
          {"bundle_name", kBundleName},
          {"bundle_version", TextOrNull(v.bundle_version)},
          {"created_at", v.created_at},
          {"dag_display_name", v.dag_id},
          {"bundle_url", nullptr}};
}

Json DagRunJson(const model::DagRun& r) {
  Json conf = nullptr;
  if (auto parsed = ParseJson(r.conf, "conf"); parsed.ok() && parsed->is_object()) {
    conf = std::move(parsed).value();
  }
  Json versions = Json::array();
  if (!r.dag_version.id.empty()) versions.push_back(DagVersionJson(r.dag_version));
  return {{"dag_run_id", r.run_id},
          {"dag_id", r.dag_id},
          {"logical_date", TextOrNull(r.logical_date)},
          {"queued_at", TextOrNull(r.queued_at)},
          {"start_date", TextOrNull(r.start_date)},
          {"end_date", TextOrNull(r.end_date)},
          {"duration", DurationOrNull(r.start_date, r.end_date)},
          {"data_interval_start", TextOrNull(r.data_interval_start)},
          {"data_interval_end", TextOrNull(r.data_interval_end)},
          {"run_after", r.run_after},
          {"last_scheduling_decision", TextOrNull(r.last_scheduling_decision)},
          {"run_type", r.run_type},
          {"state", r.state},
          {"triggered_by", TextOrNull(r.triggered_by)},
          {"triggering_user_name", nullptr},
          {"conf", conf},
          {"note", r.note ? Json(*r.note) : Json(nullptr)},
          {"dag_versions", versions},
          {"bundle_version", TextOrNull(r.bundle_version)},
          {"dag_display_name", r.dag_id}};
}

Json TaskInstanceTryJson(const model::TaskInstance& ti) {
  return {{"task_id", ti.task_id},
          {"dag_id", ti.dag_id},
          {"dag_run_id", ti.run_id},
          {"map_index", -1},
          {"start_date", TextOrNull(ti.start_date)},
          {"end_date", TextOrNull(ti.end_date)},
          {"duration", DurationOrNull(ti.start_date, ti.end_date)},
          {"state", TextOrNull(ti.state)},
          {"try_number", ti.try_number},
          {"max_tries", ti.max_tries},
          {"task_display_name", ti.task_id},
          {"dag_display_name", ti.dag_id},
          {"hostname", TextOrNull(ti.hostname)},
          {"unixname", TextOrNull(ti.unixname)},
          {"pool", ti.pool},
          {"pool_slots", ti.pool_slots},
          {"queue", nullptr},
          {"priority_weight", ti.priority_weight},
          {"operator", TextOrNull(ti.operator_name)},
          {"operator_name", TextOrNull(ti.operator_name)},
          {"queued_when", TextOrNull(ti.queued_when)},
          {"scheduled_when", TextOrNull(ti.scheduled_when)},
          {"pid", ti.pid ? Json(*ti.pid) : Json(nullptr)},
          {"executor", nullptr},
          {"executor_config", "{}"},
          {"dag_version", TiDagVersion(ti)}};
}

Json TaskInstanceJson(const model::TaskInstance& ti) {
  Json j = TaskInstanceTryJson(ti);
  j["id"] = ti.id;
  j["logical_date"] = TextOrNull(ti.logical_date);
  j["run_after"] = ti.run_after;
  j["note"] = ti.note ? Json(*ti.note) : Json(nullptr);
  j["rendered_map_index"] = nullptr;
  j["rendered_fields"] = Json::object();
  j["trigger"] = nullptr;
  j["triggerer_job"] = nullptr;
  return j;
}

Json TaskInstanceCollection(const std::vector<model::TaskInstance>& tis, int64_t total) {
  Json items = Json::array();
  for (const auto& ti : tis) items.push_back(TaskInstanceJson(ti));
  return {{"task_instances", items}, {"total_entries", total}};
}

Result<DeploymentId> ResolvePipelineDeployment(store::Store* store,
                                               const store::Pipelines* pipelines,
                                               const Request& req) {
  if (pipelines == nullptr) return Unavailable("this region does not serve pipelines yet");
  return ResolveDeployment(*store, req);
}

Result<std::vector<std::string>> QueryValues(const Request& req, const char* name,
                                             std::initializer_list<std::string_view> allowed) {
  std::vector<std::string> out;
  auto [b, e] = req.query.equal_range(name);
  for (auto it = b; it != e; ++it) {
    const std::string& s = it->second;
    size_t i = 0;
    while (i <= s.size()) {
      size_t j = std::min(s.find(',', i), s.size());
      std::string v = s.substr(i, j - i);
      i = j + 1;
      if (v.empty()) continue;
      if (allowed.size() > 0 && std::find(allowed.begin(), allowed.end(), v) == allowed.end()) {
        std::string msg = std::string("query parameter `") + name + "` has an invalid value \"";
        msg.append(v).append("\" (expected one of: ");
        bool first = true;
        for (auto a : allowed) {
          msg.append(first ? "" : ", ").append(a);
          first = false;
        }
        return InvalidArgument(msg + ")");
      }
      out.push_back(std::move(v));
    }
  }
  return out;
}

Result<std::optional<bool>> QueryBool(const Request& req, const char* name) {
  const std::string* v = req.Query(name);
  if (v == nullptr) return std::optional<bool>();
  std::string s = Lower(*v);
  if (s == "true" || s == "1" || s == "yes" || s == "on") return std::optional<bool>(true);
  if (s == "false" || s == "0" || s == "no" || s == "off") return std::optional<bool>(false);
  return InvalidArgument(std::string("query parameter `") + name +
                         "` must be true or false, got \"" + *v + "\"");
}

Result<int64_t> PathInt(const Request& req, const char* name) {
  const std::string& text = req.params.at(name);
  int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size()) {
    return InvalidArgument(std::string("path parameter `") + name + "` must be an integer, got \"" +
                           text + "\"");
  }
  return v;
}

Status CheckMapIndex(const Request& req) {
  const std::string* v = req.Query("map_index");
  if (v == nullptr || *v == "-1") return Status::Ok();
  return NotFound("tandem has no mapped task instances: map_index " + *v +
                  " does not exist (only -1)");
}

}  // namespace tandem::api
