#include "api/http.h"

#include <fcntl.h>
#include <httplib.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "api/errors.h"
#include "base/net.h"
#include "base/text.h"
#include "base/thread_pool.h"

namespace tandem::api {

const std::string* Request::Query(const std::string& name) const {
  auto it = query.find(name);
  return it == query.end() ? nullptr : &it->second;
}

void Router::Add(const std::string& method, const std::string& pattern, Handler h) {
  Result<auth::RouteAccess> access = auth::AccessFor(method, pattern);
  if (!access.ok()) {
    spdlog::critical("{}", access.status().message());
    std::abort();
  }
  routes_.push_back({method, pattern, SplitNonEmpty(pattern, '/'), access->need, std::move(h)});
}

void Router::set_user_limit(int n, std::chrono::milliseconds wait) {
  user_slots_ = std::make_unique<std::counting_semaphore<>>(std::max(1, n));
  user_wait_ = wait;
}

std::vector<Router::RouteInfo> Router::Routes() const {
  std::vector<RouteInfo> out;
  for (const Route& r : routes_) out.push_back({r.method, r.pattern, r.need});
  return out;
}

Response Router::Dispatch(Request& req) const {
  std::vector<std::string> parts = SplitNonEmpty(req.path, '/');
  bool path_matched = false;
  // `req.path` is as sent (percent-encoded): split first, then decode each segment once, so
  // a key holding '/' or '%' travels as %2F or %25 and arrives whole.
  for (std::string& part : parts) part = httplib::detail::decode_url(part, false);
  for (const Route& r : routes_) {
    if (r.parts.size() != parts.size()) continue;
    std::map<std::string, std::string> params;
    bool ok = true;
    for (size_t i = 0; i < parts.size() && ok; ++i) {
      const std::string& p = r.parts[i];
      if (p.size() > 2 && p.front() == '{' && p.back() == '}') {
        params[p.substr(1, p.size() - 2)] = parts[i];
      } else {
        ok = p == parts[i];
      }
    }
    if (!ok) continue;
    path_matched = true;
    if (r.method != req.method) continue;
    req.params = std::move(params);
    req.need = r.need;
    req.route = r.pattern;
    const bool user_route =
        r.need != auth::Need::kOpen && r.need != auth::Need::kWorker && r.need != auth::Need::kPair;
    if (user_route) {
      Status allowed = authorize_ ? authorize_(req, r.need)
                                  : Unauthenticated("this server checks no credentials");
      if (!allowed.ok()) {
        Response refused = ErrorResponse(allowed);
        if (refused.status == 401) {
          refused.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"tandem\"");
        }
        return refused;
      }
    }
    if (!user_route || !user_slots_) return r.handler(req);
    if (!user_slots_->try_acquire_for(user_wait_)) {
      Response busy = ErrorResponse(503,
                                    "the region is serving as many requests as it can at once; "
                                    "retry in a moment");
      busy.headers.emplace_back("Retry-After", "1");
      return busy;
    }
    struct Release {
      std::counting_semaphore<>* slots;
      ~Release() { slots->release(); }
    } release{user_slots_.get()};
    return r.handler(req);
  }
  if (path_matched) return ErrorResponse(405, "Method Not Allowed");
  return ErrorResponse(404, "Not Found");
}

// How many connections the kernel holds for the server before it accepts them.
constexpr int kListenBacklog = 1024;

// How long a server thread with no connection to serve waits for one before it ends.
constexpr std::chrono::seconds kIdleThread{30};

// httplib runs each connection as one job, for as long as the client keeps it: an elastic
// pool, so clients that keep busy connections do not starve the rest (base/thread_pool.h).
class ElasticTaskQueue final : public httplib::TaskQueue {
 public:
  explicit ElasticTaskQueue(size_t max_threads) : pool_(max_threads, kIdleThread) {}
  void enqueue(std::function<void()> fn) override { pool_.Submit(std::move(fn)); }
  void shutdown() override { pool_.Shutdown(); }

 private:
  ElasticThreadPool pool_;
};

struct HttpServer::Impl {
  std::unique_ptr<httplib::Server> server;  // an httplib::SSLServer when serving HTTPS
  std::thread thread;
};

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const ServerOptions& o, const Router* router,
                                                      MetricsRegistry* metrics) {
  std::unique_ptr<HttpServer> s(new HttpServer());
  s->impl_ = std::make_unique<Impl>();
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
    return InvalidArgument("HTTPS needs both a certificate and a key file");
  }
  if (o.tls_cert_file.empty()) {
    s->impl_->server = std::make_unique<httplib::Server>();
  } else {
    auto ssl =
        std::make_unique<httplib::SSLServer>(o.tls_cert_file.c_str(), o.tls_key_file.c_str());
    if (!ssl->is_valid()) {
      return InvalidArgument("cannot serve HTTPS with " + o.tls_cert_file + " and " +
                             o.tls_key_file + " (OpenSSL could not load them)");
    }
    // TLS 1.2 at least; OpenSSL's defaults choose the rest.
    SSL_CTX_set_min_proto_version(ssl->ssl_context(), TLS1_2_VERSION);
    s->impl_->server = std::move(ssl);
  }
  httplib::Server& srv = *s->impl_->server;
  auto threads = static_cast<size_t>(o.threads);
  srv.new_task_queue = [threads] { return new ElasticTaskQueue(threads); };
  srv.set_payload_max_length(o.max_body_bytes);
  srv.set_keep_alive_max_count(1000);
  srv.set_keep_alive_timeout(2);  // an idle client does not hold a thread long
  // An answer goes out in more than one write (headers, body): with Nagle's algorithm the
  // second waited for the client's delayed ACK, adding 40 ms to every call on a kept-alive
  // connection (api_bench measured 42 ms against 2 ms on a new one).
  srv.set_tcp_nodelay(true);
  srv.set_read_timeout(10);
  // httplib bounds a body only by its Content-Length: a chunked body, or one without a length,
  // would be read whole into memory. Refuse those before the body is read.
  srv.set_pre_routing_handler([metrics](const httplib::Request& req, httplib::Response& res) {
    bool chunked = req.has_header("Transfer-Encoding");
    bool has_body = req.method == "POST" || req.method == "PUT" || req.method == "PATCH";
    if (!chunked && !(has_body && !req.has_header("Content-Length"))) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    Response r = chunked ? ErrorResponse(411,
                                         "chunked request bodies are not accepted: send "
                                         "Content-Length")
                         : ErrorResponse(411, "a request body needs a Content-Length header");
    res.status = r.status;
    res.set_content(r.body, r.content_type);
    metrics->Add("tandem_http_requests_total",
                 {{"method", req.method}, {"code", std::to_string(r.status)}}, 1);
    return httplib::Server::HandlerResponse::Handled;
  });
  // SO_REUSEADDR (not httplib's default SO_REUSEPORT, which would let a second server bind the
  // same port silently), and close-on-exec so processes we spawn do not inherit the socket.
  srv.set_socket_options([listening = &s->listening_fd_](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    fcntl(sock, F_SETFD, FD_CLOEXEC);
    *listening = sock;
  });
  metrics->Describe("tandem_http_requests_total", "counter", "HTTP requests served, by status.");
  metrics->Describe("tandem_http_request_seconds_total", "counter",
                    "Time spent serving HTTP requests.");

  auto handle = [router, metrics, host_prefix = o.host_prefix, admit = o.admit, after = o.after](
                    const httplib::Request& hreq, httplib::Response& hres) {
    auto start = std::chrono::steady_clock::now();
    Request req;
    req.method = hreq.method;
    req.path = hreq.target.substr(0, hreq.target.find('?'));  // still percent-encoded
    req.body = hreq.body;
    req.remote_address = hreq.remote_addr;
    for (const auto& [k, v] : hreq.params) req.query.emplace(k, v);
    for (const auto& [k, v] : hreq.headers) {
      std::string lk = k;
      for (char& c : lk) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
      req.headers[lk] = v;
    }
    Response res;
    Result<std::string> prefix = std::string();
    if (host_prefix) {
      std::string host = req.headers.count("host") ? req.headers["host"] : "";
      if (size_t colon = host.rfind(':'); colon != std::string::npos) host.resize(colon);
      for (char& c : host) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
      prefix = host_prefix(host);
    }
    if (!prefix.ok()) {
      res = ErrorResponse(prefix.status());
    } else {
      req.path = *prefix + req.path;
      Result<std::shared_ptr<void>> admitted = std::shared_ptr<void>();
      if (admit) admitted = admit(req);
      res = admitted.ok() ? router->Dispatch(req) : ErrorResponse(admitted.status());
    }
    if (after) after(req, res);
    hres.status = res.status;
    for (const auto& [k, v] : res.headers) hres.set_header(k, v);
    hres.set_content(res.body, res.content_type);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    metrics->Add("tandem_http_requests_total",
                 {{"method", req.method}, {"code", std::to_string(res.status)}}, 1);
    metrics->Add("tandem_http_request_seconds_total", {}, secs);
    spdlog::debug("{} {} -> {} ({:.1f} ms)", req.method, req.path, res.status, secs * 1000);
  };
  for (const char* m : {"GET", "POST", "PUT", "PATCH", "DELETE"}) {
    std::string method = m;
    auto fn = [handle](const httplib::Request& q, httplib::Response& r) { handle(q, r); };
    if (method == "GET") srv.Get(".*", fn);
    if (method == "POST") srv.Post(".*", fn);
    if (method == "PUT") srv.Put(".*", fn);
    if (method == "PATCH") srv.Patch(".*", fn);
    if (method == "DELETE") srv.Delete(".*", fn);
  }
  // Errors httplib answers itself (body too large, bad request line): same JSON shape.
  srv.set_error_handler([metrics](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    metrics->Add("tandem_http_requests_total",
                 {{"method", req.method}, {"code", std::to_string(res.status)}}, 1);
    std::string detail = res.status == 413   ? "request body is larger than the region accepts"
                         : res.status == 400 ? "malformed HTTP request"
                                             : "HTTP error " + std::to_string(res.status);
    Response r = ErrorResponse(res.status, detail);
    res.set_content(r.body, r.content_type);
  });
  srv.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unexpected error";
        try {
          std::rethrow_exception(std::move(ep));
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        spdlog::error("handler threw: {}", what);
        Response r = ErrorResponse(Internal(what));
        res.status = r.status;
        res.set_content(r.body, r.content_type);
      });

  RETURN_IF_ERROR(CheckPortFree(o.address, o.port));
  if (o.port == 0) {
    s->port_ = srv.bind_to_any_port(o.address);
  } else {
    s->port_ = srv.bind_to_port(o.address, o.port) ? o.port : -1;
  }
  if (s->port_ <= 0) {
    return Unavailable("cannot listen on " + o.address + ":" + std::to_string(o.port));
  }
  // httplib (Debian's is a compiled library) listens with a backlog of 5. When a region becomes
  // active, every client — each deployment's users, the workers, the peer — connects at once:
  // the kernel dropped the connections beyond five, and each of those clients waited out TCP's
  // one-second retransmission (the failover benchmark saw triggers answered after 1.05 and
  // 2.11 s). Listening again on the bound socket only raises the backlog (Linux caps it at
  // net.core.somaxconn).
  if (s->listening_fd_ >= 0 && ::listen(s->listening_fd_, kListenBacklog) != 0) {
    spdlog::warn("the HTTP server on {}:{} keeps httplib's listen backlog of 5: {}", o.address,
                 s->port_, std::strerror(errno));
  }
  s->impl_->thread = std::thread([&srv] { srv.listen_after_bind(); });
  // httplib's stop() does nothing until the listening thread has started: wait for it, so a
  // Stop() right after Start() cannot hang.
  for (int i = 0; i < 5000 && !srv.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!srv.is_running()) {
    srv.stop();
    s->impl_->thread.join();
    return Internal("the HTTP server did not start listening");
  }
  return s;
}

void HttpServer::Stop() {
  if (!impl_) return;
  impl_->server->stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

HttpServer::~HttpServer() { Stop(); }

}  // namespace tandem::api
