// The small part of Jinja that task fields use, evaluated by us (no C++ Jinja is packaged in
// Debian).
//
// A template is literal text with `{{ expression }}` parts. The expressions are exactly:
//   ds, ds_nodash, logical_date, data_interval_start, data_interval_end, run_id,
//   dag.dag_id, task.task_id, params.NAME, var.value.NAME, conn.ID.FIELD
//   (FIELD: host, port, login, password, schema, extra, conn_type, conn_id, description),
//   ti.xcom_pull(task_ids='ID') and ti.xcom_pull(task_ids='ID', key='KEY') (either quote).
// Anything else — an unknown name, an unterminated `{{`, a filter — is an error at parse time,
// which is when a bundle is imported; a missing variable or connection is an error at render
// time, which fails the task try. A missing XCom renders as "None", as Jinja renders Python's
// None. Pure: no I/O.
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "dag/timetable.h"

namespace tandem::dag {

// What a template may refer to, checked when it is parsed.
struct TemplateScope {
  std::set<std::string> params;    // names under `params`
  std::set<std::string> task_ids;  // tasks of the DAG, for xcom_pull
};

struct ConnectionFields {
  std::map<std::string, std::string> fields;  // FIELD -> text; absent or null -> "None"
};

// Everything a render may read. The caller loads only what the templates ask for (see
// Template::variables() and friends).
struct TemplateContext {
  TimePoint logical_date{};
  TimePoint data_interval_start{};
  TimePoint data_interval_end{};
  std::string run_id;
  std::string dag_id;
  std::string task_id;
  std::map<std::string, std::string> params;     // NAME -> text as rendered
  std::map<std::string, std::string> variables;  // key -> value
  std::map<std::string, ConnectionFields> connections;
  std::map<std::pair<std::string, std::string>, std::string> xcoms;  // (task_id, key) -> text
};

class Template {
 public:
  Template() = default;  // the empty template
  // Errors say what is wrong and where ("column 12: unknown name 'dss'").
  static Result<Template> Parse(std::string_view text, const TemplateScope& scope);

  Result<std::string> Render(const TemplateContext& context) const;

  const std::string& text() const { return text_; }
  bool has_expressions() const;
  // What Render will look up, so the caller can load just that.
  const std::set<std::string>& variables() const { return variables_; }
  const std::set<std::string>& connections() const { return connections_; }
  const std::set<std::pair<std::string, std::string>>& xcoms() const { return xcoms_; }

 private:
  struct Part {
    enum class Kind { kLiteral, kDs, kDsNodash, kLogicalDate, kIntervalStart, kIntervalEnd,
                      kRunId, kDagId, kTaskId, kParam, kVariable, kConnection, kXcom };
    Kind kind = Kind::kLiteral;
    std::string a;  // literal text, param/variable name, connection id, xcom task id
    std::string b;  // connection field, xcom key
  };
  std::string text_;
  std::vector<Part> parts_;
  std::set<std::string> variables_;
  std::set<std::string> connections_;
  std::set<std::pair<std::string, std::string>> xcoms_;
};

}  // namespace tandem::dag
