// Socket: RAII owner of one file descriptor (TCP socket, epoll or eventfd), plus TCP helpers.
#pragma once

#include <string>
#include <utility>

#include "communicator/address.h"
#include "communicator/time.h"

namespace fl::comm {

class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() { reset(); }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  Socket(Socket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Socket& operator=(Socket&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }

  int fd() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Closes the descriptor now (idempotent).
  void reset();

  // A non-blocking listening socket bound to `addr` (port 0 picks a free port), SO_REUSEADDR set.
  static Socket listenOn(const Address& addr, int backlog);
  // A connected non-blocking TCP socket with TCP_NODELAY; throws TimeoutError past `deadline`
  // and IoError when refused or unreachable (both name `addr`).
  static Socket connectTo(const Address& addr, Deadline deadline);
  // Accepts one pending connection (non-blocking, TCP_NODELAY); an invalid Socket when none is pending.
  Socket accept(Address* peer) const;

  Address localAddress() const;
  // Half-closes both directions so the peer and our event loop see EOF at once; the fd stays open.
  void shutdownBoth() const;

 private:
  int fd_ = -1;
};

void setNonBlocking(int fd);
void setNoDelay(int fd);
// "syscall: strerror(errno)" for error messages.
std::string errnoText(const char* syscall, int err);

}  // namespace fl::comm
