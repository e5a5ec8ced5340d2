// TcpClient: one cached outbound connection per peer address, (re)connected on demand.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "communicator/connection.h"
#include "communicator/event_loop.h"
#include "communicator/tls_stream.h"

namespace fl::comm {

class TcpClient : public ConnectionListener {
 public:
  // `selfAddress` is sent in the hello frame so peers can name us by our listening address. With `tls`,
  // every outbound connection is mutual TLS.
  TcpClient(EventLoop& loop, uint64_t maxPayload, std::string selfAddress, ConnectionListener* upstream,
            std::shared_ptr<const TlsContext> tls = nullptr);

  // The live connection to `peer`, connecting first if needed. Throws TimeoutError past `deadline`,
  // IoError when refused or after closeAll().
  std::shared_ptr<Connection> get(const std::string& peer, Deadline deadline);
  void closeAll(const std::string& reason);

  void onFrame(const std::shared_ptr<Connection>& conn, Frame&& frame) override;
  void onClosed(const std::shared_ptr<Connection>& conn, const std::string& reason) override;

 private:
  struct Slot {
    std::shared_ptr<Connection> conn;
    bool connecting = false;  // one connect per peer at a time; others wait (with their own deadline)
  };

  std::shared_ptr<Connection> connect(const std::string& peer, Deadline deadline);

  EventLoop& loop_;
  const uint64_t maxPayload_;
  const std::string selfAddress_;
  ConnectionListener* upstream_;
  std::shared_ptr<const TlsContext> tls_;
  std::mutex mu_;
  std::condition_variable connected_;
  bool closed_ = false;
  std::unordered_map<std::string, std::shared_ptr<Slot>> slots_;
  std::unordered_map<Connection*, std::shared_ptr<Connection>> conns_;  // live ones, for closeAll
};

}  // namespace fl::comm
