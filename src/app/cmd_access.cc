// `tandem login|logout|whoami`, `tandem user ...`, `tandem role grant|revoke`,
// `tandem workspace create|list`, `tandem token create|list|revoke`,
// `tandem worker-credential create|list|revoke` and `tandem keys list|rotate`: who the CLI's
// credential is, the users, roles, workspaces, API tokens and worker credentials that say who
// may do what, and the keyring that seals secrets at rest (docs/security.md). Passwords are read from standard input, never from the command line.
#include <CLI/CLI.hpp>
#include <memory>
#include <optional>

#include "app/call.h"
#include "base/fs.h"

namespace tandem::app {
namespace {

struct AccessFlags {
  std::string name, description, role, id, workspace, deployment, scope, principal;
  std::optional<int64_t> expires_in;
  int limit = 50;
};

// The scope a role grant names: --deployment, --workspace, or the platform.
Json RoleTarget(const AccessFlags& f) {
  if (!f.deployment.empty()) return {{"scope", "deployment"}, {"target", f.deployment}};
  if (!f.workspace.empty()) return {{"scope", "workspace"}, {"target", f.workspace}};
  return {{"scope", "platform"}};
}

void PrintUser(const Json& u) {
  std::string roles;
  for (const Json& r : u["roles"]) {
    roles += (roles.empty() ? "" : ", ") + Cell(r["role"]) + " on " + Cell(r["scope"]) +
             (r["scope_id"].is_string() ? " " + Cell(r["scope_id"]) : "");
  }
  PrintTable({"FIELD", "VALUE"}, {{"id", Cell(u["id"])},
                                  {"name", Cell(u["name"])},
                                  {"roles", roles},
                                  {"disabled_at", Cell(u["disabled_at"])},
                                  {"created_at", Cell(u["created_at"])}});
}

// Where a token command acts: the deployment's tokens, the workspace's, or the platform's.
std::string TokensPath(const AccessFlags& f) {
  if (!f.deployment.empty()) return "/api/v1/deployments/" + PathEscape(f.deployment) + "/tokens";
  if (!f.workspace.empty()) return "/api/v1/workspaces/" + PathEscape(f.workspace) + "/tokens";
  return "/api/v1/tokens";
}

// Where a worker-credential command acts: a deployment's, or the platform's pool.
std::string WorkerCredentialsPath(const AccessFlags& f) {
  if (f.deployment.empty()) return "/api/v1/worker-credentials";
  return "/api/v1/deployments/" + PathEscape(f.deployment) + "/worker-credentials";
}

void PrintWorkerCredential(const Json& w) {
  PrintTable({"FIELD", "VALUE"},
             {{"id", Cell(w["id"])},
              {"name", Cell(w["name"])},
              {"deployment", w["deployment_id"].is_string() ? Cell(w["deployment_id"])
                                                            : "every deployment"},
              {"created_by", Cell(w["created_by"])},
              {"created_at", Cell(w["created_at"])},
              {"expires_at", Cell(w["expires_at"])},
              {"revoked_at", Cell(w["revoked_at"])}});
}

void PrintKeys(const Json& j) {
  std::vector<std::vector<std::string>> rows;
  for (const Json& k : j["keys"]) {
    rows.push_back({Cell(k["id"]), Cell(k["state"]), Cell(k["values"]), Cell(k["created_at"]),
                    Cell(k["retired_at"])});
  }
  PrintTable({"KEY", "STATE", "SECRETS", "CREATED", "RETIRED"}, rows);
  if (j["unkeyed_values"].get<int64_t>() > 0) {
    printf("%s secrets are sealed under the pair's secret key itself; `tandem keys rotate` "
           "reseals them.\n",
           Cell(j["unkeyed_values"]).c_str());
  }
}

void AddKeyCommands(CLI::App& app, Globals& g, Run* run) {
  auto* keys = app.add_subcommand(
      "keys", "The keyring sealing secrets at rest (platform owners; docs/security.md, \"Keys\")");
  keys->require_subcommand(1);
  keys->add_subcommand("list", "List the data keys and how many secrets each seals")
      ->callback([run, &g] {
        *run = [&g] { return Call(g, "GET", "/api/v1/keys", nullptr, PrintKeys); };
      });
  keys->add_subcommand("rotate",
                       "Make a new data key, reseal every secret under it while the platform "
                       "runs, and retire the old key")
      ->callback([run, &g] {
        *run = [&g] {
          return Call(g, "POST", "/api/v1/keys/rotate", Json::object(), [](const Json& j) {
            std::string retired;
            for (const Json& id : j["retired"]) retired += (retired.empty() ? "" : ", ") + Cell(id);
            printf("key %s is active; %s secrets resealed under it; retired: %s\n",
                   Cell(j["key"]["id"]).c_str(), Cell(j["resealed"]).c_str(),
                   retired.empty() ? "none" : retired.c_str());
          });
        };
      });
}

void AddWorkerCredentialCommands(CLI::App& app, Globals& g, Run* run,
                                 const std::shared_ptr<AccessFlags>& f) {
  auto* wc = app.add_subcommand("worker-credential",
                                "Worker credentials: of a deployment's workers (--deployment), or "
                                "of a pool serving every deployment");
  wc->require_subcommand(1);
  auto add_deployment = [&f](CLI::App* c) {
    c->add_option("--deployment", f->deployment,
                  "Of this deployment's workers (name or id); without it, the platform's pool");
  };
  auto* c = wc->add_subcommand("create", "Make a worker credential; it is printed this once");
  c->add_option("name", f->name, "What it is for (1-100 characters)")->required();
  c->add_option("--description", f->description, "Description");
  c->add_option("--expires-in", f->expires_in, "Seconds until it expires (1 to a year)");
  add_deployment(c);
  c->callback([run, &g, f] {
    *run = [&g, f] {
      Json body = {{"name", f->name}, {"description", f->description}};
      if (f->expires_in) body["expires_in_seconds"] = *f->expires_in;
      return Call(g, "POST", WorkerCredentialsPath(*f), body, [](const Json& w) {
        PrintWorkerCredential(w);
        printf("\n%s\n\nThe credential is shown this once: keep it now (umask 077).\n",
               Cell(w["credential"]).c_str());
      });
    };
  });
  auto* l = wc->add_subcommand("list", "List worker credentials, revoked ones included");
  add_deployment(l);
  l->callback([run, &g, f] {
    *run = [&g, f] {
      return Call(g, "GET", WorkerCredentialsPath(*f), nullptr, [](const Json& j) {
        std::vector<std::vector<std::string>> rows;
        for (const Json& w : j["worker_credentials"]) {
          rows.push_back({Cell(w["id"]), Cell(w["name"]), Cell(w["created_by"]),
                          Cell(w["expires_at"]), Cell(w["revoked_at"])});
        }
        PrintTable({"ID", "NAME", "CREATED BY", "EXPIRES", "REVOKED"}, rows);
      });
    };
  });
  auto* r = wc->add_subcommand(
      "revoke", "Revoke a worker credential: its workers' next request is refused");
  r->add_option("id", f->id, "The credential's id (from `tandem worker-credential list`)")
      ->required();
  add_deployment(r);
  r->callback([run, &g, f] {
    *run = [&g, f] {
      return Call(g, "DELETE", WorkerCredentialsPath(*f) + "/" + PathEscape(f->id), nullptr,
                  PrintWorkerCredential);
    };
  });
}

void AddScopeFlags(CLI::App* c, AccessFlags& f) {
  auto* d = c->add_option("--deployment", f.deployment, "On this deployment (name or id)");
  auto* w = c->add_option("--workspace", f.workspace, "On this workspace (name or id)");
  d->excludes(w);
}

void PrintToken(const Json& t) {
  PrintTable(
      {"FIELD", "VALUE"},
      {{"id", Cell(t["id"])},
       {"name", Cell(t["name"])},
       {"scope", Cell(t["scope"]) + (t["scope_id"].is_string() ? " " + Cell(t["scope_id"]) : "")},
       {"role", Cell(t["role"])},
       {"created_by", Cell(t["created_by"])},
       {"expires_at", Cell(t["expires_at"])},
       {"revoked_at", Cell(t["revoked_at"])}});
}

void PrintWorkspace(const Json& w) {
  PrintTable({"NAME", "ID", "DESCRIPTION"},
             {{Cell(w["name"]), Cell(w["id"]), Cell(w["description"])}});
}

}  // namespace

void AddAccessCommands(CLI::App& app, Globals& g, Run* run) {
  auto f = std::make_shared<AccessFlags>();

  auto* audit = app.add_subcommand(
      "audit", "The audit trail: every write and refusal, newest first (platform viewers)");
  audit->add_option("--deployment", f->deployment, "One deployment's events (name or id)");
  audit->add_option("--principal", f->principal, "One principal's: \"user alice\", \"token ci\"");
  audit->add_option("--limit", f->limit, "At most this many (1-1000; default 50)");
  audit->callback([run, &g, f] {
    *run = [&g, f] {
      std::string q = "?limit=" + std::to_string(f->limit);
      if (!f->deployment.empty()) q += "&deployment=" + PathEscape(f->deployment);
      if (!f->principal.empty()) q += "&principal=" + PathEscape(f->principal);
      return Call(g, "GET", "/api/v1/audit" + q, nullptr, [](const Json& j) {
        std::vector<std::vector<std::string>> rows;
        for (const Json& e : j["events"]) {
          rows.push_back({Cell(e["id"]), Cell(e["at"]), Cell(e["principal"]), Cell(e["source"]),
                          Cell(e["method"]) + " " + Cell(e["path"]), Cell(e["status"]),
                          Cell(e["outcome"])});
        }
        PrintTable({"ID", "AT", "WHO", "FROM", "REQUEST", "STATUS", "OUTCOME"}, rows);
      });
    };
  });

  auto* login = app.add_subcommand(
      "login",
      "Log in as a user: reads the password from standard input and keeps the session "
      "token in <state-dir>/session (0600), which commands then send");
  login->add_option("user", f->name, "User name")->required();
  login->callback([run, &g, f] {
    *run = [&g, f] {
      Result<HttpResult> r =
          Send(g, "POST", "/auth/token", {{"username", f->name}, {"password", ValueOrStdin("-")}});
      if (!r.ok() || r->status != 201) return Print(g, r, nullptr);
      Json j = Json::parse(r->body, nullptr, false);
      if (!j.is_object() || !j.contains("access_token")) {
        return Fail(Internal("the region's answer holds no access_token"));
      }
      Status s = WriteFileAtomic(SessionFile(g.target.state_dir),
                                 j["access_token"].get<std::string>() + "\n", 0600);
      if (!s.ok()) return Fail(s);
      if (g.format() == Format::kTable) {
        printf("logged in as %s (session in %s)\n", f->name.c_str(),
               SessionFile(g.target.state_dir).c_str());
      }
      return 0;
    };
  });
  auto* logout = app.add_subcommand("logout", "Forget the session `tandem login` kept");
  logout->callback([run, &g] {
    *run = [&g] {
      Status s = RemoveAll(SessionFile(g.target.state_dir));
      return s.ok() ? 0 : Fail(s);
    };
  });

  auto* user = app.add_subcommand("user", "Users (platform owners)");
  user->require_subcommand(1);
  auto* uc = user->add_subcommand("create", "Create a user; reads the password from stdin");
  uc->add_option("name", f->name, "Name (a-z, 0-9, '.', '_', '@', '-'; 1-64 characters)")
      ->required();
  uc->callback([run, &g, f] {
    *run = [&g, f] {
      return Call(g, "POST", "/api/v1/users", {{"name", f->name}, {"password", ValueOrStdin("-")}},
                  PrintUser);
    };
  });
  auto* ul = user->add_subcommand("list", "List users and their roles");
  ul->callback([run, &g] {
    *run = [&g] {
      return Call(g, "GET", "/api/v1/users", nullptr, [](const Json& j) {
        std::vector<std::vector<std::string>> rows;
        for (const Json& u : j["users"]) {
          rows.push_back({Cell(u["name"]), Cell(u["id"]), std::to_string(u["roles"].size()),
                          Cell(u["disabled_at"])});
        }
        PrintTable({"NAME", "ID", "ROLES", "DISABLED"}, rows);
      });
    };
  });
  auto* ug = user->add_subcommand("get", "Show a user and its roles");
  ug->add_option("name", f->name, "Name or id")->required();
  ug->callback([run, &g, f] {
    *run = [&g, f] {
      return Call(g, "GET", "/api/v1/users/" + PathEscape(f->name), nullptr, PrintUser);
    };
  });
  auto* up =
      user->add_subcommand("password", "Set a user's password from stdin (ends its sessions)");
  up->add_option("name", f->name, "Name or id")->required();
  up->callback([run, &g, f] {
    *run = [&g, f] {
      return Call(g, "PATCH", "/api/v1/users/" + PathEscape(f->name),
                  {{"password", ValueOrStdin("-")}}, PrintUser);
    };
  });
  for (const auto& [verb, disabled] : {std::pair{"disable", true}, std::pair{"enable", false}}) {
    auto* ud = user->add_subcommand(
        verb, disabled ? "Disable a user (ends its sessions)" : "Let a disabled user log in again");
    ud->add_option("name", f->name, "Name or id")->required();
    ud->callback([run, &g, f, disabled = disabled] {
      *run = [&g, f, disabled] {
        return Call(g, "PATCH", "/api/v1/users/" + PathEscape(f->name), {{"disabled", disabled}},
                    PrintUser);
      };
    });
  }

  auto* role = app.add_subcommand(
      "role",
      "A user's roles: on the platform, a workspace (--workspace) or a deployment "
      "(--deployment)");
  role->require_subcommand(1);
  auto* rg = role->add_subcommand("grant", "Give a user a role (replacing its role there)");
  rg->add_option("user", f->name, "User name or id")->required();
  rg->add_option("role", f->role,
                 "platform: owner|operator|viewer; workspace, deployment: admin|editor|viewer")
      ->required();
  AddScopeFlags(rg, *f);
  rg->callback([run, &g, f] {
    *run = [&g, f] {
      Json body = RoleTarget(*f);
      body["role"] = f->role;
      return Call(g, "POST", "/api/v1/users/" + PathEscape(f->name) + "/roles", body, PrintUser);
    };
  });
  auto* rr = role->add_subcommand("revoke", "Take a user's role on a scope away");
  rr->add_option("user", f->name, "User name or id")->required();
  AddScopeFlags(rr, *f);
  rr->callback([run, &g, f] {
    *run = [&g, f] {
      Json t = RoleTarget(*f);
      std::string q = "?scope=" + t["scope"].get<std::string>();
      if (t.contains("target")) q += "&target=" + PathEscape(t["target"].get<std::string>());
      return Call(g, "DELETE", "/api/v1/users/" + PathEscape(f->name) + "/roles" + q, nullptr,
                  PrintUser);
    };
  });

  auto* who = app.add_subcommand("whoami", "Show who the CLI's credential is and its roles");
  who->callback([run, &g] {
    *run = [&g] {
      return Call(g, "GET", "/api/v1/whoami", nullptr, [](const Json& j) {
        printf("%s (%s %s)\n", Cell(j["name"]).c_str(), Cell(j["kind"]).c_str(),
               Cell(j["id"]).c_str());
        std::vector<std::vector<std::string>> rows;
        for (const Json& r : j["roles"]) {
          rows.push_back({Cell(r["scope"]), Cell(r["scope_id"]), Cell(r["role"])});
        }
        PrintTable({"SCOPE", "SCOPE ID", "ROLE"}, rows);
      });
    };
  });

  auto* ws = app.add_subcommand("workspace", "Workspaces: named groups of deployments");
  ws->require_subcommand(1);
  auto* wc = ws->add_subcommand("create", "Create a workspace (platform owners)");
  wc->add_option("name", f->name, "Name (a-z, 0-9, '-', '_'; 1-64 characters)")->required();
  wc->add_option("--description", f->description, "Description");
  wc->callback([run, &g, f] {
    *run = [&g, f] {
      return Call(g, "POST", "/api/v1/workspaces",
                  {{"name", f->name}, {"description", f->description}}, PrintWorkspace);
    };
  });
  auto* wl = ws->add_subcommand("list", "List the workspaces you have a role on");
  wl->callback([run, &g] {
    *run = [&g] {
      return Call(g, "GET", "/api/v1/workspaces", nullptr, [](const Json& j) {
        std::vector<std::vector<std::string>> rows;
        for (const Json& w : j["workspaces"]) {
          rows.push_back({Cell(w["name"]), Cell(w["id"]), Cell(w["description"])});
        }
        PrintTable({"NAME", "ID", "DESCRIPTION"}, rows);
      });
    };
  });

  auto* tok = app.add_subcommand(
      "token",
      "API tokens: of the platform, a workspace (--workspace) or a deployment (--deployment)");
  tok->require_subcommand(1);
  auto* tc = tok->add_subcommand("create", "Make a token; it is printed this once");
  tc->add_option("name", f->name, "What it is for (1-100 characters)")->required();
  tc->add_option("--role", f->role,
                 "platform: owner|operator|viewer; workspace, deployment: admin|editor|viewer")
      ->required();
  tc->add_option("--description", f->description, "Description");
  tc->add_option("--expires-in", f->expires_in, "Seconds until it expires (1 to a year)");
  AddScopeFlags(tc, *f);
  tc->callback([run, &g, f] {
    *run = [&g, f] {
      Json body = {{"name", f->name}, {"role", f->role}, {"description", f->description}};
      if (f->expires_in) body["expires_in_seconds"] = *f->expires_in;
      return Call(g, "POST", TokensPath(*f), body, [](const Json& t) {
        PrintToken(t);
        printf("\n%s\n\nThe token is shown this once: keep it now.\n", Cell(t["token"]).c_str());
      });
    };
  });
  auto* tl = tok->add_subcommand("list", "List the tokens of a scope, revoked ones included");
  AddScopeFlags(tl, *f);
  tl->callback([run, &g, f] {
    *run = [&g, f] {
      return Call(g, "GET", TokensPath(*f), nullptr, [](const Json& j) {
        std::vector<std::vector<std::string>> rows;
        for (const Json& t : j["tokens"]) {
          rows.push_back({Cell(t["id"]), Cell(t["name"]), Cell(t["role"]), Cell(t["created_by"]),
                          Cell(t["expires_at"]), Cell(t["revoked_at"])});
        }
        PrintTable({"ID", "NAME", "ROLE", "CREATED BY", "EXPIRES", "REVOKED"}, rows);
      });
    };
  });
  auto* tr = tok->add_subcommand("revoke", "Revoke a token: it stops working within seconds");
  tr->add_option("id", f->id, "The token's id (from `tandem token list`)")->required();
  AddScopeFlags(tr, *f);
  tr->callback([run, &g, f] {
    *run = [&g, f] {
      return Call(g, "DELETE", TokensPath(*f) + "/" + PathEscape(f->id), nullptr, PrintToken);
    };
  });

  AddWorkerCredentialCommands(app, g, run, f);
  AddKeyCommands(app, g, run);
}

}  // namespace tandem::app
