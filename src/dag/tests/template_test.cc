#include "dag/template.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace tandem::dag {
namespace {

TemplateScope Scope() {
  TemplateScope scope;
  scope.params = {"region", "limit"};
  scope.task_ids = {"extract", "load"};
  return scope;
}

TemplateContext Context() {
  TemplateContext c;
  c.logical_date = *ParseTime("2024-03-05T06:07:08Z");
  c.data_interval_start = *ParseTime("2024-03-05T06:00:00Z");
  c.data_interval_end = *ParseTime("2024-03-06T06:00:00Z");
  c.run_id = "scheduled__2024-03-05T06:00:00+00:00";
  c.dag_id = "etl_daily";
  c.task_id = "load";
  c.params = {{"region", "eu-west"}, {"limit", "10"}};
  c.variables = {{"bucket", "s3://data"}, {"empty", ""}};
  c.connections["warehouse"].fields = {
      {"host", "db.internal"},   {"port", "5432"},         {"login", "etl"},
      {"password", "s3cret"},    {"schema", "public"},     {"extra", "{\"sslmode\": \"require\"}"},
      {"conn_type", "postgres"}, {"conn_id", "warehouse"}, {"description", "the warehouse"}};
  c.xcoms[{"extract", "return_value"}] = "42";
  c.xcoms[{"extract", "rows"}] = "[1, 2]";
  return c;
}

Template MustParse(std::string_view text, const TemplateScope& scope = Scope()) {
  Result<Template> t = Template::Parse(text, scope);
  EXPECT_TRUE(t.ok()) << text << ": " << t.status().ToString();
  return t.ok() ? *t : Template();
}

// Parses and renders with Context(); "ERROR: message" when either fails.
std::string Render(std::string_view text, const TemplateContext& context = Context()) {
  Result<Template> t = Template::Parse(text, Scope());
  if (!t.ok()) return "ERROR: " + t.status().message();
  Result<std::string> out = t->Render(context);
  if (!out.ok()) return "ERROR: " + out.status().message();
  return *out;
}

// The parse error of a template that must not parse.
std::string ParseError(std::string_view text) {
  Result<Template> t = Template::Parse(text, Scope());
  EXPECT_FALSE(t.ok()) << text;
  EXPECT_EQ(t.status().code(), Code::kInvalidArgument) << text;
  return t.status().message();
}

TEST(TemplateTest, EmptyAndLiteralTemplates) {
  Template empty;
  EXPECT_FALSE(empty.has_expressions());
  EXPECT_EQ(empty.text(), "");
  EXPECT_EQ(*empty.Render(Context()), "");

  Template parsed_empty = MustParse("");
  EXPECT_FALSE(parsed_empty.has_expressions());
  EXPECT_EQ(*parsed_empty.Render(Context()), "");

  Template literal = MustParse("echo ${HOME} {not an expression} } { $((1+2))");
  EXPECT_FALSE(literal.has_expressions());
  EXPECT_EQ(literal.text(), "echo ${HOME} {not an expression} } { $((1+2))");
  EXPECT_EQ(*literal.Render(Context()), "echo ${HOME} {not an expression} } { $((1+2))");
  EXPECT_TRUE(literal.variables().empty());
  EXPECT_TRUE(literal.connections().empty());
  EXPECT_TRUE(literal.xcoms().empty());
}

TEST(TemplateTest, EveryExpression) {
  std::vector<std::pair<std::string, std::string>> cases = {
      {"{{ ds }}", "2024-03-05"},
      {"{{ ds_nodash }}", "20240305"},
      {"{{ logical_date }}", "2024-03-05T06:07:08+00:00"},
      {"{{ data_interval_start }}", "2024-03-05T06:00:00+00:00"},
      {"{{ data_interval_end }}", "2024-03-06T06:00:00+00:00"},
      {"{{ run_id }}", "scheduled__2024-03-05T06:00:00+00:00"},
      {"{{ dag.dag_id }}", "etl_daily"},
      {"{{ task.task_id }}", "load"},
      {"{{ params.region }}", "eu-west"},
      {"{{ params.limit }}", "10"},
      {"{{ var.value.bucket }}", "s3://data"},
      {"{{ var.value.empty }}", ""},
      {"{{ conn.warehouse.host }}", "db.internal"},
      {"{{ conn.warehouse.port }}", "5432"},
      {"{{ conn.warehouse.login }}", "etl"},
      {"{{ conn.warehouse.password }}", "s3cret"},
      {"{{ conn.warehouse.schema }}", "public"},
      {"{{ conn.warehouse.extra }}", "{\"sslmode\": \"require\"}"},
      {"{{ conn.warehouse.conn_type }}", "postgres"},
      {"{{ conn.warehouse.conn_id }}", "warehouse"},
      {"{{ conn.warehouse.description }}", "the warehouse"},
      {"{{ ti.xcom_pull(task_ids='extract') }}", "42"},
      {"{{ ti.xcom_pull(task_ids=\"extract\") }}", "42"},
      {"{{ ti.xcom_pull(task_ids='extract', key='rows') }}", "[1, 2]"},
      {"{{ ti.xcom_pull(key=\"rows\", task_ids='extract') }}", "[1, 2]"},
  };
  for (const auto& [text, want] : cases) {
    EXPECT_EQ(Render(text), want) << text;
    EXPECT_TRUE(MustParse(text).has_expressions()) << text;
  }
}

TEST(TemplateTest, ExpressionsAmidLiteralText) {
  EXPECT_EQ(Render("aws s3 cp {{var.value.bucket}}/{{ ds_nodash }}.csv /tmp/{{ds}}.csv # {{ "
                   "dag.dag_id }}"),
            "aws s3 cp s3://data/20240305.csv /tmp/2024-03-05.csv # etl_daily");
  EXPECT_EQ(Render("{{ ds }}{{ ds }}"), "2024-03-052024-03-05");
  EXPECT_EQ(Render("line one\n  {{ task.task_id }}\nline three"), "line one\n  load\nline three");
}

TEST(TemplateTest, WhitespaceInsideBracesIsFlexible) {
  for (std::string_view text : {"{{ds}}", "{{ ds}}", "{{ds }}", "{{   ds   }}", "{{\tds\n}}"}) {
    EXPECT_EQ(Render(text), "2024-03-05") << text;
  }
  EXPECT_EQ(Render("{{ params . region }}"), "eu-west");
  EXPECT_EQ(Render("{{ti.xcom_pull(task_ids='extract',key='rows')}}"), "[1, 2]");
  EXPECT_EQ(Render("{{ ti.xcom_pull( task_ids = 'extract' ,\n key = 'rows' ) }}"), "[1, 2]");
}

TEST(TemplateTest, RenderFormatsOtherDates) {
  TemplateContext c = Context();
  c.logical_date = *ParseTime("1999-12-31T23:59:59Z");
  EXPECT_EQ(Render("{{ ds }} {{ ds_nodash }} {{ logical_date }}", c),
            "1999-12-31 19991231 1999-12-31T23:59:59+00:00");
}

TEST(TemplateTest, WhatRenderWillLookUp) {
  Template t = MustParse(
      "{{ var.value.a }} {{ var.value.b }} {{ var.value.a }} {{ conn.x.host }} {{ conn.y.port }} "
      "{{ ti.xcom_pull(task_ids='extract') }} {{ ti.xcom_pull(task_ids='load', key='k') }} "
      "{{ params.region }} {{ ds }}");
  EXPECT_EQ(t.variables(), (std::set<std::string>{"a", "b"}));
  EXPECT_EQ(t.connections(), (std::set<std::string>{"x", "y"}));
  EXPECT_EQ(t.xcoms(), (std::set<std::pair<std::string, std::string>>{{"extract", "return_value"},
                                                                      {"load", "k"}}));
}

TEST(TemplateTest, MissingXcomAndConnectionFieldRenderAsNone) {
  TemplateContext c = Context();
  EXPECT_EQ(Render("[{{ ti.xcom_pull(task_ids='load') }}]", c), "[None]");
  EXPECT_EQ(Render("[{{ ti.xcom_pull(task_ids='extract', key='other') }}]", c), "[None]");
  c.connections["bare"] = {};
  EXPECT_EQ(Render("[{{ conn.bare.host }}:{{ conn.bare.port }}]", c), "[None:None]");
}

TEST(TemplateTest, MissingVariablesAndConnectionsFailTheRender) {
  Template var = MustParse("echo {{ var.value.nope }}");
  Result<std::string> r = var.Render(Context());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "variable 'nope' does not exist");

  Template conn = MustParse("{{ conn.ghost.host }}");
  r = conn.Render(Context());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "connection 'ghost' does not exist");

  // A param the scope declares but the context lacks.
  TemplateContext c = Context();
  c.params.erase("limit");
  r = MustParse("{{ params.limit }}").Render(c);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "param 'limit' has no value");

  // The first failing part decides; nothing partial is returned.
  r = MustParse("{{ ds }} {{ var.value.missing }} {{ conn.ghost.host }}").Render(Context());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "variable 'missing' does not exist");
}

TEST(TemplateTest, ParseErrorsSayWhatAndWhere) {
  std::vector<std::pair<std::string, std::string>> cases = {
      {"echo {{ dss }}", "column 9: unknown name 'dss'"},
      {"{{ }}", "column 4: the expression is empty"},
      {"{{}}", "column 3: the expression is empty"},
      {"echo {{ ds", "column 6: '{{' is not closed by '}}'"},
      {"echo {{", "column 6: '{{' is not closed by '}}'"},
      {"a }} b", "column 3: '}}' without an opening '{{'"},
      {"{{ ds }} }}", "column 10: '}}' without an opening '{{'"},
      {"{% if x %}y{% endif %}", "column 1: blocks ('{%') are not supported"},
      {"echo ${#ARR[@]}", "column 7: comments ('{#') are not supported"},
      {"{{ ds | upper }}", "column 7: filters ('|') are not supported"},
      {"{{ ds|upper }}", "column 6: filters ('|') are not supported"},
      {"{{ ds ds }}", "column 7: unexpected 'ds' after the expression"},
      {"{{ ds. }}", "column 6: unexpected '.' after the expression"},
      {"{{ params['region'] }}", "column 10: expected '.', found '['"},
      {"{{ 1 }}", "column 4: expected a name, found '1'"},
      {"{{- ds }}", "column 3: expected a name, found '-'"},
      {"{{ ds + 1 }}", "column 7: unexpected '+' after the expression"},
      {"{{ params.region|upper }}", "column 17: filters ('|') are not supported"},
      {"{{ ds € }}", "column 7: unexpected '€' after the expression"},
      {"{{ 'ds' }}", "column 4: expected a name, found the string 'ds'"},
      {"{{ 'ds }}", "column 4: the string is not closed"},
      {"{{ dag.owner }}", "column 8: unknown name 'dag.owner' (only dag.dag_id is known)"},
      {"{{ dag }}", "column 8: expected '.', found the end of the expression"},
      {"{{ task.dag_id }}", "column 9: unknown name 'task.dag_id' (only task.task_id is known)"},
      {"{{ params.nope }}", "column 11: unknown param 'nope' (the DAG's params: limit, region)"},
      {"{{ params. }}", "column 12: expected a param name, found the end of the expression"},
      {"{{ var.json.x }}", "column 8: unknown name 'var.json' (only var.value.NAME is known)"},
      {"{{ var.value }}", "column 14: expected '.', found the end of the expression"},
      {"{{ conn.c }}", "column 11: expected '.', found the end of the expression"},
      {"{{ conn.c.secret }}", "column 11: unknown connection field 'secret' (known: host, port"},
      {"{{ ti.xcom_push(key='a') }}", "column 7: unknown name 'ti.xcom_push'"},
      {"{{ ti.xcom_pull('extract') }}",
       "column 17: xcom_pull takes task_ids='ID' and optionally key='KEY', not the string"},
      {"{{ ti.xcom_pull(dag_id='x') }}", "column 17: xcom_pull takes task_ids='ID'"},
      {"{{ ti.xcom_pull(key='k') }}", "column 7: xcom_pull needs task_ids='ID'"},
      {"{{ ti.xcom_pull(task_ids='ghost') }}",
       "column 26: xcom_pull names task 'ghost', which this DAG has not"},
      {"{{ ti.xcom_pull(task_ids='load', task_ids='load') }}",
       "column 34: 'task_ids' is given twice"},
      {"{{ ti.xcom_pull(task_ids=extract) }}",
       "column 26: expected a quoted string, found 'extract'"},
      {"{{ ti.xcom_pull(task_ids='load' key='k') }}", "column 33: expected ')', found 'key'"},
      {"{{ ti.xcom_pull(task_ids='load'", "column 1: '{{' is not closed by '}}'"},
      {"{{ execution_date }}", "column 4: unknown name 'execution_date'"},
      {"{{ macros.ds_add(ds, 1) }}", "column 4: unknown name 'macros'"},
  };
  for (const auto& [text, want] : cases) {
    std::string error = ParseError(text);
    EXPECT_EQ(error.substr(0, want.size()), want) << text;
  }
}

TEST(TemplateTest, ParamsWhenTheDagDeclaresNone) {
  Result<Template> t = Template::Parse("{{ params.x }}", TemplateScope{});
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(), "column 11: unknown param 'x' (the DAG declares no params)");
}

TEST(TemplateTest, ErrorPositionsInMultilineTextAndUnicode) {
  EXPECT_EQ(ParseError("set -e\necho {{ nope }}"), "line 2, column 9: unknown name 'nope'");
  EXPECT_EQ(ParseError("a\nb\n{{ ds\n"), "line 3, column 1: '{{' is not closed by '}}'");
  // Columns count characters: "é" is two bytes but one column.
  EXPECT_EQ(ParseError("é {{ x }}"), "column 6: unknown name 'x'");
}

}  // namespace
}  // namespace tandem::dag
