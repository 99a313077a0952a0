#include "base/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>

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
  return static_cast<int>(ntohs(a.sin_port));
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

}  // namespace tandem
