// Parsing a bundle, one file at a time.
//
// Each YAML file is walked key by key instead of looked up with node["key"], so that every key
// written in the file is checked: an unknown key (a typo) or a key written twice is an error
// that names the key and its line. The first error of a file ends that file and none of its
// DAGs are kept, as Airflow keeps no DAG of a file that fails to import. yaml-cpp reports
// syntax errors by throwing; those exceptions are caught at the file boundary and become
// ImportErrors.
//
// The `default` block of a file is merged under each of its DAGs: a key the DAG writes wins,
// and `default_args` and `params` merge name by name. Errors about a merged key point at the
// line where it is written, which may be inside `default`.
#include "dag/bundle.h"

#include <openssl/evp.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <span>
#include <utility>

namespace tandem::dag {
namespace {

constexpr size_t kMaxIdLength = 250;
constexpr int kMaxInt = std::numeric_limits<int>::max();
constexpr int kMaxParamDepth = 64;  // guards the YAML -> JSON walk against alias loops
// YAML aliases share one node however often they are named, but the walk to JSON copies each
// use: nine levels of ten aliases each ("billion laughs") would expand to 10^9 values from a
// file of a few hundred bytes. A file's values expand to at most this many.
constexpr int64_t kMaxExpandedValues = 100000;

// The keys each level of a file may hold; any other key is an error, so a typo is never ignored.
// clang-format off
constexpr std::string_view kDagKeys[] = {
    "schedule", "schedule_interval", "start_date", "end_date", "catchup", "max_active_runs",
    "max_active_tasks", "params", "description", "tags", "default_args", "tasks"};
constexpr std::string_view kDefaultArgKeys[] = {
    "owner", "retries", "retry_delay", "retry_delay_sec", "execution_timeout",
    "execution_timeout_sec", "pool", "start_date", "end_date"};
constexpr std::string_view kTaskKeys[] = {
    "task_id", "operator", "dependencies", "trigger_rule", "retries", "retry_delay",
    "retry_delay_sec", "pool", "execution_timeout", "execution_timeout_sec", "owner",
    "bash_command", "env", "cwd"};
// clang-format on

constexpr std::pair<TriggerRule, std::string_view> kTriggerRules[] = {
    {TriggerRule::kAllSuccess, "all_success"},   {TriggerRule::kAllFailed, "all_failed"},
    {TriggerRule::kAllDone, "all_done"},         {TriggerRule::kOneSuccess, "one_success"},
    {TriggerRule::kOneFailed, "one_failed"},     {TriggerRule::kNoneFailed, "none_failed"},
    {TriggerRule::kNoneSkipped, "none_skipped"}, {TriggerRule::kAlways, "always"}};

// Keys that are two spellings of one setting; a map may hold only one of them, and a DAG's
// spelling hides the other one in `default`.
std::string_view Canonical(std::string_view name) {
  if (name == "schedule_interval") return "schedule";
  if (name == "retry_delay_sec") return "retry_delay";
  if (name == "execution_timeout_sec") return "execution_timeout";
  return name;
}

// One key of a YAML map, as written in the file.
struct Entry {
  std::string name;  // the key itself: "retries"
  std::string path;  // dotted from the top of the file: "etl.default_args.retries"
  YAML::Node key;    // errors about the entry point at its line
  YAML::Node value;
};
using Entries = std::vector<Entry>;

// The entry for `name` or its other spelling (see Canonical), or null.
const Entry* Find(const Entries& entries, std::string_view name) {
  for (const Entry& e : entries) {
    if (Canonical(e.name) == Canonical(name)) return &e;
  }
  return nullptr;
}

// `own` with the entries of `defaults` it does not write itself added after them.
Entries MergeUnder(Entries own, const Entries& defaults) {
  for (const Entry& d : defaults) {
    if (Find(own, d.name) == nullptr) own.push_back(d);
  }
  return own;
}

std::string Join(std::string_view path, std::string_view name) {
  return path.empty() ? std::string(name) : std::string(path) + "." + std::string(name);
}

// `s` as a JSON string for a message (escaped, so control characters and invalid UTF-8 show
// harmlessly), cut short when long.
std::string Quote(std::string_view s) {
  constexpr size_t kMaxShown = 80;
  std::string out = nlohmann::json(std::string(s.substr(0, kMaxShown)))
                        .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > kMaxShown) out.insert(out.size() - 1, "...");
  return out;
}

// What a node holds, for the "got ..." end of a message.
std::string Describe(const YAML::Node& n) {
  if (n.IsScalar()) return Quote(n.Scalar());
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a map";
  return "an empty value";
}

// A scalar written without quotes (YAML resolves its type); quoted scalars are strings.
bool IsPlain(const YAML::Node& n) { return n.IsScalar() && n.Tag() == "?"; }

// YAML 1.1 booleans, as PyYAML (and so dag-factory) reads them.
std::optional<bool> ParseBool(std::string_view s) {
  for (std::string_view t : {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"}) {
    if (s == t) return true;
  }
  for (std::string_view f : {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"}) {
    if (s == f) return false;
  }
  return std::nullopt;
}

// Decimal digits with an optional '-'; no '+', spaces, separators, hex or exponents.
std::optional<int64_t> ParseInt(std::string_view s) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// A finite decimal number as YAML writes floats: "1.5", "-.5", "1e3", "2.5E-3".
std::optional<double> ParseFloat(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  size_t digits = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++digits;
  }
  if (digits == 0) return std::nullopt;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    size_t exponent = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++exponent;
    if (exponent == 0) return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  const std::string text(s);
  const double v = std::strtod(text.c_str(), nullptr);
  if (!std::isfinite(v)) return std::nullopt;
  return v;
}

bool IsYamlFile(std::string_view path) { return path.ends_with(".yaml") || path.ends_with(".yml"); }

std::optional<Operator> ParseOperator(std::string_view name) {
  if (name == "bash") return Operator::kBash;
  if (name == "empty") return Operator::kEmpty;
  // A class name, bare or at the end of a module path ("airflow.operators.bash.BashOperator").
  const size_t dot = name.rfind('.');
  const std::string_view cls = dot == std::string_view::npos ? name : name.substr(dot + 1);
  if (dot == 0) return std::nullopt;
  if (cls == "BashOperator") return Operator::kBash;
  if (cls == "EmptyOperator" || cls == "DummyOperator") return Operator::kEmpty;
  return std::nullopt;
}

// The checks shared by dag, task and run ids; `extra` holds the characters a kind allows on
// top of letters, digits, '_', '-' and '.'.
Status ValidateId(std::string_view kind, std::string_view id, std::string_view extra) {
  const std::string name(kind);
  if (id.empty()) return InvalidArgument(name + " must not be empty");
  if (id.size() > kMaxIdLength) {
    return InvalidArgument(name + " " + Quote(id) + " is " + std::to_string(id.size()) +
                           " characters long; at most " + std::to_string(kMaxIdLength) +
                           " are allowed");
  }
  if (id.find('/') != std::string_view::npos) {
    return InvalidArgument(name + " " + Quote(id) + " must not contain '/'");
  }
  if (id.find("..") != std::string_view::npos) {
    return InvalidArgument(name + " " + Quote(id) + " must not contain \"..\"");
  }
  auto allowed = [&](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '-' || ch == '.' || extra.find(ch) != std::string_view::npos;
  };
  const auto bad = std::find_if_not(id.begin(), id.end(), allowed);
  if (bad == id.end()) return Status::Ok();
  std::string message = name + " " + Quote(id) + ": the character at position " +
                        std::to_string(bad - id.begin() + 1) +
                        " is not allowed; use only letters, digits, '_', '-', '.'";
  for (char e : extra) {
    message += ", '";
    message += e;
    message += "'";
  }
  return InvalidArgument(message);
}

// A task as first read: its id and keys, before anything else about it is checked.
struct RawTask {
  std::string id;
  std::string path;  // "etl.tasks.extract"
  YAML::Node at;     // the task's key (map form) or list item (list form)
  Entries keys;
};

// One parse of one file. Every error the parser makes goes through Error(), which remembers
// the line of the node it is about; the caller reads it with error_line() once Parse has failed.
class FileParser {
 public:
  explicit FileParser(std::string file) : file_(std::move(file)) {}

  // The DAGs of the file in file order, or the file's first error.
  Result<std::vector<DagSpec>> Parse(const std::string& text);
  // 1-based; 0 when the last error is about the whole file.
  int error_line() const { return error_line_; }

 private:
  Status Error(const YAML::Node& at, std::string message) {
    const YAML::Mark mark = at.Mark();
    error_line_ = mark.is_null() || mark.line < 0 ? 0 : mark.line + 1;
    return InvalidArgument(std::move(message));
  }
  // "<path>: expected <expected>, got <what the entry holds>", at the entry's key.
  Status Invalid(const Entry& e, std::string_view expected) {
    return Error(e.key,
                 e.path + ": expected " + std::string(expected) + ", got " + Describe(e.value));
  }
  // `what` went wrong with the value of `e`; says which key.
  Status Wrap(const Entry& e, const Status& what) {
    return Error(e.key, e.path + ": " + what.message());
  }

  Result<std::vector<DagSpec>> ParseDocument(const YAML::Node& root);
  // The entries of `e`'s value, which must be a map. With `allowed` non-empty every key must
  // be in it; no key may be written twice (in either spelling).
  Result<Entries> ReadMap(const Entry& e, std::span<const std::string_view> allowed);

  Result<std::string> String(const Entry& e);
  Result<std::string> NonEmpty(const Entry& e);
  Result<int> Integer(const Entry& e, int min, int max);
  Result<bool> Bool(const Entry& e);
  Result<TimePoint> Time(const Entry& e);
  // `*_sec` spellings take whole seconds; the others anything ParseDuration takes.
  Result<std::chrono::seconds> Duration(const Entry& e);
  Result<std::vector<std::string>> StringList(const Entry& e);
  Result<nlohmann::json> ToJson(const YAML::Node& n, const std::string& path, int depth);
  Result<Template> ParseTemplate(const Entry& e, const TemplateScope& scope);

  Result<DagSpec> ParseDag(const Entry& dag_entry, const Entries& defaults,
                           const Entries& default_args);
  Status ParseSchedule(const Entries& keys, const Entries& args, DagSpec& dag);
  // Fills the fields a task may take from default_args.
  Status ApplyTaskDefaults(const Entries& keys, TaskSpec& task);
  Result<std::vector<RawTask>> ReadTasks(const Entry& tasks);
  Result<TaskSpec> ParseTask(const RawTask& raw, const TaskSpec& defaults,
                             const std::set<std::string>& task_ids, const TemplateScope& scope);
  // Orders dag.tasks topologically (Kahn's algorithm, ties in file order); a cycle is an error.
  Status SortTasks(const std::vector<RawTask>& raw, DagSpec& dag);

  const std::string file_;
  int error_line_ = 0;
  int64_t expanded_ = 0;  // values ToJson made from this file (kMaxExpandedValues)
};

Result<std::vector<DagSpec>> FileParser::Parse(const std::string& text) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    error_line_ = e.mark.is_null() || e.mark.line < 0 ? 0 : e.mark.line + 1;
    return InvalidArgument("YAML syntax error: " + e.msg);
  }
  if (docs.size() > 1) {
    return Error(docs[1], "expected one YAML document, found " + std::to_string(docs.size()));
  }
  if (docs.empty() || docs[0].IsNull()) return std::vector<DagSpec>{};  // no DAGs: fine
  try {
    return ParseDocument(docs[0]);
  } catch (const YAML::Exception& e) {
    // The walk only reads nodes whose type it has checked; this would be a bug here.
    error_line_ = 0;
    return Internal(std::string("reading the file failed: ") + e.what());
  }
}

Result<std::vector<DagSpec>> FileParser::ParseDocument(const YAML::Node& root) {
  if (!root.IsMap()) {
    return Error(
        root, "expected a map from dag_id to DAG (and an optional default), got " + Describe(root));
  }
  const Entry top{.name = "", .path = "", .key = root, .value = root};
  ASSIGN_OR_RETURN(Entries entries, ReadMap(top, {}));
  Entries defaults;
  Entries default_args;
  if (const Entry* d = Find(entries, "default")) {
    ASSIGN_OR_RETURN(defaults, ReadMap(*d, kDagKeys));
    if (const Entry* a = Find(defaults, "default_args")) {
      ASSIGN_OR_RETURN(default_args, ReadMap(*a, kDefaultArgKeys));
    }
  }
  std::vector<DagSpec> dags;
  for (const Entry& e : entries) {
    if (e.name == "default") continue;
    if (Status id = ValidateDagId(e.name); !id.ok()) return Error(e.key, id.message());
    ASSIGN_OR_RETURN(DagSpec dag, ParseDag(e, defaults, default_args));
    dags.push_back(std::move(dag));
  }
  return dags;
}

Result<Entries> FileParser::ReadMap(const Entry& e, std::span<const std::string_view> allowed) {
  if (!e.value.IsMap()) return Invalid(e, "a map");
  Entries entries;
  for (auto it = e.value.begin(); it != e.value.end(); ++it) {
    const YAML::Node k = it->first;  // a copy: `it->` yields a temporary proxy
    if (!k.IsScalar()) {
      return Error(
          k, (e.path.empty() ? "" : e.path + ": ") + "expected a key name, got " + Describe(k));
    }
    Entry child{
        .name = k.Scalar(), .path = Join(e.path, k.Scalar()), .key = k, .value = it->second};
    if (!allowed.empty() &&
        std::find(allowed.begin(), allowed.end(), child.name) == allowed.end()) {
      std::string known;
      for (std::string_view a : allowed) known += (known.empty() ? "" : ", ") + std::string(a);
      return Error(k, "unknown key " + child.path + " (known keys: " + known + ")");
    }
    if (const Entry* first = Find(entries, child.name)) {
      return Error(k, "duplicate key " + child.path + " (already set by " + first->name +
                          " at line " + std::to_string(first->key.Mark().line + 1) + ")");
    }
    entries.push_back(std::move(child));
  }
  return entries;
}

Result<std::string> FileParser::String(const Entry& e) {
  if (!e.value.IsScalar()) return Invalid(e, "a string");
  return e.value.Scalar();
}

Result<std::string> FileParser::NonEmpty(const Entry& e) {
  if (!e.value.IsScalar() || e.value.Scalar().empty()) return Invalid(e, "a non-empty string");
  return e.value.Scalar();
}

Result<int> FileParser::Integer(const Entry& e, int min, int max) {
  if (e.value.IsScalar()) {
    const std::optional<int64_t> v = ParseInt(e.value.Scalar());
    if (v && *v >= min && *v <= max) return static_cast<int>(*v);
  }
  if (max == kMaxInt) return Invalid(e, "an integer of at least " + std::to_string(min));
  return Invalid(e, "an integer from " + std::to_string(min) + " to " + std::to_string(max));
}

Result<bool> FileParser::Bool(const Entry& e) {
  if (e.value.IsScalar()) {
    if (std::optional<bool> b = ParseBool(e.value.Scalar())) return *b;
  }
  return Invalid(e, "true or false");
}

Result<TimePoint> FileParser::Time(const Entry& e) {
  if (!e.value.IsScalar()) return Invalid(e, "a date such as 2024-01-01");
  Result<TimePoint> t = ParseTime(e.value.Scalar());
  if (!t.ok()) return Wrap(e, t.status());
  return *t;
}

Result<std::chrono::seconds> FileParser::Duration(const Entry& e) {
  if (e.name.ends_with("_sec")) {
    ASSIGN_OR_RETURN(int seconds, Integer(e, 0, kMaxInt));
    return std::chrono::seconds(seconds);
  }
  if (!e.value.IsScalar()) return Invalid(e, "a duration such as 300, 5m or 01:30:00");
  Result<std::chrono::seconds> d = ParseDuration(e.value.Scalar());
  if (!d.ok()) return Wrap(e, d.status());
  return *d;
}

Result<std::vector<std::string>> FileParser::StringList(const Entry& e) {
  if (!e.value.IsSequence()) return Invalid(e, "a list of strings");
  std::vector<std::string> out;
  for (size_t i = 0; i < e.value.size(); ++i) {
    const YAML::Node item = e.value[i];
    if (!item.IsScalar()) {
      return Error(
          item, e.path + "[" + std::to_string(i) + "]: expected a string, got " + Describe(item));
    }
    out.push_back(item.Scalar());
  }
  return out;
}

Result<nlohmann::json> FileParser::ToJson(const YAML::Node& n, const std::string& path, int depth) {
  if (depth > kMaxParamDepth) return Error(n, path + ": nested too deeply");
  if (++expanded_ > kMaxExpandedValues) {
    return Error(n, path + ": the file's values expand to more than " +
                        std::to_string(kMaxExpandedValues) +
                        " (YAML aliases naming aliases, each copied where it is used)");
  }
  if (n.IsNull()) return nlohmann::json(nullptr);
  if (n.IsScalar()) {
    const std::string& s = n.Scalar();
    if (!IsPlain(n)) return nlohmann::json(s);
    if (std::optional<bool> b = ParseBool(s)) return nlohmann::json(*b);
    if (std::optional<int64_t> i = ParseInt(s)) return nlohmann::json(*i);
    if (std::optional<double> f = ParseFloat(s)) return nlohmann::json(*f);
    return nlohmann::json(s);
  }
  if (n.IsSequence()) {
    nlohmann::json array = nlohmann::json::array();
    for (size_t i = 0; i < n.size(); ++i) {
      ASSIGN_OR_RETURN(nlohmann::json item,
                       ToJson(n[i], path + "[" + std::to_string(i) + "]", depth + 1));
      array.push_back(std::move(item));
    }
    return array;
  }
  nlohmann::json object = nlohmann::json::object();
  for (auto it = n.begin(); it != n.end(); ++it) {
    const YAML::Node k = it->first;
    if (!k.IsScalar()) return Error(k, path + ": expected a key name, got " + Describe(k));
    const std::string child = Join(path, k.Scalar());
    if (object.contains(k.Scalar())) return Error(k, "duplicate key " + child);
    ASSIGN_OR_RETURN(object[k.Scalar()], ToJson(it->second, child, depth + 1));
  }
  return object;
}

Result<Template> FileParser::ParseTemplate(const Entry& e, const TemplateScope& scope) {
  if (!e.value.IsScalar()) return Invalid(e, "a string");
  Result<Template> t = Template::Parse(e.value.Scalar(), scope);
  if (!t.ok()) return Wrap(e, t.status());
  return std::move(t).value();
}

Result<DagSpec> FileParser::ParseDag(const Entry& dag_entry, const Entries& defaults,
                                     const Entries& default_args) {
  DagSpec dag;
  dag.dag_id = dag_entry.name;
  dag.file = file_;
  dag.line = dag_entry.key.Mark().line + 1;

  ASSIGN_OR_RETURN(Entries own, ReadMap(dag_entry, kDagKeys));
  Entries args;
  if (const Entry* a = Find(own, "default_args")) {
    ASSIGN_OR_RETURN(args, ReadMap(*a, kDefaultArgKeys));
  }
  args = MergeUnder(std::move(args), default_args);
  Entries params;
  if (const Entry* p = Find(own, "params")) {
    ASSIGN_OR_RETURN(params, ReadMap(*p, {}));
  }
  if (const Entry* p = Find(defaults, "params")) {
    ASSIGN_OR_RETURN(Entries default_params, ReadMap(*p, {}));
    params = MergeUnder(std::move(params), default_params);
  }
  const Entries keys = MergeUnder(std::move(own), defaults);

  if (const Entry* e = Find(keys, "description")) {
    ASSIGN_OR_RETURN(dag.description, String(*e));
  }
  if (const Entry* e = Find(keys, "tags")) {
    ASSIGN_OR_RETURN(dag.tags, StringList(*e));
  }
  RETURN_IF_ERROR(ParseSchedule(keys, args, dag));
  if (const Entry* e = Find(keys, "catchup")) {
    ASSIGN_OR_RETURN(dag.catchup, Bool(*e));
  }
  if (const Entry* e = Find(keys, "max_active_runs")) {
    ASSIGN_OR_RETURN(dag.max_active_runs, Integer(*e, 1, kMaxInt));
  }
  if (const Entry* e = Find(keys, "max_active_tasks")) {
    ASSIGN_OR_RETURN(dag.max_active_tasks, Integer(*e, 1, kMaxInt));
  }
  TemplateScope scope;
  for (const Entry& p : params) {
    ASSIGN_OR_RETURN(nlohmann::json value, ToJson(p.value, p.path, 0));
    dag.params[p.name] = value.dump();
    scope.params.insert(p.name);
  }

  TaskSpec defaults_for_tasks;
  RETURN_IF_ERROR(ApplyTaskDefaults(args, defaults_for_tasks));

  std::vector<RawTask> raw;
  if (const Entry* e = Find(keys, "tasks")) {
    ASSIGN_OR_RETURN(raw, ReadTasks(*e));
  }
  std::set<std::string> task_ids;
  for (const RawTask& r : raw) task_ids.insert(r.id);
  scope.task_ids = task_ids;
  for (const RawTask& r : raw) {
    ASSIGN_OR_RETURN(TaskSpec task, ParseTask(r, defaults_for_tasks, task_ids, scope));
    dag.tasks.push_back(std::move(task));
  }
  RETURN_IF_ERROR(SortTasks(raw, dag));

  std::set<std::string> owners;
  for (const TaskSpec& t : dag.tasks) owners.insert(t.owner);
  dag.owners.assign(owners.begin(), owners.end());
  return dag;
}

Status FileParser::ParseSchedule(const Entries& keys, const Entries& args, DagSpec& dag) {
  // A date written at the DAG level wins over one in default_args.
  const Entry* start = Find(keys, "start_date");
  if (start == nullptr) start = Find(args, "start_date");
  const Entry* end = Find(keys, "end_date");
  if (end == nullptr) end = Find(args, "end_date");
  if (start != nullptr) {
    ASSIGN_OR_RETURN(dag.start_date, Time(*start));
  }
  if (end != nullptr) {
    ASSIGN_OR_RETURN(dag.end_date, Time(*end));
    if (dag.start_date && *dag.end_date < *dag.start_date) {
      return Error(end->key, end->path + ": " + FormatTime(*dag.end_date) +
                                 " is before the start_date " + FormatTime(*dag.start_date));
    }
  }
  const Entry* schedule = Find(keys, "schedule");
  // Absent, null or Python's None: manual triggers only.
  if (schedule == nullptr || schedule->value.IsNull() ||
      (IsPlain(schedule->value) && schedule->value.Scalar() == "None")) {
    return Status::Ok();
  }
  if (!schedule->value.IsScalar()) {
    return Invalid(*schedule, "a cron expression or a preset such as @daily");
  }
  Result<Timetable> timetable = Timetable::Parse(schedule->value.Scalar());
  if (!timetable.ok()) return Wrap(*schedule, timetable.status());
  if (!dag.start_date) {
    return Error(schedule->key, schedule->path + ": a scheduled DAG needs a start_date");
  }
  dag.timetable = std::move(timetable).value();
  return Status::Ok();
}

Status FileParser::ApplyTaskDefaults(const Entries& keys, TaskSpec& task) {
  if (const Entry* e = Find(keys, "owner")) {
    ASSIGN_OR_RETURN(task.owner, NonEmpty(*e));
  }
  if (const Entry* e = Find(keys, "retries")) {
    ASSIGN_OR_RETURN(task.retries, Integer(*e, 0, kMaxInt));
  }
  if (const Entry* e = Find(keys, "retry_delay")) {
    ASSIGN_OR_RETURN(task.retry_delay, Duration(*e));
  }
  if (const Entry* e = Find(keys, "execution_timeout")) {
    // null lifts a limit set in default_args.
    if (e->value.IsNull()) {
      task.execution_timeout.reset();
    } else {
      ASSIGN_OR_RETURN(task.execution_timeout, Duration(*e));
    }
  }
  if (const Entry* e = Find(keys, "pool")) {
    ASSIGN_OR_RETURN(task.pool, NonEmpty(*e));
  }
  return Status::Ok();
}

Result<std::vector<RawTask>> FileParser::ReadTasks(const Entry& tasks) {
  std::vector<RawTask> raw;
  if (tasks.value.IsMap()) {
    // task_id -> mapping; ReadMap has already refused a task_id written twice.
    ASSIGN_OR_RETURN(Entries entries, ReadMap(tasks, {}));
    for (const Entry& e : entries) {
      ASSIGN_OR_RETURN(Entries keys, ReadMap(e, kTaskKeys));
      if (const Entry* id = Find(keys, "task_id")) {
        if (!id->value.IsScalar() || id->value.Scalar() != e.name) {
          return Invalid(*id, "the task's own key " + Quote(e.name) + " or nothing");
        }
      }
      raw.push_back({.id = e.name, .path = e.path, .at = e.key, .keys = std::move(keys)});
    }
  } else if (tasks.value.IsSequence()) {
    for (size_t i = 0; i < tasks.value.size(); ++i) {
      const YAML::Node item = tasks.value[i];
      const Entry entry{.name = tasks.name,
                        .path = tasks.path + "[" + std::to_string(i) + "]",
                        .key = item,
                        .value = item};
      ASSIGN_OR_RETURN(Entries keys, ReadMap(entry, kTaskKeys));
      const Entry* id = Find(keys, "task_id");
      if (id == nullptr) return Error(item, entry.path + ": task_id is required");
      ASSIGN_OR_RETURN(std::string task_id, String(*id));
      for (const RawTask& r : raw) {
        if (r.id == task_id) {
          return Error(id->key, "duplicate task_id " + Quote(task_id) + " in " + tasks.path +
                                    " (first at line " + std::to_string(r.at.Mark().line + 1) +
                                    ")");
        }
      }
      // From here on errors name the task rather than its position in the list.
      const std::string path = Join(tasks.path, task_id);
      for (Entry& k : keys) k.path = Join(path, k.name);
      raw.push_back({.id = std::move(task_id), .path = path, .at = item, .keys = std::move(keys)});
    }
  } else if (!tasks.value.IsNull()) {
    return Invalid(tasks, "a map from task_id to task, or a list of tasks");
  }
  for (const RawTask& r : raw) {
    if (Status id = ValidateTaskId(r.id); !id.ok()) {
      return Error(r.at, r.path + ": " + id.message());
    }
  }
  return raw;
}

Result<TaskSpec> FileParser::ParseTask(const RawTask& raw, const TaskSpec& defaults,
                                       const std::set<std::string>& task_ids,
                                       const TemplateScope& scope) {
  TaskSpec task = defaults;
  task.task_id = raw.id;
  task.line = raw.at.Mark().line + 1;

  const Entry* op = Find(raw.keys, "operator");
  if (op == nullptr) return Error(raw.at, raw.path + ": operator is required");
  constexpr std::string_view kOperators =
      "BashOperator (or bash) or EmptyOperator (or empty, DummyOperator)";
  if (!op->value.IsScalar()) return Invalid(*op, kOperators);
  const std::optional<Operator> parsed = ParseOperator(op->value.Scalar());
  if (!parsed) {
    return Error(op->key, op->path + ": unknown operator " + Quote(op->value.Scalar()) +
                              "; expected " + std::string(kOperators));
  }
  task.op = *parsed;

  if (const Entry* e = Find(raw.keys, "dependencies")) {
    if (!e->value.IsNull() && !e->value.IsSequence()) return Invalid(*e, "a list of task ids");
    for (size_t i = 0; e->value.IsSequence() && i < e->value.size(); ++i) {
      const YAML::Node item = e->value[i];
      const std::string where = e->path + "[" + std::to_string(i) + "]";
      if (!item.IsScalar()) {
        return Error(item, where + ": expected a task id, got " + Describe(item));
      }
      const std::string& up = item.Scalar();
      if (!task_ids.contains(up)) {
        return Error(
            item, where + ": unknown task " + Quote(up) + " in dependencies of " + Quote(raw.id));
      }
      if (std::find(task.upstream.begin(), task.upstream.end(), up) == task.upstream.end()) {
        task.upstream.push_back(up);
      }
    }
  }
  if (const Entry* e = Find(raw.keys, "trigger_rule")) {
    std::string names;
    for (const auto& [rule, name] : kTriggerRules) {
      names += (names.empty() ? "" : ", ") + std::string(name);
    }
    if (!e->value.IsScalar()) return Invalid(*e, "one of " + names);
    const std::optional<TriggerRule> rule = ParseTriggerRule(e->value.Scalar());
    if (!rule) return Invalid(*e, "one of " + names);
    task.trigger_rule = *rule;
  }
  RETURN_IF_ERROR(ApplyTaskDefaults(raw.keys, task));

  if (task.op != Operator::kBash) {
    for (std::string_view bash_only : {"bash_command", "env", "cwd"}) {
      if (const Entry* e = Find(raw.keys, bash_only)) {
        return Error(e->key,
                     e->path + ": only a BashOperator task takes " + std::string(bash_only));
      }
    }
    return task;
  }
  const Entry* command = Find(raw.keys, "bash_command");
  if (command == nullptr) {
    return Error(raw.at, raw.path + ": bash_command is required for a BashOperator task");
  }
  if (!command->value.IsScalar() || command->value.Scalar().empty()) {
    return Invalid(*command, "a non-empty command");
  }
  ASSIGN_OR_RETURN(task.bash_command, ParseTemplate(*command, scope));
  if (const Entry* e = Find(raw.keys, "env")) {
    ASSIGN_OR_RETURN(Entries vars, ReadMap(*e, {}));
    for (const Entry& var : vars) {
      if (var.name.empty()) return Error(var.key, e->path + ": an empty variable name");
      ASSIGN_OR_RETURN(Template value, ParseTemplate(var, scope));
      task.env.emplace_back(var.name, std::move(value));
    }
  }
  if (const Entry* e = Find(raw.keys, "cwd")) {
    ASSIGN_OR_RETURN(task.cwd, NonEmpty(*e));
  }
  return task;
}

Status FileParser::SortTasks(const std::vector<RawTask>& raw, DagSpec& dag) {
  const size_t n = dag.tasks.size();
  std::map<std::string_view, size_t> index;
  for (size_t i = 0; i < n; ++i) index[dag.tasks[i].task_id] = i;
  std::vector<size_t> waiting(n, 0);  // upstream tasks not yet placed
  std::vector<std::vector<size_t>> downstream(n);
  for (size_t i = 0; i < n; ++i) {
    for (const std::string& up : dag.tasks[i].upstream) {
      downstream[index.at(up)].push_back(i);
      ++waiting[i];
    }
  }
  std::set<size_t> ready;  // by file position, so ties go in file order
  for (size_t i = 0; i < n; ++i) {
    if (waiting[i] == 0) ready.insert(i);
  }
  std::vector<size_t> order;
  while (!ready.empty()) {
    const size_t i = *ready.begin();
    ready.erase(ready.begin());
    order.push_back(i);
    for (size_t d : downstream[i]) {
      if (--waiting[d] == 0) ready.insert(d);
    }
  }
  if (order.size() < n) {
    // Every task left waits on another task left, so walking upstream from any of them
    // must come back to a task already seen: that loop is a cycle.
    size_t start = 0;
    while (waiting[start] == 0) ++start;
    std::vector<size_t> path;
    std::map<size_t, size_t> seen;  // task -> position in path
    size_t current = start;
    while (!seen.contains(current)) {
      seen[current] = path.size();
      path.push_back(current);
      for (const std::string& up : dag.tasks[current].upstream) {
        const size_t u = index.at(up);
        if (waiting[u] > 0) {
          current = u;
          break;
        }
      }
    }
    std::vector<size_t> cycle(path.begin() + static_cast<std::ptrdiff_t>(seen[current]),
                              path.end());
    std::reverse(cycle.begin(), cycle.end());  // upstream first
    std::rotate(cycle.begin(), std::min_element(cycle.begin(), cycle.end()), cycle.end());
    std::string names;
    for (size_t i : cycle) names += dag.tasks[i].task_id + " -> ";
    names += dag.tasks[cycle.front()].task_id;
    return Error(raw[cycle.front()].at, dag.dag_id + ": the tasks form a cycle: " + names);
  }
  std::vector<TaskSpec> sorted;
  sorted.reserve(n);
  for (size_t i : order) sorted.push_back(std::move(dag.tasks[i]));
  dag.tasks = std::move(sorted);
  return Status::Ok();
}

}  // namespace

std::string_view TriggerRuleName(TriggerRule rule) {
  for (const auto& [r, name] : kTriggerRules) {
    if (r == rule) return name;
  }
  return "all_success";
}

std::optional<TriggerRule> ParseTriggerRule(std::string_view name) {
  for (const auto& [rule, n] : kTriggerRules) {
    if (n == name) return rule;
  }
  return std::nullopt;
}

std::string_view OperatorName(Operator op) {
  switch (op) {
    case Operator::kBash:
      return "BashOperator";
    case Operator::kEmpty:
      return "EmptyOperator";
  }
  return "EmptyOperator";
}

const TaskSpec& DagSpec::task(std::string_view task_id) const {
  const TaskSpec* t = find_task(task_id);
  if (t == nullptr) std::abort();  // a broken REQUIRES: the caller named no task of this DAG
  return *t;
}

const TaskSpec* DagSpec::find_task(std::string_view task_id) const {
  for (const TaskSpec& t : tasks) {
    if (t.task_id == task_id) return &t;
  }
  return nullptr;
}

std::vector<std::string> DagSpec::downstream(std::string_view task_id) const {
  std::vector<std::string> out;
  for (const TaskSpec& t : tasks) {
    if (std::find(t.upstream.begin(), t.upstream.end(), task_id) != t.upstream.end()) {
      out.push_back(t.task_id);
    }
  }
  return out;
}

const DagSpec* Bundle::find_dag(std::string_view dag_id) const {
  auto it = std::lower_bound(dags.begin(), dags.end(), dag_id,
                             [](const DagSpec& d, std::string_view id) { return d.dag_id < id; });
  return it != dags.end() && it->dag_id == dag_id ? &*it : nullptr;
}

Bundle ParseBundle(const std::map<std::string, std::string>& files) {
  Bundle bundle;
  bundle.digest = BundleDigest(files);
  std::map<std::string, std::string, std::less<>> defined_in;  // dag_id -> file
  for (const auto& [path, content] : files) {
    if (!IsYamlFile(path)) continue;
    FileParser parser(path);
    Result<std::vector<DagSpec>> dags = parser.Parse(content);
    if (!dags.ok()) {
      bundle.errors.push_back(
          {.file = path, .line = parser.error_line(), .message = dags.status().message()});
      continue;
    }
    const DagSpec* taken = nullptr;
    for (const DagSpec& dag : *dags) {
      if (defined_in.contains(dag.dag_id)) {
        taken = &dag;
        break;
      }
    }
    if (taken != nullptr) {
      bundle.errors.push_back({.file = path,
                               .line = taken->line,
                               .message = "dag_id " + Quote(taken->dag_id) +
                                          " is already defined in " + defined_in[taken->dag_id]});
      continue;
    }
    for (DagSpec& dag : *dags) {
      defined_in[dag.dag_id] = path;
      bundle.dags.push_back(std::move(dag));
    }
  }
  std::sort(bundle.dags.begin(), bundle.dags.end(),
            [](const DagSpec& a, const DagSpec& b) { return a.dag_id < b.dag_id; });
  return bundle;
}

std::string BundleDigest(const std::map<std::string, std::string>& files) {
  const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(),
                                                                    &EVP_MD_CTX_free);
  // Hashing in memory fails only when allocation does.
  if (ctx == nullptr || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) std::abort();
  auto update = [&](std::string_view bytes) {
    if (EVP_DigestUpdate(ctx.get(), bytes.data(), bytes.size()) != 1) std::abort();
  };
  for (const auto& [path, content] : files) {
    update(path);
    update(std::string_view("\0", 1));
    update(std::to_string(content.size()));
    update(std::string_view("\0", 1));
    update(content);
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_DigestFinal_ex(ctx.get(), md, &size) != 1) std::abort();
  constexpr char kHex[] = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned int i = 0; i < size; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 0xf];
  }
  return out;
}

Status ValidateDagId(std::string_view id) { return ValidateId("dag_id", id, ""); }
Status ValidateTaskId(std::string_view id) { return ValidateId("task_id", id, ""); }
Status ValidateRunId(std::string_view id) { return ValidateId("run_id", id, ":+~"); }

}  // namespace tandem::dag
