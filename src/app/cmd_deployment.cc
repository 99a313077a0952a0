// `tandem deployment create|list|get|update|delete`.
#include <CLI/CLI.hpp>

#include <memory>
#include <optional>

#include "app/call.h"

namespace tandem::app {
namespace {

struct DeploymentFlags {
  std::string name, ref;
  std::optional<std::string> new_name, description, workspace;
  std::optional<int> worker_slots, default_pool_slots, max_active_runs, max_active_tasks;
  std::optional<bool> catchup;
  std::optional<bool> metrics_enabled;
  std::optional<std::string> metrics_format, metrics_endpoint;
  std::optional<int> metrics_interval;
};

void AddFlags(CLI::App* c, DeploymentFlags& f) {
  c->add_option("--description", f.description, "Description");
  c->add_option("--worker-slots", f.worker_slots, "Task processes run at once (1-4096)");
  c->add_option("--default-pool-slots", f.default_pool_slots, "Slots of default_pool");
  c->add_option("--catchup", f.catchup, "Schedule default: catch up missed intervals (true|false)");
  c->add_option("--max-active-runs", f.max_active_runs, "Schedule default per DAG");
  c->add_option("--max-active-tasks", f.max_active_tasks, "Schedule default per DAG run");
  c->add_option("--metrics-enabled", f.metrics_enabled, "Export metrics (true|false)");
  c->add_option("--metrics-format", f.metrics_format, "prometheus | otlp | statsd");
  c->add_option("--metrics-endpoint", f.metrics_endpoint, "Where metrics are sent");
  c->add_option("--metrics-interval", f.metrics_interval, "Seconds between exports");
}

// The request body from the flags given (only those).
Json Body(const DeploymentFlags& f) {
  Json b = Json::object();
  if (f.new_name) b["name"] = *f.new_name;
  if (f.description) b["description"] = *f.description;
  Json config = Json::object(), schedule = Json::object(), metrics = Json::object();
  if (f.worker_slots) config["worker_slots"] = *f.worker_slots;
  if (f.default_pool_slots) config["default_pool_slots"] = *f.default_pool_slots;
  if (f.catchup) schedule["catchup"] = *f.catchup;
  if (f.max_active_runs) schedule["max_active_runs"] = *f.max_active_runs;
  if (f.max_active_tasks) schedule["max_active_tasks"] = *f.max_active_tasks;
  if (!schedule.empty()) config["schedule"] = schedule;
  if (!config.empty()) b["config"] = config;
  if (f.metrics_enabled) metrics["enabled"] = *f.metrics_enabled;
  if (f.metrics_format) metrics["format"] = *f.metrics_format;
  if (f.metrics_endpoint) metrics["endpoint"] = *f.metrics_endpoint;
  if (f.metrics_interval) metrics["interval_seconds"] = *f.metrics_interval;
  if (!metrics.empty()) b["metrics_export"] = metrics;
  return b;
}

void PrintOne(const Json& d) {
  const Json& c = d["config"];
  const Json& m = d["metrics_export"];
  PrintTable({"FIELD", "VALUE"},
             {{"id", Cell(d["id"])},
              {"name", Cell(d["name"])},
              {"namespace", Cell(d["namespace"])},
              {"workspace_id", Cell(d["workspace_id"])},
              {"description", Cell(d["description"])},
              {"worker_slots", Cell(c["worker_slots"])},
              {"default_pool_slots", Cell(c["default_pool_slots"])},
              {"catchup", Cell(c["schedule"]["catchup"])},
              {"max_active_runs", Cell(c["schedule"]["max_active_runs"])},
              {"max_active_tasks", Cell(c["schedule"]["max_active_tasks"])},
              {"metrics_export", m["enabled"].get<bool>()
                                     ? Cell(m["format"]) + " to " + Cell(m["endpoint"]) +
                                           " every " + Cell(m["interval_seconds"]) + " s"
                                     : "off"},
              {"created_at", Cell(d["created_at"])},
              {"updated_at", Cell(d["updated_at"])}});
}

}  // namespace

void AddDeploymentCommands(CLI::App& app, Globals& g, Run* run) {
  auto* dep = app.add_subcommand("deployment", "Manage deployments");
  dep->require_subcommand(1);
  auto f = std::make_shared<DeploymentFlags>();

  auto* create = dep->add_subcommand("create", "Create a deployment");
  create->add_option("name", f->name, "Name (a-z, 0-9, '-'; 1-40 characters)")->required();
  create->add_option("--workspace", f->workspace, "The workspace it belongs to (default: default)");
  AddFlags(create, *f);
  create->callback([run, &g, f] {
    *run = [&g, f] {
      DeploymentFlags x = *f;
      x.new_name = x.name;
      Json body = Body(x);
      if (x.workspace) body["workspace"] = *x.workspace;
      return Call(g, "POST", "/api/v1/deployments", body, PrintOne);
    };
  });

  auto* list = dep->add_subcommand("list", "List deployments");
  list->callback([run, &g] {
    *run = [&g] {
      return Call(g, "GET", "/api/v1/deployments?limit=1000", nullptr, [](const Json& j) {
        std::vector<std::vector<std::string>> rows;
        for (const auto& d : j["deployments"]) {
          rows.push_back({Cell(d["name"]), Cell(d["id"]), Cell(d["namespace"]),
                          Cell(d["config"]["worker_slots"]), Cell(d["description"])});
        }
        PrintTable({"NAME", "ID", "NAMESPACE", "WORKER SLOTS", "DESCRIPTION"}, rows);
      });
    };
  });

  auto* get = dep->add_subcommand("get", "Show a deployment");
  get->add_option("deployment", f->ref, "Name or id")->required();
  get->callback([run, &g, f] {
    *run = [&g, f] {
      return Call(g, "GET", "/api/v1/deployments/" + PathEscape(f->ref), nullptr, PrintOne);
    };
  });

  auto* update = dep->add_subcommand("update", "Change a deployment (only the flags given)");
  update->add_option("deployment", f->ref, "Name or id")->required();
  update->add_option("--name", f->new_name, "New name (the namespace and id stay)");
  AddFlags(update, *f);
  update->callback([run, &g, f] {
    *run = [&g, f] {
      return Call(g, "PATCH", "/api/v1/deployments/" + PathEscape(f->ref), Body(*f), PrintOne);
    };
  });

  auto* del = dep->add_subcommand("delete", "Delete a deployment and everything it owns");
  del->add_option("deployment", f->ref, "Name or id")->required();
  del->callback([run, &g, f] {
    *run = [&g, f] {
      int code = Call(g, "DELETE", "/api/v1/deployments/" + PathEscape(f->ref), nullptr,
                      nullptr);
      if (code == 0 && g.format() == Format::kTable) printf("deleted %s\n", f->ref.c_str());
      return code;
    };
  });
}

}  // namespace tandem::app
