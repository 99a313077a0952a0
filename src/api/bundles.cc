// Deploying a DAG bundle: POST /api/v1/deployments/{deployment}/bundle with either
// {"image": {"repository": "<namespace>/bundle", "digest": "sha256:..."}} — an OCI image
// `tandem deploy` pushed to this region's registry, read back here with every digest checked —
// or {"files": {"relative/path.yaml": "content", ...}}, which a region with a registry packages
// as an image itself; and "allow_unreplicated": true to complete before the standby's registry
// holds the image. GET of the same path: the version a deployment runs and its image.
//
// The files are parsed here (pure, in the request's thread), recorded as a bundle version
// named by its content digest, and the DAGs and import errors replaced in one transaction.
// Paths must be relative, without "." or ".." components; the whole request is bounded by the
// server's body limit.
#include "api/context.h"
#include "api/errors.h"
#include "api/json_util.h"
#include "base/text.h"
#include "dag/bundle.h"
#include "scheduler/bundle_cache.h"
#include "store/identities.h"
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

// `replicated` is null in a region without a standby (nothing to replicate to).
Json ImageJson(const store::BundleImage& image, const BundleImages* images) {
  const bool standby = images != nullptr && images->has_standby();
  return {{"repository", image.repository},
          {"digest", image.digest},
          {"bytes", image.bytes},
          {"replicated", standby ? Json(image.replicated) : Json(nullptr)}};
}

// Of `asked`, what `who` may do: a repository belongs to the deployment whose namespace is its
// first path component; pulling needs the deployment's viewer, pushing its editor.
std::optional<images::RegistryAccess> Allowed(const ApiContext& ctx, const auth::Principal& who,
                                              const images::RegistryAccess& asked) {
  const std::string ns = asked.name.substr(0, asked.name.find('/'));
  Result<DeploymentId> d = ctx.store->FindByNamespace(ns);
  if (!d.ok()) return std::nullopt;
  Result<auth::Target> target = ctx.identities->TargetOf(d->value());
  if (!target.ok()) return std::nullopt;
  const std::optional<auth::Role> role = auth::DeploymentRole(who, *target);
  if (!role) return std::nullopt;
  images::RegistryAccess out{asked.name, {}};
  for (const std::string& action : asked.actions) {
    if (action == "pull" || *role >= auth::Role::kEditor) out.actions.push_back(action);
  }
  if (out.actions.empty()) return std::nullopt;
  return out;
}

}  // namespace

void RegisterBundleRoutes(Router& r, const ApiContext& ctx) {
  // Where `tandem deploy` pushes images: this region's registry.
  r.Add("GET", "/api/v1/registry", Wrap([ctx](const Request&) -> Result<Response> {
          if (ctx.images == nullptr) {
            return NotFound("region " + ctx.region + " runs no registry");
          }
          return JsonResponse(200, {{"url", ctx.images->registry_url()},
                                    {"region", ctx.region},
                                    {"token_auth", ctx.images->takes_tokens()}});
        }));
  // The registries' token realm (the Docker Registry v2 token scheme): a token granting, of the
  // scopes asked, what the principal's roles allow — pull to a deployment's viewers, push to its
  // editors — and nothing else, as the scheme wants (never a refusal for a scope).
  r.Add("GET", "/api/v1/registry/token", Wrap([ctx](const Request& req) -> Result<Response> {
          if (ctx.images == nullptr) {
            return NotFound("region " + ctx.region + " runs no registry");
          }
          if (const std::string* service = req.Query("service");
              service != nullptr && *service != images::kRegistryService) {
            return InvalidArgument("this realm serves the service `" +
                                   std::string(images::kRegistryService) + "`, not `" +
                                   service->substr(0, 100) + "`");
          }
          std::vector<images::RegistryAccess> granted;
          auto [from, to] = req.query.equal_range("scope");
          for (auto it = from; it != to; ++it) {
            // Several scopes may come in one parameter, separated by spaces.
            for (const std::string& one : SplitNonEmpty(it->second, ' ')) {
              ASSIGN_OR_RETURN(images::RegistryAccess asked, images::ParseRegistryScope(one));
              std::optional<images::RegistryAccess> allowed = Allowed(ctx, *req.principal, asked);
              if (allowed) granted.push_back(std::move(*allowed));
            }
          }
          ASSIGN_OR_RETURN(std::string token,
                           ctx.images->RegistryToken(req.principal->name, granted));
          return JsonResponse(200, {{"token", token},
                                    {"access_token", token},
                                    {"expires_in", images::kRegistryTokenSeconds}});
        }));
  const std::string path = "/api/v1/deployments/{deployment}/bundle";
  r.Add("POST", path, Wrap([ctx](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolveDeployment(*ctx.store, req));
          ASSIGN_OR_RETURN(Json body, ParseObject(req.body));
          RETURN_IF_ERROR(CheckFields(body, {"files", "image", "allow_unreplicated"}, {}));
          if (body.contains("files") == body.contains("image")) {
            return InvalidArgument("exactly one of files or image is required");
          }
          bool allow_unreplicated = false;
          if (body.contains("allow_unreplicated")) {
            if (!body["allow_unreplicated"].is_boolean()) {
              return InvalidArgument("allow_unreplicated must be true or false");
            }
            allow_unreplicated = body["allow_unreplicated"].get<bool>();
          }
          ASSIGN_OR_RETURN(model::Deployment dep, ctx.store->GetDeployment(d.value()));
          const std::string repository = dep.ns + "/bundle";
          std::map<std::string, std::string> files;
          std::optional<store::BundleImage> image;
          if (body.contains("image")) {
            // Pushed by `tandem deploy` to this region's registry; read back and checked here.
            if (ctx.images == nullptr) {
              return FailedPrecondition("region " + ctx.region +
                                        " runs no registry; deploy the files instead");
            }
            const Json& im = body["image"];
            if (!im.is_object()) return InvalidArgument("image must be an object");
            RETURN_IF_ERROR(CheckFields(im, {"repository", "digest"}, {"repository", "digest"}));
            if (!im["repository"].is_string() || !im["digest"].is_string()) {
              return InvalidArgument("image.repository and image.digest must be strings");
            }
            if (im["repository"].get<std::string>() != repository) {
              return InvalidArgument("image.repository must be this deployment's, '" + repository +
                                     "', not '" + im["repository"].get<std::string>() + "'");
            }
            image = store::BundleImage{repository, im["digest"].get<std::string>()};
            Result<std::map<std::string, std::string>> got =
                ctx.images->Fetch(repository, image->digest, &image->bytes);
            if (!got.ok()) {
              if (got.status().code() == Code::kNotFound) {
                return InvalidArgument("image " + repository + "@" + image->digest +
                                       " is not in region " + ctx.region + "'s registry (" +
                                       ctx.images->registry_url() + "): push it first");
              }
              return got.status().WithContext("image " + repository + "@" + image->digest);
            }
            files = std::move(got).value();
            if (files.size() > kMaxFiles) {
              return TooLarge("a bundle holds at most " + std::to_string(kMaxFiles) + " files");
            }
            for (const auto& [name, content] : files) {
              RETURN_IF_ERROR(CheckPath(name));
              if (content.find('\0') != std::string::npos) {
                return InvalidArgument("files: '" + name + "' contains a NUL character");
              }
            }
          } else {
            if (!body["files"].is_object()) {
              return InvalidArgument("files must be an object of path: content");
            }
            if (body["files"].size() > kMaxFiles) {
              return TooLarge("a bundle holds at most " + std::to_string(kMaxFiles) + " files");
            }
            for (const auto& [name, content] : body["files"].items()) {
              RETURN_IF_ERROR(CheckPath(name));
              if (!content.is_string()) {
                return InvalidArgument("files: '" + name + "' must be text");
              }
              files[name] = content.get<std::string>();
              if (files[name].find('\0') != std::string::npos) {
                return InvalidArgument("files: '" + name + "' contains a NUL character");
              }
            }
            if (ctx.images != nullptr) {
              // Every version this region deploys is an image, however it arrived.
              ASSIGN_OR_RETURN(BundleImages::Published p, ctx.images->Publish(repository, files));
              image = store::BundleImage{repository, p.digest, p.bytes};
            }
          }
          if (image) {
            // The deploy completes only once the standby holds the image too, unless the
            // caller accepts that it follows later.
            Status rep = ctx.images->Replicate(repository, image->digest);
            if (rep.ok()) {
              image->replicated = true;
            } else if (!allow_unreplicated) {
              return Unavailable("the standby's registry does not hold image " + repository + "@" +
                                 image->digest + ": " + rep.message() +
                                 ". Nothing was deployed; retry when the standby is back, or "
                                 "deploy with allow_unreplicated (tandem deploy "
                                 "--allow-unreplicated) to copy it as soon as it can be");
            }
          }
          auto bundle = std::make_shared<const dag::Bundle>(dag::ParseBundle(files));
          ASSIGN_OR_RETURN(store::DeployResult res,
                           ctx.pipelines->Deploy(d, files, *bundle, image));
          ctx.bundles->Put(d, bundle->digest, bundle);
          ctx.wake_scheduler();
          Json dags = Json::array();
          for (const dag::DagSpec& dag : bundle->dags) dags.push_back(dag.dag_id);
          Json out = {{"bundle_version", res.bundle_version},
                      {"unchanged", res.unchanged},
                      {"dags", dags},
                      {"new_dag_versions", res.new_dag_versions},
                      {"stale_dags", res.stale_dags},
                      {"import_errors", ErrorsJson(res.import_errors)}};
          if (image) out["image"] = ImageJson(*image, ctx.images);
          return JsonResponse(200, out);
        }));
  r.Add("GET", path, Wrap([ctx](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolveDeployment(*ctx.store, req));
          ASSIGN_OR_RETURN(std::string version, ctx.pipelines->CurrentBundleVersion(d));
          ASSIGN_OR_RETURN(auto files, ctx.pipelines->BundleFiles(d, version));
          Json names = Json::array();
          for (const auto& [name, content] : files) names.push_back(name);
          Json out = {{"bundle_version", version}, {"files", names}, {"image", nullptr}};
          ASSIGN_OR_RETURN(std::optional<store::BundleImage> image,
                           ctx.pipelines->VersionImage(d, version));
          if (image) out["image"] = ImageJson(*image, ctx.images);
          return JsonResponse(200, out);
        }));
}

}  // namespace tandem::api
