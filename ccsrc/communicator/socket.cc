// Socket implementation: listen, non-blocking connect with a deadline, accept.
#include "communicator/socket.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace fl::comm {

std::string errnoText(const char* syscall, int err) {
  return std::string(syscall) + ": " + std::strerror(err);
}

void setNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL, 0);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    throw IoError(FL_ERROR_MSG(errnoText("fcntl(O_NONBLOCK)", errno)));
  }
}

void setNoDelay(int fd) {
  int one = 1;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void Socket::reset() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

Socket Socket::listenOn(const Address& addr, int backlog) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  addr.resolve(&ss, &len);
  Socket s(::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!s.valid()) throw IoError(FL_ERROR_MSG(errnoText("socket", errno)));
  int one = 1;
  (void)setsockopt(s.fd(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(s.fd(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    throw IoError(FL_ERROR_MSG("cannot bind ", addr.toString(), ": ", errnoText("bind", errno)));
  }
  if (::listen(s.fd(), backlog) != 0) {
    throw IoError(FL_ERROR_MSG("cannot listen on ", addr.toString(), ": ", errnoText("listen", errno)));
  }
  return s;
}

Socket Socket::connectTo(const Address& addr, Deadline deadline) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  addr.resolve(&ss, &len);
  Socket s(::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!s.valid()) throw IoError(FL_ERROR_MSG(errnoText("socket", errno)));
  setNoDelay(s.fd());
  int rc = ::connect(s.fd(), reinterpret_cast<sockaddr*>(&ss), len);
  if (rc != 0 && errno != EINPROGRESS) {
    throw IoError(FL_ERROR_MSG("connect to ", addr.toString(), " failed: ", errnoText("connect", errno)));
  }
  while (rc != 0) {
    pollfd pfd{s.fd(), POLLOUT, 0};
    int n = ::poll(&pfd, 1, remainingMs(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw IoError(FL_ERROR_MSG("connect to ", addr.toString(), ": ", errnoText("poll", errno)));
    if (n == 0) throw TimeoutError(FL_ERROR_MSG("connect to ", addr.toString(), " timed out"));
    int err = 0;
    socklen_t errLen = sizeof(err);
    (void)getsockopt(s.fd(), SOL_SOCKET, SO_ERROR, &err, &errLen);
    if (err != 0) {
      throw IoError(FL_ERROR_MSG("connect to ", addr.toString(), " failed: ", errnoText("connect", err)));
    }
    rc = 0;
  }
  return s;
}

Socket Socket::accept(Address* peer) const {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  int fd = ::accept4(fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) return Socket();
  setNoDelay(fd);
  if (peer != nullptr) *peer = Address::fromSockaddr(reinterpret_cast<sockaddr*>(&ss));
  return Socket(fd);
}

Address Socket::localAddress() const {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    throw IoError(FL_ERROR_MSG(errnoText("getsockname", errno)));
  }
  return Address::fromSockaddr(reinterpret_cast<sockaddr*>(&ss));
}

void Socket::shutdownBoth() const {
  if (fd_ >= 0) (void)::shutdown(fd_, SHUT_RDWR);
}

}  // namespace fl::comm
