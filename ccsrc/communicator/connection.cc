// Connection implementation: non-blocking reads/writes through its ByteStream, reply matching, close
// propagation.
#include "communicator/connection.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <vector>

#include "common/error.h"

namespace fl::comm {
namespace {
constexpr size_t kMaxIov = 64;
// Bytes read per readiness event before yielding to other connections (level-triggered epoll re-fires).
constexpr size_t kReadBudget = 16u << 20;
}  // namespace

void PendingCall::complete(Frame&& reply) {
  std::lock_guard<std::mutex> lock(mu_);
  if (done_) return;
  done_ = true;
  if (reply.header.type == FrameType::kErrorReply) {
    result_.status = CallResult::Status::kRemoteError;
    result_.error = std::string(reply.payload.view());
  } else {
    result_.status = CallResult::Status::kOk;
    result_.payload = std::move(reply.payload);
  }
  cv_.notify_all();
}

void PendingCall::fail(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  if (done_) return;
  done_ = true;
  result_.status = CallResult::Status::kFailed;
  result_.error = reason;
  cv_.notify_all();
}

CallResult PendingCall::wait(Deadline deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_until(lock, deadline, [this] { return done_; })) return CallResult{};
  return std::move(result_);
}

Connection::Connection(EventLoop& loop, std::unique_ptr<ByteStream> stream, std::string peer, bool inbound,
                       uint64_t maxPayload, ConnectionListener* listener)
    : loop_(loop),
      stream_(std::move(stream)),
      inbound_(inbound),
      listener_(listener),
      decoder_(maxPayload),
      peer_(std::move(peer)) {}

std::string Connection::peer() const {
  std::lock_guard<std::mutex> lock(peerMu_);
  return peer_;
}

std::string Connection::closeReason() const {
  std::lock_guard<std::mutex> lock(peerMu_);
  return closeReason_;
}

void Connection::attach() {
  std::lock_guard<std::mutex> lock(writeMu_);
  uint32_t events = EPOLLIN | EPOLLRDHUP | (wantWrite_ ? EPOLLOUT : 0u);
  loopId_ = loop_.add(stream_->fd(), events, shared_from_this());
}

void Connection::send(Bytes frame) {
  std::unique_lock<std::mutex> lock(writeMu_);
  if (closed_) throw IoError(FL_ERROR_MSG("connection to ", peer(), " is closed: ", closeReason()));
  outQ_.push_back(std::move(frame));
  if (outQ_.size() > 1 || writeBlocked_ || writeNeedsReadable_) return;  // the loop thread drains the queue
  std::string error;
  if (flushLocked(&error)) return;
  lock.unlock();
  close(error);
  throw IoError(FL_ERROR_MSG("send to ", peer(), " failed: ", error));
}

bool Connection::flushLocked(std::string* error) {
  while (!outQ_.empty()) {
    iovec iov[kMaxIov];
    size_t n = 0;
    for (auto it = outQ_.begin(); it != outQ_.end() && n < kMaxIov; ++it, ++n) {
      size_t skip = n == 0 ? outOffset_ : 0;
      iov[n].iov_base = it->data.get() + skip;
      iov[n].iov_len = it->size - skip;
    }
    ssize_t sent = stream_->writeSome(iov, n);
    if (sent < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        writeBlocked_ = stream_->waitsForWritable(true);
        writeNeedsReadable_ = !writeBlocked_;
        updateInterestLocked();
        return true;
      }
      *error = stream_->failure("send", errno);
      return false;
    }
    size_t left = static_cast<size_t>(sent);
    while (left > 0) {
      size_t rest = outQ_.front().size - outOffset_;
      if (left < rest) {
        outOffset_ += left;
        break;
      }
      left -= rest;
      outQ_.pop_front();
      outOffset_ = 0;
    }
  }
  writeBlocked_ = false;
  writeNeedsReadable_ = false;
  updateInterestLocked();
  return true;
}

void Connection::updateInterestLocked() {
  bool want = writeBlocked_ || readNeedsWritable_;
  if (want == wantWrite_) return;
  wantWrite_ = want;
  if (loopId_ != 0) loop_.modify(loopId_, EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0u));
}

void Connection::setReadNeedsWritable(bool need) {
  if (readNeedsWritable_ == need) return;
  std::lock_guard<std::mutex> lock(writeMu_);
  readNeedsWritable_ = need;
  updateInterestLocked();
}

std::shared_ptr<PendingCall> Connection::startCall(uint64_t requestId) {
  auto call = std::make_shared<PendingCall>();
  std::lock_guard<std::mutex> lock(pendingMu_);
  if (closed_) throw IoError(FL_ERROR_MSG("connection to ", peer(), " is closed: ", closeReason()));
  pending_.emplace(requestId, call);
  return call;
}

void Connection::abandonCall(uint64_t requestId) {
  std::lock_guard<std::mutex> lock(pendingMu_);
  pending_.erase(requestId);
}

void Connection::close(const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(peerMu_);
    if (closed_.exchange(true)) return;
    closeReason_ = reason;
  }
  stream_->shutdownBoth();  // the fd itself is closed with the last reference, so it cannot be reused early
  uint64_t loopId = 0;
  {
    std::lock_guard<std::mutex> lock(writeMu_);
    loopId = loopId_;
    outQ_.clear();
    outOffset_ = 0;
  }
  loop_.remove(loopId);
  std::unordered_map<uint64_t, std::shared_ptr<PendingCall>> failed;
  {
    std::lock_guard<std::mutex> lock(pendingMu_);
    failed.swap(pending_);
  }
  for (auto& kv : failed) kv.second->fail("connection to " + peer() + " closed: " + reason);
  listener_->onClosed(shared_from_this(), reason);
}

void Connection::onEvents(uint32_t events) {
  bool readable = (events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) != 0;
  bool writable = (events & EPOLLOUT) != 0;
  // A TLS stream may need the other direction: a handshake blocks writes on incoming bytes, and a read
  // may have to send (so it waits for a writable socket).
  if (readable || (writable && readNeedsWritable_)) handleReadable();
  if (!closed_ && (writable || (readable && writeNeedsReadable_))) handleWritable();
  if (!closed_ && (events & (EPOLLHUP | EPOLLERR))) {
    int err = 0;
    socklen_t len = sizeof(err);
    (void)getsockopt(stream_->fd(), SOL_SOCKET, SO_ERROR, &err, &len);
    close(err != 0 ? errnoText("socket", err) : std::string("connection hung up"));
  }
}

void Connection::handleReadable() {
  size_t budget = kReadBudget;
  // Bytes a TLS stream already decrypted would not wake epoll again: they are read past the budget.
  while (!closed_ && (budget > 0 || stream_->hasBuffered())) {
    ssize_t n = stream_->readSome(decoder_.bufferData(), decoder_.bufferSize());
    if (n == 0) {
      close("connection closed by peer");
      return;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        setReadNeedsWritable(stream_->waitsForWritable(false));
      } else {
        close(stream_->failure("recv", errno));
      }
      return;
    }
    if (readNeedsWritable_) setReadNeedsWritable(false);
    budget -= std::min(budget, static_cast<size_t>(n));
    try {
      if (decoder_.commit(static_cast<size_t>(n))) dispatch(decoder_.take());
    } catch (const std::exception& e) {
      std::string why = std::string("rejected frame from ") + peer() + ": " + e.what();
      std::fprintf(stderr, "[%s:%d] WARN %s\n", __FILE__, __LINE__, why.c_str());
      close(why);
      return;
    }
  }
}

void Connection::handleWritable() {
  std::unique_lock<std::mutex> lock(writeMu_);
  std::string error;
  if (flushLocked(&error)) return;
  lock.unlock();
  close(error);
}

void Connection::dispatch(Frame&& frame) {
  switch (frame.header.type) {
    case FrameType::kHello: {
      std::lock_guard<std::mutex> lock(peerMu_);
      if (inbound_) peer_ = std::string(frame.payload.view());
      return;
    }
    case FrameType::kReply:
    case FrameType::kErrorReply: {
      std::shared_ptr<PendingCall> call;
      {
        std::lock_guard<std::mutex> lock(pendingMu_);
        auto it = pending_.find(frame.header.requestId);
        if (it == pending_.end()) return;  // abandoned after a timeout
        call = std::move(it->second);
        pending_.erase(it);
      }
      call->complete(std::move(frame));
      return;
    }
    default:
      listener_->onFrame(shared_from_this(), std::move(frame));
  }
}

}  // namespace fl::comm
