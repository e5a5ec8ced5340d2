// Connection: one framed TCP stream registered on the EventLoop. Writes go straight from the sending
// thread when possible and are finished by the loop; reads, reply matching and close detection run on
// the loop thread. Closing fails every in-flight call at once.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "communicator/event_loop.h"
#include "communicator/framing.h"
#include "communicator/stream.h"
#include "communicator/time.h"

namespace fl::comm {

class Connection;

// Receives what a connection cannot handle itself; the Communicator implements it.
class ConnectionListener {
 public:
  virtual ~ConnectionListener() = default;
  // Loop thread: a kRequest or kCollective frame.
  virtual void onFrame(const std::shared_ptr<Connection>& conn, Frame&& frame) = 0;
  // Any thread, exactly once per connection.
  virtual void onClosed(const std::shared_ptr<Connection>& conn, const std::string& reason) = 0;
};

// How a call ended; errors are values here, the caller turns them into exceptions with context.
struct CallResult {
  enum class Status { kOk, kRemoteError, kFailed, kTimeout };
  Status status = Status::kTimeout;
  Bytes payload;      // kOk
  std::string error;  // kRemoteError: the peer's text; kFailed: why the connection failed
};

// One outstanding request waiting for its reply.
class PendingCall {
 public:
  void complete(Frame&& reply);
  void fail(const std::string& reason);
  // Blocks until the reply, a failure, or `deadline`.
  CallResult wait(Deadline deadline);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  CallResult result_;
};

class Connection : public EventHandler, public std::enable_shared_from_this<Connection> {
 public:
  Connection(EventLoop& loop, std::unique_ptr<ByteStream> stream, std::string peer, bool inbound,
             uint64_t maxPayload, ConnectionListener* listener);

  // Registers with the event loop; frames queued before attach() are flushed by it.
  void attach();
  // Thread-safe; throws IoError naming the peer when the connection is closed or the write fails.
  void send(Bytes frame);
  // Registers a call before its request is sent; throws IoError when already closed.
  std::shared_ptr<PendingCall> startCall(uint64_t requestId);
  void abandonCall(uint64_t requestId);
  // Idempotent and thread-safe; fails pending calls and notifies the listener.
  void close(const std::string& reason);

  bool closed() const { return closed_.load(); }
  bool inbound() const { return inbound_; }
  // The peer's listening address (from its hello) or, before that, its socket address.
  std::string peer() const;
  std::string closeReason() const;

  void onEvents(uint32_t events) override;

 private:
  void handleReadable();
  void handleWritable();
  // Writes queued frames until EAGAIN; false (with *error) when the socket failed. Needs writeMu_.
  bool flushLocked(std::string* error);
  // EPOLLOUT is wanted while queued frames wait for a writable socket or a read waits for one (TLS).
  void updateInterestLocked();
  void setReadNeedsWritable(bool need);
  void dispatch(Frame&& frame);

  EventLoop& loop_;
  std::unique_ptr<ByteStream> stream_;
  const bool inbound_;
  ConnectionListener* listener_;
  FrameDecoder decoder_;  // loop thread only

  mutable std::mutex peerMu_;
  std::string peer_;
  std::string closeReason_;

  std::mutex writeMu_;
  std::deque<Bytes> outQ_;
  size_t outOffset_ = 0;  // bytes of outQ_.front() already written
  bool wantWrite_ = false;
  bool writeBlocked_ = false;                    // queued frames wait for a writable socket
  std::atomic<bool> writeNeedsReadable_{false};  // queued frames wait for incoming bytes (TLS handshake)
  std::atomic<bool> readNeedsWritable_{false};   // the last read waits for a writable socket (TLS)
  uint64_t loopId_ = 0;

  std::mutex pendingMu_;
  std::unordered_map<uint64_t, std::shared_ptr<PendingCall>> pending_;
  std::atomic<bool> closed_{false};
};

}  // namespace fl::comm
