#include "dag/bundle.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace tandem::dag {
namespace {

using std::chrono::seconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

TimePoint Day(int y, unsigned m, unsigned d) {
  return TimePoint{
      std::chrono::sys_days{std::chrono::year(y) / std::chrono::month(m) / std::chrono::day(d)}};
}

// The 1-based line of the first line of `text` that contains `marker`; 0 when none does.
int LineOf(const std::string& text, const std::string& marker) {
  size_t at = text.find(marker);
  if (at == std::string::npos) return 0;
  return 1 + static_cast<int>(
                 std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n'));
}

std::vector<std::string> TaskIds(const DagSpec& dag) {
  std::vector<std::string> ids;
  for (const TaskSpec& t : dag.tasks) ids.push_back(t.task_id);
  return ids;
}

std::vector<std::string> DagIds(const Bundle& b) {
  std::vector<std::string> ids;
  for (const DagSpec& d : b.dags) ids.push_back(d.dag_id);
  return ids;
}

constexpr const char* kEtl = R"(# an example with every feature
default:
  catchup: true
  default_args:
    owner: data
    retries: 2
    retry_delay: 10m
    pool: etl_pool
  params:
    region: eu
etl_daily:
  description: Daily load
  schedule: "0 6 * * *"
  start_date: 2024-01-01
  end_date: 2024-12-31T00:00:00Z
  catchup: false
  max_active_runs: 3
  max_active_tasks: 8
  tags: [etl, daily]
  default_args:
    retries: 5
    execution_timeout_sec: 3600
  params:
    table: events
    limit: 100
    ratio: 0.5
    dry_run: false
    quoted: "42"
    nothing: null
    list: [1, two, 3.5]
    nested: {a: 1, b: [true]}
  tasks:
    extract:
      operator: bash
      bash_command: "echo {{ ds }} {{ params.table }}"
      env:
        TABLE: "{{ params.table }}"
        REGION: "{{ params.region }}"
        PLAIN: literal
      cwd: /srv/etl
    check:
      operator: airflow.operators.empty.EmptyOperator
      dependencies: [extract]
      trigger_rule: all_done
      owner: qa
    load:
      operator: BashOperator
      bash_command: "load {{ ti.xcom_pull(task_ids='extract') }}"
      dependencies: [extract, check]
      retries: 0
      retry_delay: 30s
      pool: loaders
      execution_timeout: 1h
)";

constexpr const char* kReport = R"(report:
  schedule_interval: "@daily"
  default_args:
    owner: reports
    start_date: 2024-03-01
  tasks:
    - task_id: render
      operator: airflow.operators.bash.BashOperator
      bash_command: make report
    - task_id: begin
      operator: DummyOperator
    - task_id: publish
      operator: empty
      dependencies: [render, begin]
      trigger_rule: one_success
)";

TEST(BundleTest, ParsesAFullExampleInBothTaskForms) {
  Bundle b = ParseBundle({{"etl.yaml", kEtl}, {"sub/report.yml", kReport}});
  ASSERT_THAT(b.errors, IsEmpty())
      << b.errors[0].file << ":" << b.errors[0].line << ": " << b.errors[0].message;
  ASSERT_THAT(DagIds(b), ElementsAre("etl_daily", "report"));

  const DagSpec& etl = *b.find_dag("etl_daily");
  EXPECT_EQ(etl.file, "etl.yaml");
  EXPECT_EQ(etl.line, LineOf(kEtl, "etl_daily:"));
  EXPECT_EQ(etl.description, "Daily load");
  EXPECT_THAT(etl.tags, ElementsAre("etl", "daily"));
  ASSERT_TRUE(etl.timetable.has_value());
  EXPECT_EQ(etl.timetable->summary(), "0 6 * * *");
  EXPECT_EQ(etl.start_date, Day(2024, 1, 1));
  EXPECT_EQ(etl.end_date, Day(2024, 12, 31));
  EXPECT_EQ(etl.catchup, false);  // the DAG's own key wins over default's
  EXPECT_EQ(etl.max_active_runs, 3);
  EXPECT_EQ(etl.max_active_tasks, 8);

  // params: the DAG's own, then default's merged in, each as JSON text.
  std::map<std::string, std::string> params = {{"table", R"("events")"},
                                               {"limit", "100"},
                                               {"ratio", "0.5"},
                                               {"dry_run", "false"},
                                               {"quoted", R"("42")"},
                                               {"nothing", "null"},
                                               {"list", R"([1,"two",3.5])"},
                                               {"nested", R"({"a":1,"b":[true]})"},
                                               {"region", R"("eu")"}};
  EXPECT_EQ(etl.params, params);

  ASSERT_THAT(TaskIds(etl), ElementsAre("extract", "check", "load"));
  const TaskSpec& extract = etl.task("extract");
  EXPECT_EQ(extract.op, Operator::kBash);
  EXPECT_EQ(extract.line, LineOf(kEtl, "extract:"));
  EXPECT_EQ(extract.bash_command.text(), "echo {{ ds }} {{ params.table }}");
  EXPECT_TRUE(extract.bash_command.has_expressions());
  ASSERT_EQ(extract.env.size(), 3U);
  EXPECT_EQ(extract.env[0].first, "TABLE");
  EXPECT_EQ(extract.env[0].second.text(), "{{ params.table }}");
  EXPECT_EQ(extract.env[1].first, "REGION");
  EXPECT_EQ(extract.env[2].first, "PLAIN");
  EXPECT_FALSE(extract.env[2].second.has_expressions());
  EXPECT_EQ(extract.cwd, "/srv/etl");
  // default_args: the DAG's retries (5) over default's (2); the rest from default.
  EXPECT_EQ(extract.owner, "data");
  EXPECT_EQ(extract.retries, 5);
  EXPECT_EQ(extract.retry_delay, seconds(600));
  EXPECT_EQ(extract.pool, "etl_pool");
  EXPECT_EQ(extract.execution_timeout, seconds(3600));
  EXPECT_THAT(extract.upstream, IsEmpty());
  EXPECT_EQ(extract.trigger_rule, TriggerRule::kAllSuccess);

  const TaskSpec& check = etl.task("check");
  EXPECT_EQ(check.op, Operator::kEmpty);
  EXPECT_EQ(check.owner, "qa");
  EXPECT_EQ(check.trigger_rule, TriggerRule::kAllDone);
  EXPECT_THAT(check.upstream, ElementsAre("extract"));

  const TaskSpec& load = etl.task("load");
  EXPECT_EQ(load.retries, 0);
  EXPECT_EQ(load.retry_delay, seconds(30));
  EXPECT_EQ(load.pool, "loaders");
  EXPECT_EQ(load.execution_timeout, seconds(3600));
  EXPECT_THAT(load.upstream, ElementsAre("extract", "check"));
  EXPECT_EQ(load.bash_command.xcoms().size(), 1U);
  EXPECT_EQ(etl.owners, (std::vector<std::string>{"data", "qa"}));
  EXPECT_THAT(etl.downstream("extract"), ElementsAre("check", "load"));
  EXPECT_THAT(etl.downstream("load"), IsEmpty());
  EXPECT_EQ(etl.find_task("nope"), nullptr);

  const DagSpec& report = *b.find_dag("report");
  EXPECT_EQ(report.file, "sub/report.yml");
  ASSERT_TRUE(report.timetable.has_value());
  EXPECT_EQ(report.timetable->summary(), "@daily");  // schedule_interval is schedule
  EXPECT_EQ(report.start_date, Day(2024, 3, 1));     // from default_args
  EXPECT_FALSE(report.end_date.has_value());
  EXPECT_EQ(report.catchup, std::nullopt);          // default of another file does not apply
  EXPECT_EQ(report.max_active_runs, std::nullopt);  // the deployment's default will
  EXPECT_THAT(report.params, IsEmpty());
  // List form; begin and render are ready together and keep their file order.
  ASSERT_THAT(TaskIds(report), ElementsAre("render", "begin", "publish"));
  EXPECT_EQ(report.task("render").op, Operator::kBash);
  EXPECT_EQ(report.task("render").line, LineOf(kReport, "- task_id: render"));
  EXPECT_EQ(report.task("begin").op, Operator::kEmpty);
  EXPECT_EQ(report.task("publish").trigger_rule, TriggerRule::kOneSuccess);
  EXPECT_EQ(report.task("publish").retry_delay, seconds(300));  // Airflow's default
  EXPECT_FALSE(report.task("publish").execution_timeout.has_value());
  EXPECT_EQ(report.owners, std::vector<std::string>{"reports"});
  EXPECT_EQ(b.find_dag("missing"), nullptr);
}

// "Billion laughs": aliases of aliases, each copied where the walk uses it, would expand a few
// hundred bytes into 10^9 values. The file is refused with an import error instead.
TEST(BundleTest, AliasExpansionPastTheBudgetIsAnImportError) {
  std::string yaml =
      "laughs:\n  params:\n    l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  for (int i = 1; i <= 8; ++i) {
    yaml += "    l" + std::to_string(i) + ": &l" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) yaml += std::string(j ? ", " : "") + "*l" + std::to_string(i - 1);
    yaml += "]\n";
  }
  yaml += "  tasks:\n    t: {operator: empty}\n";
  const auto t0 = std::chrono::steady_clock::now();
  Bundle b = ParseBundle({{"laughs.yaml", yaml}});
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_TRUE(b.dags.empty());
  ASSERT_EQ(b.errors.size(), 1u);
  EXPECT_THAT(b.errors[0].message, HasSubstr("expand to more than 100000"));
  // A file that uses aliases modestly still parses.
  Bundle ok = ParseBundle({{"ok.yaml",
                            "few:\n  params:\n    a: &a [1, 2]\n    b: [*a, *a]\n  tasks:\n    t: "
                            "{operator: empty}\n"}});
  EXPECT_THAT(ok.errors, IsEmpty());
  ASSERT_EQ(ok.dags.size(), 1u);
}

TEST(BundleTest, ManualOnlyWhenScheduleIsAbsentOrNull) {
  Bundle b = ParseBundle({{"m.yaml", R"(a:
  tasks: {t: {operator: empty}}
b:
  schedule: null
  tasks: {t: {operator: empty}}
c:
  schedule_interval: ~
d:
  schedule: None
)"}});
  ASSERT_THAT(b.errors, IsEmpty()) << b.errors[0].message;
  ASSERT_EQ(b.dags.size(), 4U);
  for (const DagSpec& d : b.dags) {
    EXPECT_FALSE(d.timetable.has_value()) << d.dag_id;
    EXPECT_FALSE(d.start_date.has_value()) << d.dag_id;
  }
  EXPECT_THAT(b.find_dag("c")->tasks, IsEmpty());
}

TEST(BundleTest, DefaultMergesUnderEveryDagOfItsFile) {
  const std::string text = R"(default:
  schedule: "@hourly"
  start_date: 2024-05-01
  default_args: {owner: team, retries: 3, retry_delay_sec: 45, execution_timeout: 90s}
first:
  tasks: {t: {operator: empty}}
second:
  schedule_interval: "*/5 * * * *"
  default_args: {owner: other}
  tasks: {t: {operator: empty, retry_delay: 2m, execution_timeout: null}}
)";
  Bundle b = ParseBundle({{"d.yaml", text}});
  ASSERT_THAT(b.errors, IsEmpty()) << b.errors[0].message;
  const DagSpec& first = *b.find_dag("first");
  ASSERT_TRUE(first.timetable.has_value());
  EXPECT_EQ(first.timetable->summary(), "@hourly");
  EXPECT_EQ(first.start_date, Day(2024, 5, 1));
  EXPECT_EQ(first.task("t").owner, "team");
  EXPECT_EQ(first.task("t").retries, 3);
  EXPECT_EQ(first.task("t").retry_delay, seconds(45));
  EXPECT_EQ(first.task("t").execution_timeout, seconds(90));
  const DagSpec& second = *b.find_dag("second");
  // schedule_interval in the DAG hides schedule in default: the two are one setting.
  EXPECT_EQ(second.timetable->summary(), "*/5 * * * *");
  EXPECT_EQ(second.task("t").owner, "other");
  EXPECT_EQ(second.task("t").retries, 3);
  EXPECT_EQ(second.task("t").retry_delay, seconds(120));
  EXPECT_FALSE(second.task("t").execution_timeout.has_value());  // null lifts the default's limit
}

TEST(BundleTest, TasksAreInTopologicalOrderWithTiesInFileOrder) {
  Bundle b = ParseBundle({{"t.yaml", R"(g:
  tasks:
    z: {operator: empty, dependencies: [y]}
    y: {operator: empty, dependencies: [b]}
    c: {operator: empty}
    b: {operator: empty}
    a: {operator: empty, dependencies: [c]}
)"}});
  ASSERT_THAT(b.errors, IsEmpty()) << b.errors[0].message;
  // Ready at first: c, b (file order). After c: a is ready but b comes first in the file.
  EXPECT_THAT(TaskIds(b.dags[0]), ElementsAre("c", "b", "y", "z", "a"));
}

struct ErrorCase {
  const char* name;
  std::string yaml;
  std::string line_marker;  // the error's line is the first line containing this
  std::vector<std::string> message_parts;
};

class ImportErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ImportErrorTest, NamesFileLineAndProblem) {
  const ErrorCase& c = GetParam();
  // A good file before and after the broken one: neither is affected.
  Bundle b = ParseBundle({{"a_good.yaml", "good_a:\n  tasks: {t: {operator: empty}}\n"},
                          {"broken.yaml", c.yaml},
                          {"z_good.yaml", "good_z:\n  tasks: {t: {operator: empty}}\n"}});
  ASSERT_EQ(b.errors.size(), 1U);
  const ImportError& e = b.errors[0];
  EXPECT_EQ(e.file, "broken.yaml");
  const int line = LineOf(c.yaml, c.line_marker);
  ASSERT_GT(line, 0) << "bad test: marker not in the YAML";
  EXPECT_EQ(e.line, line) << e.message;
  for (const std::string& part : c.message_parts) EXPECT_THAT(e.message, HasSubstr(part));
  // The broken file contributes no DAG, not even its good ones.
  EXPECT_THAT(DagIds(b), ElementsAre("good_a", "good_z"));
}

const ErrorCase kErrorCases[] = {
    {"YamlSyntax",
     "ok:\n  tasks: {t: {operator: empty}}\nbad:\n  tags: [a, b\n  x: 1\n",
     "  x: 1",
     {"YAML syntax error"}},
    {"Cycle",
     "ok:\n  tasks: {t: {operator: empty}}\ng:\n  tasks:\n    x: {operator: empty}\n"
     "    a: {operator: empty, dependencies: [c, x]}\n"
     "    b: {operator: empty, dependencies: [a]}\n"
     "    c: {operator: empty, dependencies: [b]}\n",
     "    a: {",
     {"cycle", "a -> b -> c -> a"}},
    {"SelfDependency",
     "g:\n  tasks:\n    a: {operator: empty, dependencies: [a]}\n",
     "    a:",
     {"cycle", "a -> a"}},
    {"UnknownDependency",
     "g:\n  tasks:\n    a: {operator: empty}\n    b:\n      operator: empty\n"
     "      dependencies:\n        - a\n        - extrac\n",
     "- extrac",
     {"g.tasks.b.dependencies[1]", "unknown task \"extrac\""}},
    {"BadCron",
     "g:\n  start_date: 2024-01-01\n  schedule: \"0 24 * * *\"\n",
     "schedule:",
     {"g.schedule", "hour"}},
    {"BadPreset",
     "g:\n  start_date: 2024-01-01\n  schedule: \"@fortnightly\"\n",
     "schedule:",
     {"g.schedule", "@fortnightly"}},
    {"DuplicateTaskInList",
     "g:\n  tasks:\n    - task_id: a\n      operator: empty\n    - task_id: b\n"
     "      operator: empty\n    - operator: empty\n      task_id: a\n",
     "      task_id: a",
     {"duplicate task_id \"a\"", "first at line 3"}},
    {"DuplicateTaskInMap",
     "g:\n  tasks:\n    a: {operator: empty}\n    b: {operator: empty}\n"
     "    a: {operator: bash, bash_command: x}\n",
     "    a: {operator: bash",
     {"duplicate key g.tasks.a"}},
    {"DuplicateDagInFile",
     "g:\n  tasks: {t: {operator: empty}}\nh: {}\ng:\n  tasks: {u: {operator: empty}}\n",
     "g:\n  tasks: {u",
     {"duplicate key g"}},
    {"UnknownOperator",
     "g:\n  tasks:\n    a:\n      operator: airflow.operators.python.PythonOperator\n",
     "operator:",
     {"g.tasks.a.operator", "unknown operator", "PythonOperator"}},
    {"MissingOperator",
     "g:\n  tasks:\n    a: {bash_command: ls}\n",
     "    a:",
     {"g.tasks.a", "operator is required"}},
    {"MissingBashCommand",
     "g:\n  tasks:\n    - task_id: a\n      operator: bash\n",
     "- task_id: a",
     {"g.tasks.a", "bash_command is required"}},
    {"BashCommandOnEmpty",
     "g:\n  tasks:\n    a:\n      operator: empty\n      bash_command: ls\n",
     "bash_command",
     {"g.tasks.a.bash_command", "only a BashOperator"}},
    {"RetriesNotAnInteger",
     "g:\n  tasks:\n    a:\n      operator: empty\n      retries: many\n",
     "retries",
     {"g.tasks.a.retries", "expected an integer of at least 0", "\"many\""}},
    {"NegativeRetriesInDefault",
     "default:\n  default_args:\n    retries: -1\ng:\n  tasks: {t: {operator: empty}}\n",
     "retries",
     {"default.default_args.retries", "at least 0"}},
    {"TagsNotAList", "g:\n  tags: daily\n", "tags", {"g.tags", "a list of strings"}},
    {"TagNotAString", "g:\n  tags:\n    - ok\n    - {a: 1}\n", "{a: 1}", {"g.tags[1]"}},
    {"CatchupNotABool", "g:\n  catchup: sometimes\n", "catchup", {"g.catchup", "true or false"}},
    {"MaxActiveRunsZero",
     "g:\n  max_active_runs: 0\n",
     "max_active_runs",
     {"g.max_active_runs", "at least 1"}},
    {"TasksNotACollection", "g:\n  tasks: 3\n", "tasks", {"g.tasks"}},
    {"DagNotAMap", "g: [1, 2]\n", "g:", {"g: expected a map"}},
    {"TopNotAMap", "- a\n- b\n", "- a", {"expected a map"}},
    {"UnknownDagKey",
     "g:\n  tasks: {t: {operator: empty}}\n  schedul: \"@daily\"\n",
     "schedul",
     {"unknown key g.schedul"}},
    {"UnknownTaskKey",
     "g:\n  tasks:\n    a:\n      operator: bash\n      bash_comand: ls\n",
     "bash_comand",
     {"unknown key g.tasks.a.bash_comand"}},
    {"UnknownDefaultArg",
     "g:\n  default_args:\n    owner: x\n    retires: 2\n",
     "retires",
     {"unknown key g.default_args.retires"}},
    {"UnknownKeyInDefault",
     "default:\n  catchup: true\n  tag: [x]\n",
     "tag:",
     {"unknown key default.tag"}},
    {"BothScheduleSpellings",
     "g:\n  start_date: 2024-01-01\n  schedule: \"@daily\"\n  schedule_interval: \"@hourly\"\n",
     "schedule_interval",
     {"duplicate key g.schedule_interval"}},
    {"TemplateErrorInCommand",
     "g:\n  tasks:\n    a:\n      operator: bash\n      bash_command: \"echo {{ dss }}\"\n",
     "bash_command",
     {"g.tasks.a.bash_command"}},
    {"TemplateUnknownParam",
     "g:\n  params: {x: 1}\n  tasks:\n    a:\n      operator: bash\n"
     "      bash_command: \"echo {{ params.y }}\"\n",
     "bash_command",
     {"g.tasks.a.bash_command"}},
    {"TemplateErrorInEnv",
     "g:\n  tasks:\n    a:\n      operator: bash\n      bash_command: ls\n      env:\n"
     "        OK: \"{{ ds }}\"\n        BAD: \"{{ ti.xcom_pull(task_ids='nope') }}\"\n",
     "BAD:",
     {"g.tasks.a.env.BAD"}},
    {"EnvValueNotAString",
     "g:\n  tasks:\n    a:\n      operator: bash\n      bash_command: ls\n      env:\n"
     "        K: [1]\n",
     "K: [1]",
     {"g.tasks.a.env.K", "expected a string"}},
    {"ScheduleWithoutStartDate",
     "g:\n  schedule: \"@daily\"\n",
     "schedule",
     {"g.schedule", "start_date"}},
    {"EndBeforeStart",
     "g:\n  default_args:\n    start_date: 2024-02-01\n    end_date: 2024-01-01\n",
     "end_date",
     {"g.default_args.end_date", "before the start_date"}},
    {"BadStartDate", "g:\n  start_date: yesterday\n", "start_date", {"g.start_date", "yesterday"}},
    {"BadDuration",
     "g:\n  default_args:\n    retry_delay: soon\n",
     "retry_delay",
     {"g.default_args.retry_delay"}},
    {"BadTriggerRule",
     "g:\n  tasks:\n    a:\n      operator: empty\n      trigger_rule: all_sucess\n",
     "trigger_rule",
     {"g.tasks.a.trigger_rule", "none_skipped"}},
    {"BadDagId",
     "ok:\n  tasks: {t: {operator: empty}}\n\"bad id\":\n  tasks: {}\n",
     "bad id",
     {"dag_id", "\"bad id\""}},
    {"BadTaskId",
     "g:\n  tasks:\n    - task_id: a/b\n      operator: empty\n",
     "a/b",
     {"task_id", "'/'"}},
    {"TaskIdDisagreesWithKey",
     "g:\n  tasks:\n    a: {task_id: b, operator: empty}\n",
     "    a:",
     {"g.tasks.a.task_id"}},
    {"ListItemWithoutTaskId",
     "g:\n  tasks:\n    - operator: empty\n",
     "- operator",
     {"g.tasks[0]", "task_id is required"}},
    {"TwoDocuments", "g: {}\n---\nh: {}\n", "h: {}", {"one YAML document"}},
};

INSTANTIATE_TEST_SUITE_P(Kinds, ImportErrorTest, ::testing::ValuesIn(kErrorCases),
                         [](const ::testing::TestParamInfo<ErrorCase>& info) {
                           return std::string(info.param.name);
                         });

TEST(BundleTest, DagDefinedTwiceIsAnErrorInTheLaterFile) {
  Bundle b = ParseBundle({{"a.yaml", "shared:\n  tasks: {first: {operator: empty}}\n"},
                          {"b.yaml",
                           "mine:\n  tasks: {t: {operator: empty}}\n"
                           "shared:\n  tasks: {second: {operator: empty}}\n"}});
  ASSERT_EQ(b.errors.size(), 1U);
  EXPECT_EQ(b.errors[0].file, "b.yaml");
  EXPECT_EQ(b.errors[0].line, 3);
  EXPECT_THAT(b.errors[0].message, HasSubstr("\"shared\" is already defined in a.yaml"));
  // The earlier file keeps its DAG; the later file keeps none, not even `mine`.
  ASSERT_THAT(DagIds(b), ElementsAre("shared"));
  EXPECT_EQ(b.dags[0].file, "a.yaml");
  EXPECT_THAT(TaskIds(b.dags[0]), ElementsAre("first"));
}

TEST(BundleTest, ABrokenEarlierFileDoesNotClaimItsDagIds) {
  Bundle b = ParseBundle({{"a.yaml", "shared:\n  tasks: {first: {operator: nope}}\n"},
                          {"b.yaml", "shared:\n  tasks: {second: {operator: empty}}\n"}});
  ASSERT_EQ(b.errors.size(), 1U);
  EXPECT_EQ(b.errors[0].file, "a.yaml");
  ASSERT_THAT(DagIds(b), ElementsAre("shared"));
  EXPECT_EQ(b.dags[0].file, "b.yaml");
}

TEST(BundleTest, OtherFilesAndEmptyFilesContributeNothing) {
  Bundle b = ParseBundle({{"README.md", "not: [yaml"},
                          {"empty.yaml", ""},
                          {"comments.yml", "# nothing yet\n"},
                          {"only_default.yaml", "default:\n  catchup: true\n"}});
  EXPECT_THAT(b.errors, IsEmpty());
  EXPECT_THAT(b.dags, IsEmpty());
}

TEST(BundleTest, DigestIsStableAndCoversNamesAndContents) {
  const std::map<std::string, std::string> files = {{"a.yaml", "x: 1\n"}, {"b.txt", "hi"}};
  // printf 'a.yaml\0' '5\0' 'x: 1\n' 'b.txt\0' '2\0' 'hi' | sha256sum
  EXPECT_EQ(BundleDigest(files),
            "sha256:dd48ed68e40b0f2d2bb83958ccc7ec608ab90630ee917a5bb7f8c5562a7c1909");
  EXPECT_EQ(ParseBundle(files).digest, BundleDigest(files));
  EXPECT_EQ(BundleDigest(files), BundleDigest(std::map<std::string, std::string>(files)));

  auto changed = files;
  changed["b.txt"] = "ho";  // a file that is not parsed still counts
  EXPECT_NE(BundleDigest(changed), BundleDigest(files));
  auto renamed = files;
  renamed.erase("b.txt");
  renamed["c.txt"] = "hi";
  EXPECT_NE(BundleDigest(renamed), BundleDigest(files));
  // Lengths keep the boundary between name and content unambiguous.
  EXPECT_NE(BundleDigest({{"ab", "c"}}), BundleDigest({{"a", "bc"}}));
  EXPECT_EQ(BundleDigest({}),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(BundleTest, TriggerRuleNamesRoundTrip) {
  const std::pair<TriggerRule, const char*> rules[] = {
      {TriggerRule::kAllSuccess, "all_success"},   {TriggerRule::kAllFailed, "all_failed"},
      {TriggerRule::kAllDone, "all_done"},         {TriggerRule::kOneSuccess, "one_success"},
      {TriggerRule::kOneFailed, "one_failed"},     {TriggerRule::kNoneFailed, "none_failed"},
      {TriggerRule::kNoneSkipped, "none_skipped"}, {TriggerRule::kAlways, "always"}};
  for (const auto& [rule, name] : rules) {
    EXPECT_EQ(TriggerRuleName(rule), name);
    EXPECT_EQ(ParseTriggerRule(name), rule) << name;
  }
  EXPECT_EQ(ParseTriggerRule("ALL_SUCCESS"), std::nullopt);
  EXPECT_EQ(ParseTriggerRule("dummy"), std::nullopt);
  EXPECT_EQ(ParseTriggerRule(""), std::nullopt);
}

TEST(BundleTest, OperatorAliases) {
  EXPECT_EQ(OperatorName(Operator::kBash), "BashOperator");
  EXPECT_EQ(OperatorName(Operator::kEmpty), "EmptyOperator");
  const std::pair<const char*, Operator> accepted[] = {
      {"bash", Operator::kBash},
      {"BashOperator", Operator::kBash},
      {"airflow.operators.bash.BashOperator", Operator::kBash},
      {"airflow.operators.bash_operator.BashOperator", Operator::kBash},
      {"empty", Operator::kEmpty},
      {"EmptyOperator", Operator::kEmpty},
      {"DummyOperator", Operator::kEmpty},
      {"airflow.operators.empty.EmptyOperator", Operator::kEmpty},
      {"airflow.operators.dummy.DummyOperator", Operator::kEmpty},
  };
  for (const auto& [name, op] : accepted) {
    std::string yaml = "g:\n  tasks:\n    t:\n      operator: " + std::string(name) + "\n";
    if (op == Operator::kBash) yaml += "      bash_command: ls\n";
    Bundle b = ParseBundle({{"o.yaml", yaml}});
    ASSERT_THAT(b.errors, IsEmpty()) << name << ": " << b.errors[0].message;
    EXPECT_EQ(b.dags[0].task("t").op, op) << name;
  }
  for (const char* name : {"Bash", "bashoperator", "my.bash", ".BashOperator",
                           "airflow.operators.bash.BashOperatorX", "PythonOperator"}) {
    Bundle b = ParseBundle(
        {{"o.yaml", "g:\n  tasks:\n    t:\n      operator: \"" + std::string(name) + "\"\n"}});
    ASSERT_EQ(b.errors.size(), 1U) << name;
    EXPECT_THAT(b.errors[0].message, HasSubstr("unknown operator")) << name;
  }
}

TEST(BundleTest, IdValidation) {
  for (const char* ok : {"a", "etl_daily", "etl-daily.v2", "A1"}) {
    EXPECT_TRUE(ValidateDagId(ok).ok()) << ok;
    EXPECT_TRUE(ValidateTaskId(ok).ok()) << ok;
    EXPECT_TRUE(ValidateRunId(ok).ok()) << ok;
  }
  EXPECT_TRUE(ValidateDagId(std::string(250, 'x')).ok());
  EXPECT_FALSE(ValidateDagId(std::string(251, 'x')).ok());
  EXPECT_THAT(ValidateDagId(std::string(251, 'x')).message(), HasSubstr("250"));
  EXPECT_FALSE(ValidateDagId("").ok());
  EXPECT_FALSE(ValidateTaskId("a b").ok());
  EXPECT_THAT(ValidateTaskId("a b").message(), HasSubstr("position 2"));
  EXPECT_FALSE(ValidateDagId("a/b").ok());
  EXPECT_THAT(ValidateDagId("a/b").message(), HasSubstr("'/'"));
  EXPECT_FALSE(ValidateDagId("a..b").ok());
  EXPECT_THAT(ValidateDagId("..").message(), HasSubstr("\"..\""));
  EXPECT_FALSE(ValidateDagId("é").ok());
  // Run ids also take ':', '+' and '~', as Airflow's generated ones do.
  const char* run_id = "scheduled__2024-01-01T06:00:00+00:00";
  EXPECT_TRUE(ValidateRunId(run_id).ok());
  EXPECT_TRUE(ValidateRunId("manual~1").ok());
  EXPECT_FALSE(ValidateDagId(run_id).ok());
  EXPECT_FALSE(ValidateTaskId("a:b").ok());
  EXPECT_FALSE(ValidateRunId("../etc").ok());
  EXPECT_FALSE(ValidateRunId("a/b").ok());
  EXPECT_FALSE(ValidateRunId("a b").ok());
}

}  // namespace
}  // namespace tandem::dag
