#include "logs/tests/fake_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tandem::logs::test {
namespace {

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.pop_back();
  size_t i = s.find_first_not_of(" \t");
  return i == std::string::npos ? "" : s.substr(i);
}

// Reads more into `buf`; false on EOF, error, or 5 s of silence.
bool ReadMore(int conn, std::string* buf) {
  pollfd p{conn, POLLIN, 0};
  if (poll(&p, 1, 5000) <= 0) return false;
  char tmp[65536];
  ssize_t n = read(conn, tmp, sizeof(tmp));
  if (n <= 0) return false;
  buf->append(tmp, static_cast<size_t>(n));
  return true;
}

void WriteAll(int conn, const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    ssize_t n = write(conn, s.data() + done, s.size() - done);
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

}  // namespace

Result<std::unique_ptr<FakeHttpServer>> FakeHttpServer::Start(Handler handler) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Internal(std::string("socket: ") + strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 16) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int err = errno;
    close(fd);
    return Internal(std::string("cannot listen on loopback: ") + strerror(err));
  }
  return std::unique_ptr<FakeHttpServer>(
      new FakeHttpServer(fd, ntohs(addr.sin_port), std::move(handler)));
}

FakeHttpServer::FakeHttpServer(int fd, int port, Handler handler)
    : fd_(fd), port_(port), handler_(std::move(handler)) {
  thread_ = std::thread([this] { Serve(); });
}

FakeHttpServer::~FakeHttpServer() {
  stop_ = true;
  thread_.join();
  close(fd_);
}

std::vector<RawRequest> FakeHttpServer::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

void FakeHttpServer::Serve() {
  while (!stop_) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    int conn = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) continue;
    ServeOne(conn);
    close(conn);
  }
}

void FakeHttpServer::ServeOne(int conn) {
  std::string buf;
  size_t head_end;
  while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
    if (!ReadMore(conn, &buf)) return;
  }
  RawRequest req;
  std::string head = buf.substr(0, head_end);
  buf.erase(0, head_end + 4);
  size_t line_end = head.find("\r\n");
  std::string line = head.substr(0, line_end);
  size_t sp1 = line.find(' ');
  size_t sp2 = line.rfind(' ');
  if (sp1 == std::string::npos || sp2 <= sp1) return;
  req.method = line.substr(0, sp1);
  req.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
  while (pos < head.size()) {
    size_t next = head.find("\r\n", pos);
    if (next == std::string::npos) next = head.size();
    std::string h = head.substr(pos, next - pos);
    size_t colon = h.find(':');
    if (colon != std::string::npos) {
      std::string name = h.substr(0, colon);
      for (char& c : name) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
      // Repeated headers are joined, as servers do; a header sent twice shows.
      std::string& value = req.headers[name];
      value += (value.empty() ? "" : ", ") + Trim(h.substr(colon + 1));
    }
    pos = next + 2;
  }
  if (req.Header("expect") == "100-continue") WriteAll(conn, "HTTP/1.1 100 Continue\r\n\r\n");
  size_t want = req.Header("content-length").empty()
                    ? 0
                    : static_cast<size_t>(std::stoull(req.Header("content-length")));
  while (buf.size() < want) {
    if (!ReadMore(conn, &buf)) return;
  }
  req.body = buf.substr(0, want);
  CannedResponse resp = handler_(req);
  {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(req);
  }
  std::string out = "HTTP/1.1 " + std::to_string(resp.status) + " Canned\r\nContent-Length: " +
                    std::to_string(resp.body.size()) + "\r\nConnection: close\r\n\r\n";
  if (req.method != "HEAD") out += resp.body;
  WriteAll(conn, out);
}

}  // namespace tandem::logs::test
