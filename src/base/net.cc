#include "base/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <set>

namespace tandem {
namespace {

Result<sockaddr_in> Addr(const std::string& host, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) {
    return InvalidArgument("not an IPv4 address: " + host);
  }
  return a;
}

}  // namespace

Result<int> PickFreePort(const std::string& host) {
  // Ports the kernel hands out for outgoing connections (ip_local_port_range) can be taken by
  // any client socket between this pick and the caller's bind — a base backup's connection did
  // exactly that — so pick below that range, at random, skipping ports bound right now and
  // ports this process has handed out already.
  static std::mutex mu;
  static std::set<int> handed_out;
  static std::mt19937 rng(std::random_device{}());
  int low = 32768;
  {
    std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
    int lo = 0, hi = 0;
    if (in >> lo >> hi && lo > 0) low = lo;
  }
  constexpr int kFirst = 10000;
  std::lock_guard lock(mu);
  if (low - kFirst > 1000) {
    std::uniform_int_distribution<int> pick(kFirst, low - 1);
    for (int attempt = 0; attempt < 200; ++attempt) {
      int port = pick(rng);
      if (handed_out.count(port) != 0) continue;
      if (!CheckPortFree(host, port).ok()) continue;
      handed_out.insert(port);
      return port;
    }
  }
  // No room below the ephemeral range: fall back to one the kernel picks.
  ASSIGN_OR_RETURN(sockaddr_in a, Addr(host, 0));
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Internal(std::string("socket: ") + strerror(errno));
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return Unavailable("cannot bind " + host + ": " + strerror(errno));
  }
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  int port = static_cast<int>(ntohs(a.sin_port));
  handed_out.insert(port);
  return port;
}

Status CheckPortFree(const std::string& host, int port) {
  ASSIGN_OR_RETURN(sockaddr_in a, Addr(host, port));
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Internal(std::string("socket: ") + strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int r = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  int e = errno;
  close(fd);
  if (r != 0) {
    if (e == EADDRINUSE) {
      return Unavailable(host + ":" + std::to_string(port) + " is already in use");
    }
    return Unavailable("cannot bind " + host + ":" + std::to_string(port) + ": " + strerror(e));
  }
  return Status::Ok();
}

bool CanConnect(const std::string& host, int port, int timeout_ms) {
  auto a = Addr(host, port);
  if (!a.ok()) return false;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return false;
  int r = connect(fd, reinterpret_cast<const sockaddr*>(&*a), sizeof(sockaddr_in));
  bool ok = r == 0;
  if (r != 0 && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, timeout_ms) == 1) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      ok = err == 0;
    }
  }
  close(fd);
  return ok;
}

bool IsLoopback(const std::string& address) { return address.rfind("127.", 0) == 0; }

}  // namespace tandem
