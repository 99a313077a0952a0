#include "rpc/client.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>

#include <nlohmann/json.hpp>
#include <optional>

#include "crypto/secret_box.h"
#include "crypto/token.h"
#include "tls/http_client.h"

namespace tandem::rpc {

Client::Client(std::string base_url, std::string bearer, Duration timeout,
               std::string source_address, tls::Trust trust)
    : base_(std::move(base_url)),
      bearer_(std::move(bearer)),
      timeout_(timeout),
      source_(std::move(source_address)),
      trust_(std::move(trust)) {
  std::string rest = base_;
  if (rest.rfind("http://", 0) == 0) rest = rest.substr(7);
  if (rest.rfind("https://", 0) == 0) {
    rest = rest.substr(8);
    https_ = true;
  }
  size_t colon = rest.rfind(':');
  host_ = rest.substr(0, colon);
  port_ = colon == std::string::npos ? (https_ ? 443 : 80) : std::atoi(rest.c_str() + colon + 1);
}

struct Client::Connection {
  std::unique_ptr<httplib::Client> http;
  std::chrono::steady_clock::time_point last_used;
};

Client::~Client() = default;

std::unique_ptr<Client::Connection> Client::Take() const {
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mu_);
    while (!idle_.empty()) {
      std::unique_ptr<Connection> c = std::move(idle_.back());
      idle_.pop_back();
      if (now - c->last_used <= kReuseIdle) return c;
    }
  }
  auto c = std::make_unique<Connection>();
  c->http = tls::NewHttpClient(https_, host_, port_, trust_);
  httplib::Client& cli = *c->http;
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(timeout_).count();
  time_t sec = static_cast<time_t>(us / 1000000);
  time_t usec = static_cast<time_t>(us % 1000000);
  cli.set_connection_timeout(sec, usec);
  cli.set_read_timeout(sec, usec);
  cli.set_write_timeout(sec, usec);
  cli.set_keep_alive(true);
  if (!source_.empty()) {
    in_addr src{};
    if (inet_pton(AF_INET, source_.c_str(), &src) == 1) {
      cli.set_socket_options([src](socket_t sock) {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr = src;
        a.sin_port = 0;
        // Best effort: a failed bind leaves the kernel's choice of source address.
        (void)bind(sock, reinterpret_cast<const sockaddr*>(&a), sizeof a);
      });
    }
  }
  return c;
}

void Client::GiveBack(std::unique_ptr<Connection> c) const {
  constexpr size_t kMaxIdle = 4;
  c->last_used = std::chrono::steady_clock::now();
  std::lock_guard lock(mu_);
  if (idle_.size() < kMaxIdle) idle_.push_back(std::move(c));
}

Result<Reply> Client::Call(const std::string& method, const std::string& path,
                           const std::string& body) const {
  std::unique_ptr<Connection> conn = Take();
  httplib::Client& cli = *conn->http;
  httplib::Headers h;
  if (!bearer_.empty()) h.emplace("Authorization", "Bearer " + bearer_);
  auto send = [&]() -> std::optional<httplib::Result> {
    if (method == "GET") return cli.Get(path, h);
    if (method == "POST") return cli.Post(path, h, body, "application/json");
    if (method == "PUT") return cli.Put(path, h, body, "application/json");
    if (method == "DELETE") return cli.Delete(path, h, body, "application/json");
    return std::nullopt;
  };
  std::optional<httplib::Result> sent = send();
  if (!sent) return InvalidArgument("unsupported method " + method);
  httplib::Result& r = *sent;
  if (!r) {
    return Unavailable(base_ + " did not answer " + method + " " + path + ": " +
                       tls::DescribeError(cli, r.error(), trust_));
  }
  Reply reply{r->status, r->body};
  // A peer that closes after answering (Connection: close) leaves nothing worth keeping.
  if (r->get_header_value("Connection") != "close") GiveBack(std::move(conn));
  return reply;
}

Result<std::string> Client::CallOk(const std::string& method, const std::string& path,
                                   const std::string& body) const {
  ASSIGN_OR_RETURN(Reply r, Call(method, path, body));
  if (r.status >= 200 && r.status < 300) return r.body;
  std::string detail = r.body;
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("detail") && j["detail"].is_string()) {
    detail = j["detail"].get<std::string>();
  }
  Code code = Code::kInternal;
  switch (r.status) {
    case 400:
    case 409:
      code = Code::kFailedPrecondition;
      break;
    case 401:
      code = Code::kUnauthenticated;
      break;
    case 403:
      code = Code::kPermissionDenied;
      break;
    case 404:
      code = Code::kNotFound;
      break;
    case 422:
      code = Code::kInvalidArgument;
      break;
    case 421:
      code = Code::kMisdirected;
      break;
    case 503:
      code = Code::kUnavailable;
      break;
    default:
      break;
  }
  return Status(code, detail);
}

Result<std::string> InternalCredential(const std::string& secret_key_base64) {
  auto box = SecretBox::FromBase64(secret_key_base64);
  if (!box.ok()) return InvalidArgument("bad secret key: " + box.status().message());
  return Sha256Hex(box->DeriveKey("tandem pair internal credential v1"));
}

}  // namespace tandem::rpc
