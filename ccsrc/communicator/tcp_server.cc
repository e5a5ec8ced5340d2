// TcpServer implementation: accept loop with the connection cap.
#include "communicator/tcp_server.h"

#include <sys/socket.h>

#include <cstdio>
#include <vector>

namespace fl::comm {
namespace {
constexpr int kBacklog = 1024;
}  // namespace

TcpServer::TcpServer(EventLoop& loop, const Address& bindAddr, size_t maxConnections, uint64_t maxPayload,
                     ConnectionListener* upstream, std::shared_ptr<const TlsContext> tls)
    : loop_(loop),
      listener_(Socket::listenOn(bindAddr, kBacklog)),
      maxConnections_(maxConnections),
      maxPayload_(maxPayload),
      upstream_(upstream),
      tls_(std::move(tls)) {
  address_ = listener_.localAddress();
  address_.host = bindAddr.host;  // keep the caller's spelling ("localhost" stays "localhost")
}

void TcpServer::attach() { loopId_ = loop_.add(listener_.fd(), EPOLLIN, shared_from_this()); }

void TcpServer::onEvents(uint32_t) {
  for (;;) {
    Address peer;
    Socket sock = listener_.accept(&peer);
    if (!sock.valid()) return;  // EAGAIN (or a transient accept error)
    if (live_.load() >= maxConnections_) {
      std::fprintf(stderr, "[%s:%d] WARN connection from %s refused: max_connections %zu reached\n", __FILE__,
                   __LINE__, peer.toString().c_str(), maxConnections_);
      continue;  // the Socket destructor closes it
    }
    std::string name = peer.toString();
    std::unique_ptr<ByteStream> stream;
    try {
      stream = tls_ ? tls_->wrap(std::move(sock), name) : std::make_unique<PlainStream>(std::move(sock));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "[%s:%d] WARN connection from %s dropped: %s\n", __FILE__, __LINE__, name.c_str(),
                   e.what());
      continue;
    }
    auto conn = std::make_shared<Connection>(loop_, std::move(stream), name, true, maxPayload_, this);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closing_) return;
      conns_.emplace(conn.get(), conn);
    }
    ++live_;
    conn->attach();
  }
}

void TcpServer::onFrame(const std::shared_ptr<Connection>& conn, Frame&& frame) {
  upstream_->onFrame(conn, std::move(frame));
}

void TcpServer::onClosed(const std::shared_ptr<Connection>& conn, const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (conns_.erase(conn.get()) == 0) return;
  }
  --live_;
  upstream_->onClosed(conn, reason);
}

void TcpServer::closeAll(const std::string& reason) {
  std::vector<std::shared_ptr<Connection>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closing_ = true;
    for (auto& kv : conns_) all.push_back(kv.second);
  }
  loop_.remove(loopId_);
  listener_.reset();
  for (auto& c : all) c->close(reason);
}

}  // namespace fl::comm
