// The HTTP surface of a region: a small router over cpp-httplib, kept out of this header.
//
// Routes are registered per resource (one file each: deployments.cc, variables.cc, ...) with
// path patterns such as "/api/v1/deployments/{deployment}". A handler gets the matched path
// parameters and returns a Response; errors become responses in exactly one place
// (errors.cc). The server counts every request in the metrics registry.
//
// Every route is checked before its handler runs, in one place: the router gives each route
// the Need that auth::AccessFor names for it (a route the access table does not know cannot be
// registered), and asks the server's Authorizer whether the request's credential meets it.
// Only the routes of auth::kOpenRoutes skip the check; the Execution API and the pair's
// internal routes check credentials of their own.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <semaphore>
#include <string>
#include <vector>

#include "auth/policy.h"
#include "base/metrics.h"
#include "base/status.h"

namespace tandem::api {

struct Request {
  std::string method;
  std::string path;  // as sent, percent-encoded; the router decodes each segment
  std::map<std::string, std::string> params;      // from the route pattern
  std::multimap<std::string, std::string> query;  // decoded
  std::map<std::string, std::string> headers;     // lower-case names
  std::string body;
  std::string remote_address;  // the client's, for the audit trail and rate limits
  std::string route;           // the pattern of the route it matched; "" when none did
  // Who sent it, once the router's check passed; null on open, worker and pair routes.
  std::shared_ptr<const auth::Principal> principal;
  auth::Need need = auth::Need::kOpen;  // what its route needs

  // The first value of a query parameter, if present.
  const std::string* Query(const std::string& name) const;
};

struct Response {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // more headers to send
};

using Handler = std::function<Response(const Request&)>;

// Decides whether a request may run: authenticates its credential — setting req.principal once
// it is known, so that a refusal is told by whom — and checks that the principal meets `need`
// where the request acts (its deployment, its workspace). OK, or Unauthenticated (401) /
// PermissionDenied (403).
using Authorizer = std::function<Status(Request& req, auth::Need need)>;

class Router {
 public:
  // Registers a route with the Need auth::AccessFor gives it. A route the access table does not
  // know is a programming error: it aborts, naming the route, so it is found by the first test
  // that starts the server.
  void Add(const std::string& method, const std::string& pattern, Handler h);
  // The server's check for every route that needs a principal. Without one, such routes answer
  // 401: a server nobody configured to check does not serve them.
  void set_authorizer(Authorizer a) { authorize_ = std::move(a); }
  // Runs at most `n` requests of users' routes (any route that needs a principal) at once; one
  // more waits up to `wait` for its turn, then is answered 503 with Retry-After. The Execution
  // API, the pair's routes and the open ones are not counted: a region's own work — claims,
  // heartbeats, leases, health checks — never queues behind its users' (each user request
  // needs one of the few database connections, and many at once only contend for them and for
  // the CPU). Unset: no limit. Call before the server starts.
  void set_user_limit(int n, std::chrono::milliseconds wait);
  // 404 when no pattern matches the path, 405 when the path matches for other methods only,
  // 401/403 when the check refuses.
  Response Dispatch(Request& req) const;

  struct RouteInfo {
    std::string method;
    std::string pattern;
    auth::Need need;
  };
  // Every route registered, in order: what the test that sweeps them reads.
  std::vector<RouteInfo> Routes() const;

 private:
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<std::string> parts;  // "{name}" parts capture
    auth::Need need;
    Handler handler;
  };
  std::vector<Route> routes_;
  Authorizer authorize_;
  std::unique_ptr<std::counting_semaphore<>> user_slots_;  // set by set_user_limit
  std::chrono::milliseconds user_wait_{0};
};

struct ServerOptions {
  std::string address;
  int port = 0;
  int threads = 8;  // connections served at once, each on a thread started for it
  size_t max_body_bytes = 4 << 20;
  // Selects by the Host header: given the host (port removed, lower case), the path prefix
  // to serve the request under ("/deployments/<id>"), "" to serve it as it is, or an error
  // that becomes the response.
  std::function<Result<std::string>(const std::string& host)> host_prefix;
  // Decides, after host_prefix, whether a request may run now: an error becomes the response
  // (a standby refusing writes: 503); a value is held until the handler returns (a write in
  // flight that a step-down waits for). Unset: every request runs.
  std::function<Result<std::shared_ptr<void>>(const Request& req)> admit;
  // Called with every routed request and its answer, before the answer is sent (the audit
  // trail). Unset: nothing.
  std::function<void(const Request& req, const Response& res)> after;
  // PEM files to serve HTTPS with (tls::CheckServerFiles has passed on them); both empty: plain
  // HTTP.
  std::string tls_cert_file;
  std::string tls_key_file;
};

// Serves a Router, each connection on a thread of its own for as long as the client keeps it,
// up to `threads` at once (more wait); Start() returns once the socket is bound.
class HttpServer {
 public:
  static Result<std::unique_ptr<HttpServer>> Start(const ServerOptions& o, const Router* router,
                                                   MetricsRegistry* metrics);
  ~HttpServer();
  void Stop();
  int port() const { return port_; }

 private:
  HttpServer() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
  int listening_fd_ = -1;  // the listening socket httplib made (set while it binds)
};

}  // namespace tandem::api
