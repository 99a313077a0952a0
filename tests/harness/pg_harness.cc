#include "harness/pg_harness.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "base/fs.h"
#include "base/net.h"
#include "base/process.h"
#include "pg/conn.h"

namespace tandem::testing {

std::string RunAsUser() { return RunningAsRoot() ? "tandem" : ""; }

PgHarness& PgHarness::Get() {
  static PgHarness* h = [] {
    auto* p = new PgHarness();
    auto dir = TempDir::Create("tandem-test-pg");
    if (!dir.ok()) {
      fprintf(stderr, "%s\n", dir.status().ToString().c_str());
      abort();
    }
    p->dir_ = AbsolutePath(dir->Release());  // Shutdown removes it
    chmod(p->dir_.c_str(), 0755);  // the run-as user must reach its data directory
    auto port = PickFreePort();
    if (!port.ok()) abort();
    p->port_ = *port;
    pg::LocalServerOptions o;
    o.data_dir = p->dir_ + "/pg/data";
    o.port = p->port_;
    o.run_as = RunAsUser();
    o.shared_buffers = "16MB";
    auto server = pg::NewLocalServer(o);
    if (!server.ok()) abort();
    p->server_ = std::move(server).value();
    Status s = p->server_->Init();
    if (s.ok()) s = p->server_->Start(std::chrono::seconds(60));
    if (!s.ok()) {
      fprintf(stderr, "test PostgreSQL did not start: %s\n", s.ToString().c_str());
      abort();
    }
    std::atexit([] { PgHarness::Get().Shutdown(); });
    return p;
  }();
  return *h;
}

std::string PgHarness::NewDatabase() {
  std::string name = "t" + std::to_string(getpid()) + "_" + std::to_string(next_db_++);
  auto conn = pg::Conn::Connect(server_->Dsn("postgres"));
  if (!conn.ok()) {
    ADD_FAILURE() << conn.status().ToString();
    return "";
  }
  Status s = (*conn)->ExecScript("CREATE DATABASE " + name);
  if (!s.ok()) ADD_FAILURE() << s.ToString();
  return server_->Dsn(name);
}

void PgHarness::Shutdown() {
  if (server_) (void)server_->Stop();
  server_.reset();
  if (!dir_.empty()) (void)RemoveAll(dir_);
  dir_.clear();
}

}  // namespace tandem::testing
