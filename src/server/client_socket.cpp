#include "server/client_socket.h"

#include <dirent.h>
#include <httplib.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>
#include <string>

namespace rf::server {
namespace {

// The numeric host and the port of a socket address (the form httplib puts into Request::remote_addr).
bool host_and_port(const sockaddr_storage& addr, socklen_t len, std::string* host, int* port) {
  char buf[NI_MAXHOST];
  char serv[NI_MAXSERV];
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&addr), len, buf, sizeof buf, serv, sizeof serv,
                  NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return false;
  }
  *host = buf;
  *port = std::atoi(serv);
  return true;
}

}  // namespace

int find_connected_socket(const std::string& remote_addr, int remote_port, int local_port) {
  if (remote_port <= 0 || local_port <= 0) return -1;
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return -1;
  int found = -1;
  const int own = dirfd(dir);
  while (const dirent* e = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == own) continue;
    sockaddr_storage local{}, peer{};
    socklen_t local_len = sizeof local, peer_len = sizeof peer;
    if (getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&local), &local_len) != 0) continue;
    if (local.ss_family != AF_INET && local.ss_family != AF_INET6) continue;
    if (getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) continue;
    std::string lhost, phost;
    int lport = 0, pport = 0;
    if (!host_and_port(local, local_len, &lhost, &lport) || !host_and_port(peer, peer_len, &phost, &pport)) continue;
    if (lport == local_port && pport == remote_port && phost == remote_addr) {
      found = static_cast<int>(fd);
      break;
    }
  }
  closedir(dir);
  return found;
}

bool peer_closed(int fd) {
  pollfd p{fd, POLLIN | POLLRDHUP, 0};
  const int n = poll(&p, 1, 0);
  if (n <= 0) return false;
  if (p.revents & (POLLERR | POLLHUP | POLLRDHUP | POLLNVAL)) return true;
  // Readable: either data the client sent ahead (a pipelined request; still there) or the end of the stream.
  char c;
  const ssize_t got = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

ClientConnection::ClientConnection(const httplib::Request& req)
    : req_(req), last_check_(std::chrono::steady_clock::now()) {}

bool ClientConnection::gone(std::chrono::milliseconds interval) {
  const auto now = std::chrono::steady_clock::now();
  if (now - last_check_ < interval) return false;
  last_check_ = now;
  if (!looked_up_) {
    looked_up_ = true;
    fd_ = find_connected_socket(req_.remote_addr, req_.remote_port, req_.local_port);
  }
  return fd_ >= 0 && peer_closed(fd_);
}

}  // namespace rf::server
