// Deploying a DAG bundle: POST /api/v1/deployments/{deployment}/bundle with
// {"files": {"relative/path.yaml": "content", ...}} (what `tandem deploy` sends), and
// GET of the same path for the version a deployment runs.
//
// The files are parsed here (pure, in the request's thread), recorded as a bundle version
// named by its content digest, and the DAGs and import errors replaced in one transaction.
// Paths must be relative, without "." or ".." components; the whole request is bounded by the
// server's body limit.
#include "api/context.h"
#include "api/errors.h"
#include "api/json_util.h"
#include "dag/bundle.h"
#include "scheduler/bundle_cache.h"
#include "store/pipelines.h"
#include "store/store.h"

namespace tandem::api {
namespace {

constexpr size_t kMaxFiles = 1000;

Status CheckPath(const std::string& path) {
  auto bad = [&](const std::string& why) {
    return InvalidArgument("files: '" + path + "' " + why);
  };
  if (path.empty() || path.size() > 1024) return bad("must have 1 to 1024 characters");
  if (path[0] == '/') return bad("must be a relative path");
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string part = path.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") {
      return bad("must not contain empty, '.' or '..' components");
    }
    start = end + 1;
  }
  for (char c : path) {
    if (c == '\\' || static_cast<unsigned char>(c) < 0x20) {
      return bad("must not contain backslashes or control characters");
    }
  }
  return Status::Ok();
}

Json ErrorsJson(const std::vector<dag::ImportError>& errors) {
  Json out = Json::array();
  for (const dag::ImportError& e : errors) {
    out.push_back({{"filename", e.file}, {"line", e.line}, {"message", e.message}});
  }
  return out;
}

}  // namespace

void RegisterBundleRoutes(Router& r, const ApiContext& ctx) {
  const std::string path = "/api/v1/deployments/{deployment}/bundle";
  r.Add("POST", path, Wrap([ctx](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolveDeployment(*ctx.store, req));
          ASSIGN_OR_RETURN(Json body, ParseObject(req.body));
          RETURN_IF_ERROR(CheckFields(body, {"files"}, {"files"}));
          if (!body["files"].is_object()) {
            return InvalidArgument("files must be an object of path: content");
          }
          if (body["files"].size() > kMaxFiles) {
            return TooLarge("a bundle holds at most " + std::to_string(kMaxFiles) + " files");
          }
          std::map<std::string, std::string> files;
          for (const auto& [name, content] : body["files"].items()) {
            RETURN_IF_ERROR(CheckPath(name));
            if (!content.is_string()) return InvalidArgument("files: '" + name + "' must be text");
            files[name] = content.get<std::string>();
            if (files[name].find('\0') != std::string::npos) {
              return InvalidArgument("files: '" + name + "' contains a NUL character");
            }
          }
          auto bundle = std::make_shared<const dag::Bundle>(dag::ParseBundle(files));
          ASSIGN_OR_RETURN(store::DeployResult res, ctx.pipelines->Deploy(d, files, *bundle));
          ctx.bundles->Put(d, bundle->digest, bundle);
          ctx.wake_scheduler();
          Json dags = Json::array();
          for (const dag::DagSpec& dag : bundle->dags) dags.push_back(dag.dag_id);
          return JsonResponse(200, {{"bundle_version", res.bundle_version},
                                    {"unchanged", res.unchanged},
                                    {"dags", dags},
                                    {"new_dag_versions", res.new_dag_versions},
                                    {"stale_dags", res.stale_dags},
                                    {"import_errors", ErrorsJson(res.import_errors)}});
        }));
  r.Add("GET", path, Wrap([ctx](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolveDeployment(*ctx.store, req));
          ASSIGN_OR_RETURN(std::string version, ctx.pipelines->CurrentBundleVersion(d));
          ASSIGN_OR_RETURN(auto files, ctx.pipelines->BundleFiles(d, version));
          Json names = Json::array();
          for (const auto& [name, content] : files) names.push_back(name);
          return JsonResponse(200, {{"bundle_version", version}, {"files", names}});
        }));
}

}  // namespace tandem::api
