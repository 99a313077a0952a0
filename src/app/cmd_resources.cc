// `tandem env|conn|var|pool ...`: a deployment's env vars (tandem's API) and its Airflow
// connections, variables and pools (Airflow REST API v2 shapes).
#include <CLI/CLI.hpp>

#include <iostream>
#include <iterator>
#include <memory>
#include <optional>

#include "app/call.h"

namespace tandem::app {
namespace {

struct Args {
  std::string deployment, key, value;
  bool secret = false, json_value = false, include_deferred = false;
  int slots = 0;
  std::optional<std::string> type, description, host, schema, login, password, extra;
  std::optional<int> port;
};

std::string EnvPath(const Args& a) {
  return "/api/v1/deployments/" + PathEscape(a.deployment) + "/env";
}

// Creates with POST; when the key exists already, updates it with PATCH instead.
int CreateOrUpdate(const Globals& g, const std::string& collection, const std::string& item,
                   const Json& create_body, const Json& patch_body,
                   const std::function<void(const Json&)>& table) {
  auto created = Send(g, "POST", collection, create_body);
  if (created.ok() && created->status == 409) return Call(g, "PATCH", item, patch_body, table);
  return Print(g, created, table);
}

void PrintVar(const Json& v) {
  PrintTable({"KEY", "VALUE", "DESCRIPTION", "ENCRYPTED"},
             {{Cell(v["key"]), Cell(v["value"]), Cell(v["description"]), Cell(v["is_encrypted"])}});
}

void PrintConn(const Json& c) {
  PrintTable({"FIELD", "VALUE"}, {{"connection_id", Cell(c["connection_id"])},
                                  {"conn_type", Cell(c["conn_type"])},
                                  {"description", Cell(c["description"])},
                                  {"host", Cell(c["host"])},
                                  {"schema", Cell(c["schema"])},
                                  {"login", Cell(c["login"])},
                                  {"password", Cell(c["password"])},
                                  {"port", Cell(c["port"])},
                                  {"extra", Cell(c["extra"])}});
}

void PrintPool(const Json& p) {
  PrintTable({"NAME", "SLOTS", "OPEN", "DESCRIPTION"},
             {{Cell(p["name"]), Cell(p["slots"]), Cell(p["open_slots"]), Cell(p["description"])}});
}

void PrintDeleted(const Globals& g, const std::string& what) {
  if (g.format() == Format::kTable) printf("deleted %s\n", what.c_str());
}

void AddEnv(CLI::App& app, Globals& g, Run* run, const std::shared_ptr<Args>& a) {
  auto* env = app.add_subcommand("env", "A deployment's environment variables");
  env->require_subcommand(1);
  auto* set = env->add_subcommand("set", "Set an env var (replaces it if it exists)");
  set->add_option("deployment", a->deployment)->required();
  set->add_option("key", a->key)->required();
  set->add_option("value", a->value, "The value, or - to read it from standard input")
      ->required();
  set->add_flag("--secret", a->secret, "Seal it at rest and never show it again");
  set->callback([run, &g, a] {
    *run = [&g, a] {
      Json body = {{"value", ValueOrStdin(a->value)}, {"is_secret", a->secret}};
      return Call(g, "PUT", EnvPath(*a) + "/" + PathEscape(a->key), body, [](const Json& v) {
        PrintTable({"KEY", "VALUE", "SECRET"},
                   {{Cell(v["key"]), Cell(v["value"]), Cell(v["is_secret"])}});
      });
    };
  });
  auto* unset = env->add_subcommand("unset", "Remove an env var");
  unset->add_option("deployment", a->deployment)->required();
  unset->add_option("key", a->key)->required();
  unset->callback([run, &g, a] {
    *run = [&g, a] {
      int code = Call(g, "DELETE", EnvPath(*a) + "/" + PathEscape(a->key), nullptr, nullptr);
      if (code == 0) PrintDeleted(g, a->key);
      return code;
    };
  });
  auto* list = env->add_subcommand("list", "List env vars (secret values masked)");
  list->add_option("deployment", a->deployment)->required();
  list->callback([run, &g, a] {
    *run = [&g, a] {
      return Call(g, "GET", EnvPath(*a), nullptr, [](const Json& j) {
        std::vector<std::vector<std::string>> rows;
        for (const auto& v : j["env_vars"]) {
          rows.push_back({Cell(v["key"]), Cell(v["value"]), Cell(v["is_secret"])});
        }
        PrintTable({"KEY", "VALUE", "SECRET"}, rows);
      });
    };
  });
}

void AddConn(CLI::App& app, Globals& g, Run* run, const std::shared_ptr<Args>& a) {
  auto* conn = app.add_subcommand("conn", "A deployment's Airflow connections");
  conn->require_subcommand(1);
  auto path = [](const Args& x) { return AirflowRoot(x.deployment) + "/connections"; };

  auto* add = conn->add_subcommand("add", "Add a connection");
  add->add_option("deployment", a->deployment)->required();
  add->add_option("conn_id", a->key)->required();
  add->add_option("--type", a->type, "conn_type, e.g. postgres, http, aws")->required();
  add->add_option("--description", a->description);
  add->add_option("--host", a->host);
  add->add_option("--schema", a->schema);
  add->add_option("--login", a->login);
  add->add_option("--password", a->password,
                  "Sealed at rest; shown as ***; - reads it from standard input");
  add->add_option("--port", a->port);
  add->add_option("--extra", a->extra, "A JSON object, e.g. '{\"region\": \"eu\"}'");
  add->callback([run, &g, a, path] {
    *run = [&g, a, path] {
      Json body = {{"connection_id", a->key}, {"conn_type", *a->type}};
      for (auto [k, v] : {std::pair{"description", &a->description}, {"host", &a->host},
                          {"schema", &a->schema}, {"login", &a->login},
                          {"password", &a->password}, {"extra", &a->extra}}) {
        if (*v) body[k] = std::string(k) == "password" ? ValueOrStdin(**v) : **v;
      }
      if (a->port) body["port"] = *a->port;
      return Call(g, "POST", path(*a), body, PrintConn);
    };
  });
  auto* get = conn->add_subcommand("get", "Show a connection (secrets masked)");
  get->add_option("deployment", a->deployment)->required();
  get->add_option("conn_id", a->key)->required();
  get->callback([run, &g, a, path] {
    *run = [&g, a, path] {
      return Call(g, "GET", path(*a) + "/" + PathEscape(a->key), nullptr, PrintConn);
    };
  });
  auto* list = conn->add_subcommand("list", "List connections");
  list->add_option("deployment", a->deployment)->required();
  list->callback([run, &g, a, path] {
    *run = [&g, a, path] {
      return Call(g, "GET", path(*a) + "?limit=1000", nullptr, [](const Json& j) {
        std::vector<std::vector<std::string>> rows;
        for (const auto& c : j["connections"]) {
          rows.push_back({Cell(c["connection_id"]), Cell(c["conn_type"]), Cell(c["host"]),
                          Cell(c["port"]), Cell(c["login"]), Cell(c["password"])});
        }
        PrintTable({"CONN ID", "TYPE", "HOST", "PORT", "LOGIN", "PASSWORD"}, rows);
      });
    };
  });
  auto* del = conn->add_subcommand("delete", "Delete a connection");
  del->add_option("deployment", a->deployment)->required();
  del->add_option("conn_id", a->key)->required();
  del->callback([run, &g, a, path] {
    *run = [&g, a, path] {
      int code = Call(g, "DELETE", path(*a) + "/" + PathEscape(a->key), nullptr, nullptr);
      if (code == 0) PrintDeleted(g, a->key);
      return code;
    };
  });
}

void AddVar(CLI::App& app, Globals& g, Run* run, const std::shared_ptr<Args>& a) {
  auto* var = app.add_subcommand("var", "A deployment's Airflow variables");
  var->require_subcommand(1);
  auto path = [](const Args& x) { return AirflowRoot(x.deployment) + "/variables"; };

  auto* set = var->add_subcommand("set", "Set a variable (creates or updates)");
  set->add_option("deployment", a->deployment)->required();
  set->add_option("key", a->key)->required();
  set->add_option("value", a->value, "The value, or - to read it from standard input")
      ->required();
  set->add_option("--description", a->description);
  set->add_flag("--secret", a->secret, "Seal it at rest and mask it (also automatic for keys "
                                       "such as *password*, *secret*, *api_key*)");
  set->add_flag("--json", a->json_value, "The value is JSON (stored as its JSON text)");
  set->callback([run, &g, a, path] {
    *run = [&g, a, path]() -> int {
      Json value = ValueOrStdin(a->value);
      if (a->json_value) {
        value = Json::parse(value.get<std::string>(), nullptr, false);
        if (value.is_discarded()) return Fail(InvalidArgument("--json: the value is not JSON"));
      }
      Json body = {{"key", a->key}, {"value", value}};
      if (a->description) body["description"] = *a->description;
      if (a->secret) body["is_secret"] = true;
      return CreateOrUpdate(g, path(*a), path(*a) + "/" + PathEscape(a->key), body, body,
                            PrintVar);
    };
  });
  auto* get = var->add_subcommand("get", "Show a variable (secret values masked)");
  get->add_option("deployment", a->deployment)->required();
  get->add_option("key", a->key)->required();
  get->callback([run, &g, a, path] {
    *run = [&g, a, path] {
      return Call(g, "GET", path(*a) + "/" + PathEscape(a->key), nullptr, PrintVar);
    };
  });
  auto* list = var->add_subcommand("list", "List variables");
  list->add_option("deployment", a->deployment)->required();
  list->callback([run, &g, a, path] {
    *run = [&g, a, path] {
      return Call(g, "GET", path(*a) + "?limit=1000", nullptr, [](const Json& j) {
        std::vector<std::vector<std::string>> rows;
        for (const auto& v : j["variables"]) {
          rows.push_back({Cell(v["key"]), Cell(v["value"]), Cell(v["description"]),
                          Cell(v["is_encrypted"])});
        }
        PrintTable({"KEY", "VALUE", "DESCRIPTION", "ENCRYPTED"}, rows);
      });
    };
  });
  auto* del = var->add_subcommand("delete", "Delete a variable");
  del->add_option("deployment", a->deployment)->required();
  del->add_option("key", a->key)->required();
  del->callback([run, &g, a, path] {
    *run = [&g, a, path] {
      int code = Call(g, "DELETE", path(*a) + "/" + PathEscape(a->key), nullptr, nullptr);
      if (code == 0) PrintDeleted(g, a->key);
      return code;
    };
  });
}

void AddPool(CLI::App& app, Globals& g, Run* run, const std::shared_ptr<Args>& a) {
  auto* pool = app.add_subcommand("pool", "A deployment's Airflow pools");
  pool->require_subcommand(1);
  auto path = [](const Args& x) { return AirflowRoot(x.deployment) + "/pools"; };

  auto* set = pool->add_subcommand("set", "Create a pool or change its slots");
  set->add_option("deployment", a->deployment)->required();
  set->add_option("name", a->key)->required();
  set->add_option("slots", a->slots, "Slots (-1 for unlimited)")->required();
  set->add_option("--description", a->description);
  CLI::Option* deferred = set->add_flag("--include-deferred,!--exclude-deferred",
                                        a->include_deferred,
                                        "Deferred tasks take slots (or not); unchanged if omitted");
  set->callback([run, &g, a, path, deferred] {
    *run = [&g, a, path, deferred] {
      Json create = {{"name", a->key}, {"slots", a->slots}};
      Json patch = {{"slots", a->slots}};
      if (deferred->count() > 0) create["include_deferred"] = patch["include_deferred"] =
          a->include_deferred;
      if (a->description) create["description"] = patch["description"] = *a->description;
      return CreateOrUpdate(g, path(*a), path(*a) + "/" + PathEscape(a->key), create, patch,
                            PrintPool);
    };
  });
  auto* list = pool->add_subcommand("list", "List pools");
  list->add_option("deployment", a->deployment)->required();
  list->callback([run, &g, a, path] {
    *run = [&g, a, path] {
      return Call(g, "GET", path(*a) + "?limit=1000", nullptr, [](const Json& j) {
        std::vector<std::vector<std::string>> rows;
        for (const auto& p : j["pools"]) {
          rows.push_back({Cell(p["name"]), Cell(p["slots"]), Cell(p["open_slots"]),
                          Cell(p["description"])});
        }
        PrintTable({"NAME", "SLOTS", "OPEN", "DESCRIPTION"}, rows);
      });
    };
  });
  auto* del = pool->add_subcommand("delete", "Delete a pool (default_pool cannot be deleted)");
  del->add_option("deployment", a->deployment)->required();
  del->add_option("name", a->key)->required();
  del->callback([run, &g, a, path] {
    *run = [&g, a, path] {
      int code = Call(g, "DELETE", path(*a) + "/" + PathEscape(a->key), nullptr, nullptr);
      if (code == 0) PrintDeleted(g, a->key);
      return code;
    };
  });
}

}  // namespace

void AddResourceCommands(CLI::App& app, Globals& g, Run* run) {
  auto a = std::make_shared<Args>();
  AddEnv(app, g, run, a);
  AddConn(app, g, run, a);
  AddVar(app, g, run, a);
  AddPool(app, g, run, a);
}

}  // namespace tandem::app
