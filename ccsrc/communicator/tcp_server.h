// TcpServer: the listening socket; accepts inbound connections up to a cap and tracks them.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "communicator/connection.h"
#include "communicator/event_loop.h"
#include "communicator/socket.h"
#include "communicator/tls_stream.h"

namespace fl::comm {

class TcpServer : public EventHandler,
                  public ConnectionListener,
                  public std::enable_shared_from_this<TcpServer> {
 public:
  // Binds and listens at once so the port is known before start; connections wait in the backlog.
  // With `tls`, every inbound connection is mutual TLS.
  TcpServer(EventLoop& loop, const Address& bindAddr, size_t maxConnections, uint64_t maxPayload,
            ConnectionListener* upstream, std::shared_ptr<const TlsContext> tls = nullptr);

  const Address& address() const { return address_; }
  void attach();
  // Closes every inbound connection and stops accepting (idempotent).
  void closeAll(const std::string& reason);
  size_t connectionCount() const { return live_.load(); }

  void onEvents(uint32_t events) override;
  void onFrame(const std::shared_ptr<Connection>& conn, Frame&& frame) override;
  void onClosed(const std::shared_ptr<Connection>& conn, const std::string& reason) override;

 private:
  EventLoop& loop_;
  Socket listener_;
  Address address_;
  const size_t maxConnections_;
  const uint64_t maxPayload_;
  ConnectionListener* upstream_;
  std::shared_ptr<const TlsContext> tls_;
  uint64_t loopId_ = 0;
  std::atomic<size_t> live_{0};
  std::mutex mu_;
  bool closing_ = false;
  std::unordered_map<Connection*, std::shared_ptr<Connection>> conns_;
};

}  // namespace fl::comm
