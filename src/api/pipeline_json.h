// What the pipeline resource files (dags.cc, dag_runs.cc, task_instances.cc, xcoms.cc,
// import_errors.cc) share: Airflow's response shapes for DAG versions, DAG runs and task
// instances built from the store's model, and the query and path readers those endpoints need.
// Internal to the api module (it includes nlohmann/json through json_util.h).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/json_util.h"
#include "base/status.h"
#include "model/pipeline.h"

namespace tandem::store {
class Store;
class Pipelines;
}  // namespace tandem::store

namespace tandem::api {

// Airflow's name for the bundle of a DAG folder: a deployment has exactly one bundle.
inline constexpr const char* kBundleName = "dags-folder";

// null for "" (the model's "none"), else the text.
Json TextOrNull(const std::string& s);
// Seconds from `start` to `end` (RFC 3339), or null when either is missing or unreadable.
Json DurationOrNull(const std::string& start, const std::string& end);

Json DagVersionJson(const model::DagVersion& v);          // DagVersionResponse
Json DagRunJson(const model::DagRun& r);                  // DAGRunResponse
Json TaskInstanceJson(const model::TaskInstance& ti);     // TaskInstanceResponse
Json TaskInstanceTryJson(const model::TaskInstance& ti);  // TaskInstanceHistoryResponse
// {"task_instances": [...], "total_entries": N}, Airflow's TaskInstanceCollectionResponse.
Json TaskInstanceCollection(const std::vector<model::TaskInstance>& tis, int64_t total);

// The deployment of the request, once the region has the pipeline store wired (503 before).
Result<DeploymentId> ResolvePipelineDeployment(store::Store* store,
                                               const store::Pipelines* pipelines,
                                               const Request& req);

// Every value of a repeatable query parameter (state=a&state=b, or state=a,b), each one of
// `allowed` (InvalidArgument naming the parameter otherwise); an empty `allowed` takes any.
Result<std::vector<std::string>> QueryValues(const Request& req, const char* name,
                                             std::initializer_list<std::string_view> allowed);
// A boolean query parameter as FastAPI reads one (true/false, 1/0, yes/no, on/off); nullopt
// when absent.
Result<std::optional<bool>> QueryBool(const Request& req, const char* name);
// An integer path parameter; InvalidArgument when it is not one.
Result<int64_t> PathInt(const Request& req, const char* name);
// tandem has no mapped tasks: `map_index`, when given, must be -1 (Airflow's "not mapped").
Status CheckMapIndex(const Request& req);

}  // namespace tandem::api
