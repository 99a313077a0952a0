// The CLI's subcommands, one file per group. Each Add* registers its subcommands on `app` and
// sets *run to the function that runs the chosen one (returning the process exit code).
#pragma once

#include <functional>
#include <string>

#include "app/client.h"
#include "app/output.h"

namespace CLI {
class App;
}

namespace tandem::app {

struct Globals {
  Target target;
  std::string output = "table";
  // How long a command waits for the region's answer; a deploy waits longer (the region may
  // wait up to the pair's image_replication_timeout_seconds for the standby's registry).
  int read_timeout_seconds = 60;
  Format format() const { return output == "json" ? Format::kJson : Format::kTable; }
};

using Run = std::function<int()>;

void AddServerCommands(CLI::App& app, Globals& g, Run* run);      // region, up, secret-key
void AddDeploymentCommands(CLI::App& app, Globals& g, Run* run);  // deployment
void AddResourceCommands(CLI::App& app, Globals& g, Run* run);    // env, conn, var, pool
void AddWorkerCommands(CLI::App& app, Globals& g, Run* run);      // worker
void AddPipelineCommands(CLI::App& app, Globals& g, Run* run);    // deploy, dags, runs, tasks
void AddDrCommands(CLI::App& app, Globals& g, Run* run);          // dr, control
void AddAccessCommands(CLI::App& app, Globals& g, Run* run);      // whoami, workspace, token, keys

}  // namespace tandem::app
