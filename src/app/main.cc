// tandem: one binary for the region agent, the local platform and the CLI.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdlib>

#include "app/commands.h"
#include "base/fs.h"

int main(int argc, char** argv) {
  using namespace tandem::app;
  // A peer that closed its connection is an error on that call, never the end of the process:
  // OpenSSL writes to TLS sockets with write(2), which raises SIGPIPE (plain sockets are written
  // with MSG_NOSIGNAL). Children get the default back (base/process.cc).
  signal(SIGPIPE, SIG_IGN);

  CLI::App app{"tandem: workflow orchestration whose deployments survive the loss of a region"};
  app.require_subcommand(1);
  app.fallthrough();  // global options may follow the subcommand: `tandem up --state-dir DIR`
  app.set_help_all_flag("--help-all", "Show help for every command");
  Globals g;
  const char* env_dir = std::getenv("TANDEM_STATE_DIR");
  g.target.state_dir = env_dir && *env_dir ? env_dir : "./.tandem";
  if (const char* url = std::getenv("TANDEM_URL")) g.target.url = url;
  if (const char* url = std::getenv("TANDEM_CONTROL_URL")) g.target.control_url = url;
  if (const char* dns = std::getenv("TANDEM_DNS")) g.target.dns_server = dns;
  if (const char* f = std::getenv("TANDEM_TOKEN_FILE")) g.target.token_file = f;
  if (const char* f = std::getenv("TANDEM_CA_FILE")) g.target.ca_file = f;
  app.add_option("--state-dir", g.target.state_dir,
                 "State directory of the platform (env TANDEM_STATE_DIR; default ./.tandem)");
  app.add_option("--url", g.target.url, "Talk to the region at this URL (env TANDEM_URL)");
  app.add_option("--control", g.target.control_url,
                 "Talk to the control plane at this URL (env TANDEM_CONTROL_URL)");
  app.add_option("--dns", g.target.dns_server,
                 "ADDRESS:PORT of the pair's DNS server: host names in --url, --control and a "
                 "worker's --api are looked up there and followed through a failover (env "
                 "TANDEM_DNS)");
  app.add_option("--token-file", g.target.token_file,
                 "A file holding the API token to send (env TANDEM_TOKEN_FILE; else env "
                 "TANDEM_TOKEN; else `tandem login`'s <state-dir>/session; else the platform "
                 "owner's, <state-dir>/credential)");
  app.add_option("--ca-file", g.target.ca_file,
                 "The CA (PEM) that the platform's HTTPS certificates must chain to (env "
                 "TANDEM_CA_FILE; else <state-dir>/tls/ca.crt, which `tandem up` writes, when it "
                 "exists; else the system's CAs)");
  app.add_option("-o,--output", g.output, "Output format")->check(CLI::IsMember({"table", "json"}));

  Run run;
  AddServerCommands(app, g, &run);
  AddDeploymentCommands(app, g, &run);
  AddResourceCommands(app, g, &run);
  AddWorkerCommands(app, g, &run);
  AddPipelineCommands(app, g, &run);
  AddDrCommands(app, g, &run);
  AddAccessCommands(app, g, &run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  g.target.state_dir = tandem::AbsolutePath(g.target.state_dir);
  return run ? run() : 2;
}
