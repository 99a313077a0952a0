// `tandem deploy`, `tandem dags|runs|tasks ...`: a deployment's pipelines. The other commands
// speak Airflow REST API v2 under AirflowRoot(deployment). Ids travel in paths escaped, one
// segment each: run ids hold ':' and '+'.
//
// `deploy` packages a directory as the deployment's DAG bundle:
//   1. GET  /api/v1/deployments/{deployment}   its namespace; the image goes to the repository
//                                               "<namespace>/bundle"
//   2. GET  /api/v1/registry                   200 {"url", "region"}: the active region's OCI
//                                               registry; 404: the region runs none
//   3. the bundle as an OCI image (images::BuildImage), pushed to that registry by digest and
//      as "latest" (images::PushImage)
//   4. POST /api/v1/deployments/{deployment}/bundle
//           {"image": {"repository", "digest"}, "allow_unreplicated"}
//      and the region answers once the standby's registry holds the image (or, when allowed,
//      before), with "image": {"repository", "digest", "bytes", "replicated"}.
// A region without a registry gets the files themselves ({"files": {"path": "content"}}).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "app/call.h"
#include "base/clock.h"
#include "base/fs.h"
#include "base/text.h"
#include "images/oci_image.h"
#include "images/registry.h"
#include "images/registry_client.h"
#include "images/registry_token.h"

namespace tandem::app {
namespace {

namespace fs = std::filesystem;

struct Args {
  std::string deployment, dir, dag_id, run_id, task_id;
  std::optional<std::string> conf, logical_date, new_run_id, state;
  std::optional<int> try_number;
  bool only_failed = false, dry_run = false, follow = false, allow_unreplicated = false;
};

// ---- paths

std::string DagPath(const Args& a) {
  return AirflowRoot(a.deployment) + "/dags/" + PathEscape(a.dag_id);
}
std::string RunPath(const Args& a) { return DagPath(a) + "/dagRuns/" + PathEscape(a.run_id); }
std::string TisPath(const Args& a) { return RunPath(a) + "/taskInstances"; }
std::string TiPath(const Args& a) { return TisPath(a) + "/" + PathEscape(a.task_id); }
std::string LogPath(const Args& a, int try_number) {
  return TiPath(a) + "/logs/" + std::to_string(try_number);
}

// ---- reading a bundle directory

// True when `s` is well-formed UTF-8: no stray continuation bytes, overlong forms, surrogates
// or code points past U+10FFFF.
bool IsUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n = 0;
    uint32_t cp = 0, min = 0;
    if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    for (size_t k = 1; k <= n; ++k) {
      auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

bool Inside(const fs::path& root, const fs::path& p) {
  return std::mismatch(root.begin(), root.end(), p.begin(), p.end()).first == root.end();
}

// What `tandem deploy` gathers from DIR: every regular file below it that is not hidden, by
// its path relative to DIR with '/' separators.
struct BundleDir {
  std::string given;  // DIR as the user wrote it, for messages
  fs::path root;      // DIR, canonical
  Json files = Json::object();
  bool has_yaml = false;
};

std::string Shown(const BundleDir& b, const std::string& rel) {
  return (fs::path(b.given) / rel).string();
}

Status AddFile(BundleDir& b, const fs::path& path, const std::string& rel) {
  Result<std::string> text = ReadFile(path.string());
  if (!text.ok()) return InvalidArgument(text.status().message());
  if (text->find('\0') != std::string::npos || !IsUtf8(*text)) {
    return InvalidArgument(Shown(b, rel) +
                           " is not UTF-8 text, and a bundle holds text files only: move it out "
                           "of " +
                           b.given + " or give it a name that starts with '.'");
  }
  if (rel.ends_with(".yaml") || rel.ends_with(".yml")) b.has_yaml = true;
  b.files[rel] = std::move(text).value();
  return Status::Ok();
}

// Reads `dir` (whose path relative to DIR is `prefix`) into `b`. `open_dirs` holds the
// canonical paths of the directories being walked, so a link back to one of them is caught
// instead of followed forever.
Status Walk(BundleDir& b, const fs::path& dir, const std::string& prefix,
            std::vector<fs::path>& open_dirs) {
  std::error_code ec;
  std::vector<fs::directory_entry> entries;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    entries.push_back(*it);
  }
  if (ec) {
    return InvalidArgument("cannot read the directory " +
                           (prefix.empty() ? b.given : Shown(b, prefix)) + ": " + ec.message());
  }
  std::sort(entries.begin(), entries.end());
  for (const fs::directory_entry& e : entries) {
    std::string name = e.path().filename().string();
    if (name.empty() || name[0] == '.') continue;  // hidden: .git, .airflowignore, editors' files
    std::string rel = prefix;
    if (!rel.empty()) rel += '/';
    rel += name;
    fs::path real = e.path();
    if (e.is_symlink(ec)) {
      real = fs::canonical(e.path(), ec);
      if (ec) {
        return InvalidArgument(Shown(b, rel) + " is a symbolic link that leads nowhere (" +
                               ec.message() + ")");
      }
      if (!Inside(b.root, real)) {
        return InvalidArgument(Shown(b, rel) + " is a symbolic link to " + real.string() +
                               ", outside " + b.given + ": only links within it are deployed");
      }
    }
    fs::file_status st = fs::status(real, ec);
    if (ec) return InvalidArgument("cannot read " + Shown(b, rel) + ": " + ec.message());
    if (fs::is_directory(st)) {
      fs::path canon = fs::canonical(real, ec);
      if (ec) return InvalidArgument("cannot read " + Shown(b, rel) + ": " + ec.message());
      if (std::find(open_dirs.begin(), open_dirs.end(), canon) != open_dirs.end()) {
        return InvalidArgument(Shown(b, rel) + " links back to a directory that holds it");
      }
      open_dirs.push_back(canon);
      RETURN_IF_ERROR(Walk(b, canon, rel, open_dirs));
      open_dirs.pop_back();
    } else if (fs::is_regular_file(st)) {
      RETURN_IF_ERROR(AddFile(b, real, rel));
    }  // sockets, FIFOs and devices are no bundle files
  }
  return Status::Ok();
}

// {"path": "content", ...} of every file `tandem deploy DIR` sends.
Result<Json> ReadBundleDir(const std::string& dir) {
  std::error_code ec;
  fs::path root = fs::canonical(dir, ec);
  if (ec) return InvalidArgument("cannot read the directory " + dir + ": " + ec.message());
  if (!fs::is_directory(root, ec)) return InvalidArgument(dir + " is not a directory");
  BundleDir b{.given = dir, .root = root};
  std::vector<fs::path> open_dirs{root};
  RETURN_IF_ERROR(Walk(b, root, "", open_dirs));
  if (!b.has_yaml) {
    return InvalidArgument(dir +
                           " holds no .yaml or .yml file: nothing to deploy (names that "
                           "start with '.' are skipped)");
  }
  return std::move(b.files);
}

// ---- output

std::string Join(const Json& list) {
  std::string out;
  for (const auto& v : list) out += (out.empty() ? "" : ", ") + Cell(v);
  return out;
}

// Seconds as "12.3s"; empty when unknown.
std::string Duration(const Json& v) {
  if (!v.is_number()) return "";
  char buf[32];
  snprintf(buf, sizeof buf, "%.1fs", v.get<double>());
  return buf;
}

void PrintDeploy(const Json& j, bool allow_unreplicated) {
  printf("bundle_version: %s%s\n", Cell(j["bundle_version"]).c_str(),
         j["unchanged"] == true ? " (unchanged: the deployment runs it already)" : "");
  printf("dags: %s\n", j["dags"].empty() ? "(none)" : Join(j["dags"]).c_str());
  printf("new_dag_versions: %s\n", Cell(j["new_dag_versions"]).c_str());
  printf("stale_dags: %s\n", Cell(j["stale_dags"]).c_str());
  if (!j.contains("image") || !j["image"].is_object()) return;
  const Json& image = j["image"];
  const std::string digest = Cell(image["digest"]);
  if (image["replicated"] == true) {
    printf("image %s replicated to the standby\n", digest.c_str());
  } else if (image["replicated"] == false) {
    printf(
        "image %s NOT yet replicated to the standby%s: it will be copied when the standby's "
        "registry answers\n",
        digest.c_str(), allow_unreplicated ? " (--allow-unreplicated)" : "");
  } else {
    printf("image %s\n", digest.c_str());  // a region without a standby
  }
}

std::vector<std::string> DagRow(const Json& d) {
  return {Cell(d["dag_id"]), Cell(d["is_paused"]),
          d["timetable_summary"].is_null() ? "manual" : Cell(d["timetable_summary"]),
          Cell(d["next_dagrun_logical_date"]), Join(d["owners"])};
}
const std::vector<std::string> kDagHeader = {"DAG ID", "PAUSED", "SCHEDULE", "NEXT RUN", "OWNERS"};

std::vector<std::string> RunRow(const Json& r) {
  return {Cell(r["dag_id"]),       Cell(r["dag_run_id"]), Cell(r["state"]),
          Cell(r["logical_date"]), Cell(r["start_date"]), Cell(r["end_date"])};
}
const std::vector<std::string> kRunHeader = {"DAG ID",       "RUN ID", "STATE",
                                             "LOGICAL DATE", "START",  "END"};

void PrintTis(const Json& j) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& t : j["task_instances"]) {
    rows.push_back({Cell(t["task_id"]), Cell(t["state"]), Cell(t["try_number"]),
                    Cell(t["start_date"]), Cell(t["end_date"]), Duration(t["duration"])});
  }
  PrintTable({"TASK ID", "STATE", "TRY", "START", "END", "DURATION"}, rows);
}

// An import error's stack_trace is "<file>:<line>: <message>", or "<file>: <message>" when the
// error is about the whole file (api/import_errors.cc): its line and its message.
std::pair<std::string, std::string> SplitTrace(const std::string& file, const std::string& trace) {
  if (trace.rfind(file, 0) != 0) return {"", trace};
  size_t i = file.size();
  std::string line;
  if (i + 1 < trace.size() && trace[i] == ':' &&
      std::isdigit(static_cast<unsigned char>(trace[i + 1]))) {
    size_t end = i + 1;
    while (end < trace.size() && std::isdigit(static_cast<unsigned char>(trace[end]))) ++end;
    line = trace.substr(i + 1, end - i - 1);
    i = end;
  }
  if (trace.compare(i, 2, ": ") == 0) i += 2;
  return {line, trace.substr(i)};
}

// Sends one request and hands its JSON answer to *out; on failure prints the error and returns
// the exit code, as Call does.
int Fetch(const Globals& g, const std::string& method, const std::string& path, const Json& body,
          Json* out) {
  Globals quiet = g;
  quiet.output = "table";  // so that Print passes the answer on instead of printing it
  return Call(quiet, method, path, body, [out](const Json& j) { *out = j; });
}

// ---- commands

// The region's registry: *url is set from GET /api/v1/registry, or left empty when the region
// runs none (404), and *tokens to whether it wants bearer tokens from the region's realm. On
// failure prints the error and returns the exit code.
int RegistryUrl(const Globals& g, std::string* url, bool* tokens) {
  Result<HttpResult> r = Send(g, "GET", "/api/v1/registry", nullptr);
  if (!r.ok()) return Fail(r.status());
  if (r->status == 404) return 0;
  if (r->status >= 400) return FailHttp(*r);
  Json j = Json::parse(r->body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("url") || !j["url"].is_string()) {
    return Fail(Internal("the region's GET /api/v1/registry answered without a registry url"));
  }
  *url = j["url"].get<std::string>();
  *tokens = j.value("token_auth", false);
  return 0;
}

// Registry tokens from the region's realm, for the CLI's own credential.
Result<std::string> RealmToken(const Globals& g, const std::string& scope) {
  std::string path = std::string("/api/v1/registry/token?service=") + images::kRegistryService;
  if (!scope.empty()) path += "&scope=" + PercentEncode(scope);
  ASSIGN_OR_RETURN(HttpResult r, Send(g, "GET", path, nullptr));
  Json j = Json::parse(r.body, nullptr, false);
  if (r.status != 200) {
    std::string detail = j.is_object() ? j.value("detail", r.body) : r.body;
    return Status(r.status == 401   ? Code::kUnauthenticated
                  : r.status == 403 ? Code::kPermissionDenied
                                    : Code::kUnavailable,
                  "the region's token realm answered " + std::to_string(r.status) + ": " +
                      detail.substr(0, 300));
  }
  if (!j.is_object() || !j.contains("token") || !j["token"].is_string()) {
    return Internal("the region's token realm answered without a token");
  }
  return j["token"].get<std::string>();
}

// Packages `files` as an image and pushes it to the registry at `url`, as `repository` by
// digest and as "latest". Sets *digest to the image's manifest digest. On failure prints the
// error, naming the registry, and returns the exit code.
int PushBundleImage(const Globals& g, const std::string& url, bool tokens,
                    const std::string& repository, const Json& files, std::string* digest) {
  Result<std::string> ca_file = ResolveCaFile(g.target);
  if (!ca_file.ok()) return Fail(ca_file.status());
  images::Files contents;
  for (const auto& [path, text] : files.items()) contents[path] = text.get<std::string>();
  Result<images::Image> image = images::BuildImage(contents);
  if (!image.ok()) return Fail(image.status().WithContext("packaging the bundle as an image"));
  images::RegistryClientOptions o{.url = url, .trust = {*ca_file}};
  if (tokens) o.token = [&g](const std::string& scope) { return RealmToken(g, scope); };
  Result<images::RegistryPtr> registry = images::NewRegistryClient(std::move(o));
  if (!registry.ok()) {
    return Fail(Internal("the region named a registry this CLI cannot use: " +
                         registry.status().message()));
  }
  if (Status up = (*registry)->Ping(); !up.ok()) {
    // Its messages start with "registry <url>: ".
    std::string why = up.message();
    if (const std::string own = "registry " + url + ": "; why.starts_with(own)) {
      why = why.substr(own.size());
    }
    return Fail(Status(
        up.code(), "cannot reach the registry at " + url + ": " + why + "; nothing was deployed"));
  }
  if (Status s = images::PushImage(**registry, repository, "latest", *image); !s.ok()) {
    std::string hint;
    if (tokens && s.code() == Code::kUnauthenticated) {
      hint =
          " (the region's realm gave this credential no right to push there: deploying needs "
          "the deployment's editor role)";
    }
    return Fail(Status(s.code(), "pushing the image to the registry at " + url +
                                     " failed; nothing was deployed" + hint + ": " + s.message()));
  }
  *digest = image->digest;
  return 0;
}

// The body of POST .../bundle: the image of `files`, pushed to the region's registry, or the
// files themselves when the region runs no registry. On failure prints the error and returns
// the exit code.
int BundleBody(const Globals& g, const Args& a, const std::string& deployment_path, Json files,
               Json* body) {
  Json deployment;
  if (int code = Fetch(g, "GET", deployment_path, nullptr, &deployment); code != 0) return code;
  std::string url;
  bool tokens = false;
  if (int code = RegistryUrl(g, &url, &tokens); code != 0) return code;
  if (url.empty()) {
    fprintf(stderr,
            "the region runs no registry: uploading the files themselves, without an image\n");
    *body = {{"files", std::move(files)}};
    return 0;
  }
  if (!deployment.contains("namespace") || !deployment["namespace"].is_string()) {
    return Fail(
        Internal("the region's answer for deployment " + a.deployment + " has no namespace"));
  }
  const std::string repository = deployment["namespace"].get<std::string>() + "/bundle";
  if (Status s = images::ValidateRepository(repository); !s.ok()) {
    return Fail(InvalidArgument("the namespace of deployment " + a.deployment +
                                " makes no valid image repository: " + s.message()));
  }
  std::string digest;
  if (int code = PushBundleImage(g, url, tokens, repository, files, &digest); code != 0) {
    return code;
  }
  *body = {{"image", {{"repository", repository}, {"digest", digest}}},
           {"allow_unreplicated", a.allow_unreplicated}};
  return 0;
}

int Deploy(const Globals& g, const Args& a) {
  Result<Json> files = ReadBundleDir(a.dir);
  if (!files.ok()) return Fail(files.status());
  const std::string path = "/api/v1/deployments/" + PathEscape(a.deployment);
  Json body;
  if (int code = BundleBody(g, a, path, std::move(files).value(), &body); code != 0) return code;
  Json answer;
  Globals patient = g;
  patient.read_timeout_seconds = 3700;  // above the longest image_replication_timeout_seconds
  if (int code = Fetch(patient, "POST", path + "/bundle", body, &answer); code != 0) return code;
  if (g.format() == Format::kJson) {
    printf("%s\n", answer.dump(2).c_str());
  } else {
    PrintDeploy(answer, a.allow_unreplicated);
  }
  // Import errors do not fail the deploy: they are recorded, and the other files' DAGs run.
  const Json& errors = answer["import_errors"];
  if (!errors.empty()) {
    fprintf(stderr, "import errors (recorded; `tandem dags errors %s` lists them):\n",
            a.deployment.c_str());
    for (const auto& e : errors) {
      std::string where = Cell(e["filename"]);
      if (e["line"].is_number_integer() && e["line"].get<int>() > 0) {
        where += ":" + std::to_string(e["line"].get<int>());
      }
      fprintf(stderr, "%s: %s\n", where.c_str(), Cell(e["message"]).c_str());
    }
  }
  return 0;
}

int Trigger(const Globals& g, const Args& a) {
  Json conf = Json::object();
  if (a.conf) {
    conf = Json::parse(*a.conf, nullptr, false);
    if (conf.is_discarded() || !conf.is_object()) {
      return Fail(
          InvalidArgument("--conf must be a JSON object, e.g. '{\"day\": \"2025-03-04\"}'"));
    }
  }
  Json body = {{"logical_date", a.logical_date ? Json(*a.logical_date) : Json(nullptr)},
               {"conf", conf}};
  if (a.new_run_id) body["dag_run_id"] = *a.new_run_id;
  return Call(g, "POST", DagPath(a) + "/dagRuns", body,
              [](const Json& r) { PrintTable(kRunHeader, {RunRow(r)}); });
}

int GetRun(const Globals& g, const Args& a) {
  Json run, tis;
  if (int code = Fetch(g, "GET", RunPath(a), nullptr, &run); code != 0) return code;
  if (int code = Fetch(g, "GET", TisPath(a) + "?limit=1000", nullptr, &tis); code != 0) {
    return code;
  }
  if (g.format() == Format::kJson) {
    printf("%s\n",
           Json({{"dag_run", run}, {"task_instances", tis["task_instances"]}}).dump(2).c_str());
    return 0;
  }
  PrintTable({"FIELD", "VALUE"}, {{"dag_id", Cell(run["dag_id"])},
                                  {"run_id", Cell(run["dag_run_id"])},
                                  {"state", Cell(run["state"])},
                                  {"run_type", Cell(run["run_type"])},
                                  {"logical_date", Cell(run["logical_date"])},
                                  {"queued_at", Cell(run["queued_at"])},
                                  {"start_date", Cell(run["start_date"])},
                                  {"end_date", Cell(run["end_date"])},
                                  {"conf", Cell(run["conf"])},
                                  {"note", Cell(run["note"])}});
  printf("\n");
  PrintTis(tis);
  return 0;
}

bool Finished(const Json& state) {
  for (const char* s : {"success", "failed", "skipped", "upstream_failed", "removed"}) {
    if (state == s) return true;
  }
  return false;
}

int TryOf(const Json& ti) {
  return ti["try_number"].is_number_integer() ? ti["try_number"].get<int>() : 0;
}

// The whole log of one try, as raw text.
int PrintLog(const Globals& g, const Args& a) {
  int try_number = a.try_number.value_or(0);
  if (!a.try_number) {
    Json ti;
    if (int code = Fetch(g, "GET", TiPath(a), nullptr, &ti); code != 0) return code;
    try_number = TryOf(ti);
    if (try_number == 0) {
      return Fail(NotFound("task " + a.task_id + " of run " + a.run_id +
                           " has not started yet: it has no log (use --follow to wait for it)"));
    }
  }
  Result<Client> client = Client::Connect(g.target);
  if (!client.ok()) return Fail(client.status());
  Result<HttpResult> r = client->Send("GET", LogPath(a, try_number) + "?full_content=true", "",
                                      {{"Accept", "text/plain"}});
  if (!r.ok()) return Fail(r.status());
  if (r->status >= 400) return FailHttp(*r);
  fwrite(r->body.data(), 1, r->body.size(), stdout);
  return 0;
}

// Prints the log as it grows, once a second, until the task instance finishes. Without --try it
// follows the current try, and the next one when the task is retried or cleared; with --try,
// that try until it is over. The JSON answer carries the continuation token (the text/plain
// one does not); it holds the log as lines, so a line still being written when read prints as
// a line of its own.
int FollowLog(const Globals& g, const Args& a) {
  std::optional<int> following = a.try_number;
  std::string token;
  for (;;) {
    Json ti;
    if (int code = Fetch(g, "GET", TiPath(a), nullptr, &ti); code != 0) return code;
    // The log is read after the state: a try's log is complete before its state says that the
    // try is over, so nothing is left unread when the loop ends.
    int current = TryOf(ti);
    if (!following && current > 0) following = current;
    if (following) {
      Json chunk;
      std::string path = LogPath(a, *following) + "?full_content=true";
      if (!token.empty()) path += "&token=" + token;
      if (int code = Fetch(g, "GET", path, nullptr, &chunk); code != 0) return code;
      for (const auto& e : chunk["content"]) printf("%s\n", Cell(e["event"]).c_str());
      fflush(stdout);
      if (chunk["continuation_token"].is_string()) {
        token = PathEscape(chunk["continuation_token"].get<std::string>());
      }
    }
    if (Finished(ti["state"])) return 0;
    if (following && current > *following) {
      if (a.try_number) return 0;  // the try asked for is over
      following = current;         // a new try began: its log from the start, at once
      token.clear();
      continue;
    }
    RealClock().SleepFor(std::chrono::seconds(1));
  }
}

// ---- registration

void AddDeploy(CLI::App& app, Globals& g, Run* run, const std::shared_ptr<Args>& a) {
  auto* deploy = app.add_subcommand(
      "deploy",
      "Deploy a directory (every file, recursively) as the deployment's DAG bundle, packaged as "
      "an OCI image and pushed to the active region's registry");
  deploy->add_option("deployment", a->deployment, "Name or id")->required();
  deploy->add_option("dir", a->dir, "The bundle directory (names starting with '.' are skipped)")
      ->required();
  deploy->add_flag("--allow-unreplicated", a->allow_unreplicated,
                   "Deploy even when the standby's registry cannot take the image yet (it is "
                   "copied as soon as it can be)");
  deploy->callback([run, &g, a] { *run = [&g, a] { return Deploy(g, *a); }; });
}

void AddDags(CLI::App& app, Globals& g, Run* run, const std::shared_ptr<Args>& a) {
  auto* dags = app.add_subcommand("dags", "A deployment's DAGs");
  dags->require_subcommand(1);

  auto* list = dags->add_subcommand("list", "List DAGs");
  list->add_option("deployment", a->deployment, "Name or id")->required();
  list->callback([run, &g, a] {
    *run = [&g, a] {
      return Call(g, "GET", AirflowRoot(a->deployment) + "/dags?limit=1000", nullptr,
                  [](const Json& j) {
                    std::vector<std::vector<std::string>> rows;
                    for (const auto& d : j["dags"]) rows.push_back(DagRow(d));
                    PrintTable(kDagHeader, rows);
                  });
    };
  });

  auto* trigger = dags->add_subcommand("trigger", "Queue a manual run of a DAG");
  trigger->add_option("deployment", a->deployment, "Name or id")->required();
  trigger->add_option("dag_id", a->dag_id)->required();
  trigger->add_option("--conf", a->conf, "The run's conf: a JSON object");
  trigger->add_option("--logical-date", a->logical_date,
                      "RFC 3339, e.g. 2025-03-04T00:00:00Z (default: none)");
  trigger->add_option("--run-id", a->new_run_id, "The run's id (default: manual__<time>)");
  trigger->callback([run, &g, a] { *run = [&g, a] { return Trigger(g, *a); }; });

  for (bool pause : {true, false}) {
    auto* cmd = dags->add_subcommand(pause ? "pause" : "unpause",
                                     pause ? "Pause a DAG: no new runs are scheduled"
                                           : "Unpause a DAG: its schedule and queued runs go on");
    cmd->add_option("deployment", a->deployment, "Name or id")->required();
    cmd->add_option("dag_id", a->dag_id)->required();
    cmd->callback([run, &g, a, pause] {
      *run = [&g, a, pause] {
        return Call(g, "PATCH", DagPath(*a), {{"is_paused", pause}},
                    [](const Json& d) { PrintTable(kDagHeader, {DagRow(d)}); });
      };
    });
  }

  auto* errors = dags->add_subcommand("errors", "List the bundle files that did not import");
  errors->add_option("deployment", a->deployment, "Name or id")->required();
  errors->callback([run, &g, a] {
    *run = [&g, a] {
      return Call(g, "GET", AirflowRoot(a->deployment) + "/importErrors?limit=1000", nullptr,
                  [](const Json& j) {
                    std::vector<std::vector<std::string>> rows;
                    for (const auto& e : j["import_errors"]) {
                      std::string file = Cell(e["filename"]);
                      auto [line, message] = SplitTrace(file, Cell(e["stack_trace"]));
                      rows.push_back({file, line, message});
                    }
                    PrintTable({"FILENAME", "LINE", "MESSAGE"}, rows);
                  });
    };
  });
}

void AddRuns(CLI::App& app, Globals& g, Run* run, const std::shared_ptr<Args>& a) {
  auto* runs = app.add_subcommand("runs", "A deployment's DAG runs");
  runs->require_subcommand(1);

  auto* list = runs->add_subcommand("list", "List DAG runs, the latest first");
  list->add_option("deployment", a->deployment, "Name or id")->required();
  list->add_option("dag_id", a->dag_id, "Only this DAG's runs (default: every DAG's)");
  list->add_option("--state", a->state, "queued | running | success | failed");
  list->callback([run, &g, a] {
    *run = [&g, a] {
      Args x = *a;
      if (x.dag_id.empty()) x.dag_id = "~";  // Airflow's "every DAG"
      std::string path = DagPath(x) + "/dagRuns?order_by=-run_after&limit=1000";
      if (x.state) path += "&state=" + PathEscape(*x.state);
      return Call(g, "GET", path, nullptr, [](const Json& j) {
        std::vector<std::vector<std::string>> rows;
        for (const auto& r : j["dag_runs"]) rows.push_back(RunRow(r));
        PrintTable(kRunHeader, rows);
      });
    };
  });

  auto* get = runs->add_subcommand("get", "Show a DAG run and its task instances");
  get->add_option("deployment", a->deployment, "Name or id")->required();
  get->add_option("dag_id", a->dag_id)->required();
  get->add_option("run_id", a->run_id)->required();
  get->callback([run, &g, a] { *run = [&g, a] { return GetRun(g, *a); }; });

  auto* clear = runs->add_subcommand("clear", "Run a DAG run's task instances again");
  clear->add_option("deployment", a->deployment, "Name or id")->required();
  clear->add_option("dag_id", a->dag_id)->required();
  clear->add_option("run_id", a->run_id)->required();
  clear->add_flag("--only-failed", a->only_failed, "Only the failed and upstream-failed ones");
  clear->add_flag("--dry-run", a->dry_run, "Show what would be cleared; change nothing");
  clear->callback([run, &g, a] {
    *run = [&g, a] {
      // Airflow's dry_run defaults to true: always say it.
      Json body = {{"dry_run", a->dry_run}, {"only_failed", a->only_failed}};
      return Call(g, "POST", RunPath(*a) + "/clear", body, [](const Json& j) {
        if (j.contains("task_instances")) {
          printf("dry run: these task instances would be cleared\n");
          PrintTis(j);
        } else {
          PrintTable(kRunHeader, {RunRow(j)});
        }
      });
    };
  });
}

void AddTasks(CLI::App& app, Globals& g, Run* run, const std::shared_ptr<Args>& a) {
  auto* tasks = app.add_subcommand("tasks", "The task instances of a DAG run");
  tasks->require_subcommand(1);

  auto* list = tasks->add_subcommand("list", "List a DAG run's task instances");
  list->add_option("deployment", a->deployment, "Name or id")->required();
  list->add_option("dag_id", a->dag_id)->required();
  list->add_option("run_id", a->run_id)->required();
  list->callback([run, &g, a] {
    *run = [&g, a] { return Call(g, "GET", TisPath(*a) + "?limit=1000", nullptr, PrintTis); };
  });

  auto* logs = tasks->add_subcommand("logs", "Print a task instance's log");
  logs->add_option("deployment", a->deployment, "Name or id")->required();
  logs->add_option("dag_id", a->dag_id)->required();
  logs->add_option("run_id", a->run_id)->required();
  logs->add_option("task_id", a->task_id)->required();
  logs->add_option("--try", a->try_number, "Which try (default: the current one)")
      ->check(CLI::Range(1, std::numeric_limits<int>::max()));
  logs->add_flag("--follow,-f", a->follow,
                 "Keep printing what is added until the task instance finishes");
  logs->callback(
      [run, &g, a] { *run = [&g, a] { return a->follow ? FollowLog(g, *a) : PrintLog(g, *a); }; });
}

}  // namespace

void AddPipelineCommands(CLI::App& app, Globals& g, Run* run) {
  auto a = std::make_shared<Args>();
  AddDeploy(app, g, run, a);
  AddDags(app, g, run, a);
  AddRuns(app, g, run, a);
  AddTasks(app, g, run, a);
}

}  // namespace tandem::app
