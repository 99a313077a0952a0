// The cost of TLS on an authorized Airflow API call: two regions side by side on this machine,
// one serving plain HTTP and one HTTPS (the same binary, configuration and data otherwise),
// called in alternating batches with an owner's API token, so that the machine's noise falls on
// both alike. For each: GET of one variable through the deployment's Airflow API, on one
// kept-alive connection (what a client library does) and on a new connection per call (what
// curl in a loop does: a TLS handshake each time). Prints p50/p99 of each and the ratios.
#include <httplib.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "harness/region_harness.h"

namespace tandem::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Flags {
  int calls = 2000;  // per region and connection mode
  int batch = 100;   // calls in a row on one region before the other's turn
};

struct Side {
  std::string name;  // "http", "https"
  std::unique_ptr<testing::RegionProcess> region;
  std::vector<double> kept_ms, fresh_ms;
  std::unique_ptr<httplib::Client> kept;  // the kept-alive connection
};

std::unique_ptr<httplib::Client> NewClient(const testing::RegionProcess& r) {
  auto c = std::make_unique<httplib::Client>(r.url());
  if (r.url().starts_with("https://")) {
    c->enable_server_certificate_verification(true);
    c->set_ca_cert_path(r.ca_file());
  }
  c->set_bearer_token_auth(testing::OwnerToken());
  c->set_keep_alive(true);
  c->set_tcp_nodelay(true);  // as tandem's own clients
  c->set_connection_timeout(5);
  c->set_read_timeout(30);
  return c;
}

// One call's milliseconds, or an error.
Result<double> Call(httplib::Client& c, const std::string& path) {
  const auto t0 = Clock::now();
  auto r = c.Get(path);
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  if (!r) return Unavailable("no answer: " + httplib::to_string(r.error()));
  if (r->status != 200) return Internal("answered " + std::to_string(r->status) + ": " + r->body);
  return ms;
}

Status SetUp(Side& s, bool tls) {
  testing::RegionProcess::Options o;
  o.tls = tls;
  o.registry = false;
  o.extra_yaml = "workers:\n  local: 0\n";
  ASSIGN_OR_RETURN(s.region, testing::RegionProcess::Create(o));
  RETURN_IF_ERROR(s.region->Start());
  testing::HttpReply d = s.region->Call("POST", "/api/v1/deployments", R"({"name": "api"})");
  if (d.status != 201) return Internal("creating the deployment: " + d.body);
  testing::HttpReply v = s.region->Call("POST", "/deployments/api/api/v2/variables",
                                        R"({"key": "batch_size", "value": "500"})");
  if (v.status != 201 && v.status != 200) return Internal("setting the variable: " + v.body);
  s.kept = NewClient(*s.region);
  return Status::Ok();
}

Status Measure(Side& s, int n) {
  const std::string path = "/deployments/api/api/v2/variables/batch_size";
  // The region closes a connection idle for 2 s (the other side's batch may take longer): a
  // new kept-alive connection for each batch, opened by a call that is not counted.
  s.kept = NewClient(*s.region);
  RETURN_IF_ERROR(Call(*s.kept, path).status());
  for (int i = 0; i < n; ++i) {
    ASSIGN_OR_RETURN(double kept, Call(*s.kept, path));
    s.kept_ms.push_back(kept);
    auto fresh_client = NewClient(*s.region);
    fresh_client->set_keep_alive(false);
    ASSIGN_OR_RETURN(double fresh, Call(*fresh_client, path));
    s.fresh_ms.push_back(fresh);
  }
  return Status::Ok();
}

int Run(const Flags& f) {
  Side plain{"http"}, secure{"https"};
  for (auto [side, tls] : {std::pair{&plain, false}, std::pair{&secure, true}}) {
    if (Status st = SetUp(*side, tls); !st.ok()) {
      fprintf(stderr, "error: starting the %s region: %s\n", side->name.c_str(),
              st.ToString().c_str());
      return 1;
    }
  }
  // Warm-up: connections, caches, the token's check.
  for (Side* s : {&plain, &secure}) {
    if (Status st = Measure(*s, 50); !st.ok()) {
      fprintf(stderr, "error: %s: %s\n", s->name.c_str(), st.ToString().c_str());
      return 1;
    }
    s->kept_ms.clear();
    s->fresh_ms.clear();
  }
  for (int done = 0; done < f.calls; done += f.batch) {
    for (Side* s : {&plain, &secure}) {
      if (Status st = Measure(*s, std::min(f.batch, f.calls - done)); !st.ok()) {
        fprintf(stderr, "error: %s: %s\n", s->name.c_str(), st.ToString().c_str());
        return 1;
      }
    }
  }
  printf("authorized GET %s, %d calls each, alternating batches of %d\n",
         "/deployments/api/api/v2/variables/batch_size", f.calls, f.batch);
  printf("%-8s %-22s %10s %10s\n", "", "connection", "p50 ms", "p99 ms");
  for (Side* s : {&plain, &secure}) {
    printf("%-8s %-22s %10.3f %10.3f\n", s->name.c_str(), "kept alive", Median(s->kept_ms),
           Quantile(s->kept_ms, 0.99));
    printf("%-8s %-22s %10.3f %10.3f\n", s->name.c_str(), "new for each call", Median(s->fresh_ms),
           Quantile(s->fresh_ms, 0.99));
  }
  printf("https / http: kept alive p50 x%.2f, p99 x%.2f; new connection p50 x%.2f, p99 x%.2f\n",
         Median(secure.kept_ms) / Median(plain.kept_ms),
         Quantile(secure.kept_ms, 0.99) / Quantile(plain.kept_ms, 0.99),
         Median(secure.fresh_ms) / Median(plain.fresh_ms),
         Quantile(secure.fresh_ms, 0.99) / Quantile(plain.fresh_ms, 0.99));
  return 0;
}

}  // namespace
}  // namespace tandem::bench

int main(int argc, char** argv) {
  tandem::bench::Flags f;
  CLI::App app{"api_bench: the latency of an authorized Airflow API call, with and without TLS"};
  app.add_option("--calls", f.calls, "Calls per region and connection mode");
  app.add_option("--batch", f.batch, "Calls on one region before the other's turn");
  CLI11_PARSE(app, argc, argv);
  signal(SIGPIPE, SIG_IGN);  // a server closing a connection is an error to report, not a kill
  if (f.calls < 1 || f.batch < 1) {
    fprintf(stderr, "error: --calls and --batch must be at least 1\n");
    return 2;
  }
  return tandem::bench::Run(f);
}
