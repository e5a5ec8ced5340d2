// PlainStream: recv/sendmsg on a non-blocking TCP socket (no SIGPIPE).
#include "communicator/stream.h"

#include <sys/socket.h>

namespace fl::comm {

ssize_t PlainStream::readSome(void* buf, size_t len) { return ::recv(sock_.fd(), buf, len, 0); }

ssize_t PlainStream::writeSome(const iovec* iov, size_t count) {
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(iov);
  msg.msg_iovlen = count;
  return ::sendmsg(sock_.fd(), &msg, MSG_NOSIGNAL);
}

}  // namespace fl::comm
