// `tandem whoami`, `tandem workspace create|list|get` and `tandem token create|list|revoke`:
// who the CLI's credential is, and the workspaces and API tokens that say who may do what
// (docs/security.md).
#include <CLI/CLI.hpp>
#include <memory>
#include <optional>

#include "app/call.h"

namespace tandem::app {
namespace {

struct AccessFlags {
  std::string name, description, role, id, workspace, deployment;
  std::optional<int64_t> expires_in;
};

// Where a token command acts: the deployment's tokens, the workspace's, or the platform's.
std::string TokensPath(const AccessFlags& f) {
  if (!f.deployment.empty()) return "/api/v1/deployments/" + PathEscape(f.deployment) + "/tokens";
  if (!f.workspace.empty()) return "/api/v1/workspaces/" + PathEscape(f.workspace) + "/tokens";
  return "/api/v1/tokens";
}

void AddScopeFlags(CLI::App* c, AccessFlags& f) {
  auto* d = c->add_option("--deployment", f.deployment, "A deployment's tokens (name or id)");
  auto* w = c->add_option("--workspace", f.workspace, "A workspace's tokens (name or id)");
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
}

}  // namespace tandem::app
