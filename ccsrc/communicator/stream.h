// ByteStream: the bytes a Connection reads and writes, apart from the framing above them. PlainStream is TCP
// as is; TlsStream (tls_stream.h) is mutual TLS over the same non-blocking fd.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <string>

#include "communicator/socket.h"

namespace fl::comm {

class ByteStream {
 public:
  virtual ~ByteStream() = default;
  virtual int fd() const = 0;
  // > 0 bytes read, 0 at end of stream, -1 with errno set (EAGAIN/EWOULDBLOCK: nothing ready now).
  virtual ssize_t readSome(void* buf, size_t len) = 0;
  // Bytes written from `iov` (possibly fewer than offered), or -1 with errno set (EAGAIN: try later).
  virtual ssize_t writeSome(const iovec* iov, size_t count) = 0;
  // Both directions see end of stream at once; the descriptor itself stays open until destruction.
  virtual void shutdownBoth() = 0;
  // After readSome/writeSome returned -1 with EAGAIN: true when the stream waits for the socket to become
  // writable, false when it waits for incoming bytes (a TLS handshake or record may need either direction).
  virtual bool waitsForWritable(bool afterWrite) const { return afterWrite; }
  // Bytes the stream already holds (decrypted), readable without the socket becoming readable again.
  virtual bool hasBuffered() const { return false; }
  // The text of a failed read or write (`err` is its errno).
  virtual std::string failure(const char* op, int err) const { return errnoText(op, err); }
};

class PlainStream final : public ByteStream {
 public:
  explicit PlainStream(Socket sock) : sock_(std::move(sock)) {}
  int fd() const override { return sock_.fd(); }
  ssize_t readSome(void* buf, size_t len) override;
  ssize_t writeSome(const iovec* iov, size_t count) override;
  void shutdownBoth() override { sock_.shutdownBoth(); }

 private:
  Socket sock_;
};

}  // namespace fl::comm
