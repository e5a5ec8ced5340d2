// TcpClient implementation: per-peer connection cache with deadline-bounded connects.
#include "communicator/tcp_client.h"

#include "common/error.h"

namespace fl::comm {

TcpClient::TcpClient(EventLoop& loop, uint64_t maxPayload, std::string selfAddress,
                     ConnectionListener* upstream, std::shared_ptr<const TlsContext> tls)
    : loop_(loop),
      maxPayload_(maxPayload),
      selfAddress_(std::move(selfAddress)),
      upstream_(upstream),
      tls_(std::move(tls)) {}

std::shared_ptr<Connection> TcpClient::get(const std::string& peer, Deadline deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  auto& entry = slots_[peer];
  if (!entry) entry = std::make_shared<Slot>();
  std::shared_ptr<Slot> slot = entry;
  for (;;) {
    if (closed_) throw IoError(FL_ERROR_MSG("cannot reach ", peer, ": communicator stopped"));
    if (slot->conn && !slot->conn->closed()) return slot->conn;
    if (!slot->connecting) break;
    if (connected_.wait_until(lock, deadline) == std::cv_status::timeout && slot->connecting) {
      throw TimeoutError(FL_ERROR_MSG("connect to ", peer, " timed out"));
    }
  }
  slot->connecting = true;
  lock.unlock();
  std::shared_ptr<Connection> conn;
  try {
    conn = connect(peer, deadline);
  } catch (...) {
    lock.lock();
    slot->connecting = false;
    connected_.notify_all();
    throw;
  }
  lock.lock();
  slot->conn = conn;
  slot->connecting = false;
  connected_.notify_all();
  return conn;
}

std::shared_ptr<Connection> TcpClient::connect(const std::string& peer, Deadline deadline) {
  Socket sock = Socket::connectTo(Address::parse(peer), deadline);
  std::unique_ptr<ByteStream> stream =
      tls_ ? tls_->wrap(std::move(sock), peer) : std::make_unique<PlainStream>(std::move(sock));
  auto conn = std::make_shared<Connection>(loop_, std::move(stream), peer, false, maxPayload_, this);
  FrameHeader hello;
  hello.type = FrameType::kHello;
  conn->send(encodeFrame(hello, {selfAddress_}));  // queued first, so it precedes every other frame
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) throw IoError(FL_ERROR_MSG("cannot reach ", peer, ": communicator stopped"));
    conns_.emplace(conn.get(), conn);
    conn->attach();
  }
  return conn;
}

void TcpClient::closeAll(const std::string& reason) {
  std::unordered_map<Connection*, std::shared_ptr<Connection>> conns;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    conns.swap(conns_);
  }
  connected_.notify_all();
  for (auto& kv : conns) kv.second->close(reason);
}

void TcpClient::onFrame(const std::shared_ptr<Connection>& conn, Frame&& frame) {
  upstream_->onFrame(conn, std::move(frame));
}

void TcpClient::onClosed(const std::shared_ptr<Connection>& conn, const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    conns_.erase(conn.get());
  }
  upstream_->onClosed(conn, reason);
}

}  // namespace fl::comm
