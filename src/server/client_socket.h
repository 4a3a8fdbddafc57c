// The connection a request arrived on, for handlers that must notice a client that went away while they work
// (a non-streaming completion runs for seconds before it writes anything). httplib 0.11 does not give handlers
// its socket, so it is found by the request's address pair among the process's open sockets.
#pragma once

#include <chrono>
#include <string>

namespace httplib {
struct Request;
}

namespace rf::server {

class ClientConnection {
 public:
  // Looks the socket up on the first check (one scan of /proc/self/fd), so requests answered within the first
  // interval cost nothing. The socket stays open while the handler runs (httplib closes it after the response), so
  // it cannot be confused with another connection.
  explicit ClientConnection(const httplib::Request& req);

  // True once the client has closed or reset the connection (a half-close counts: HTTP clients do not half-close
  // while they wait for an answer). Checks at most once per `interval`, the first time one interval after
  // construction; false while unknown (socket not found).
  bool gone(std::chrono::milliseconds interval = std::chrono::milliseconds(20));

 private:
  const httplib::Request& req_;
  int fd_ = -1;
  bool looked_up_ = false;
  std::chrono::steady_clock::time_point last_check_{};
};

// The socket (fd) connected from remote_addr:remote_port to local_port, or -1.
int find_connected_socket(const std::string& remote_addr, int remote_port, int local_port);

// True when the peer of connected socket `fd` has closed or reset it (never blocks; data it sent is not consumed).
bool peer_closed(int fd);

}  // namespace rf::server
