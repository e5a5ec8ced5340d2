// Communicator: the facade one process uses to talk to its peers. It listens on ip:port, sends
// requests over cached connections, queues incoming requests for polling (eventfd wakeup, no
// callbacks into the caller's runtime), and routes collective frames to the Mailbox.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "communicator/connection.h"
#include "communicator/event_loop.h"
#include "communicator/mailbox.h"
#include "communicator/tcp_client.h"
#include "communicator/tcp_server.h"
#include "communicator/tls_stream.h"

namespace fl::comm {

struct CommunicatorOptions {
  std::string ip = "127.0.0.1";
  uint16_t port = 0;  // 0 picks a free port
  size_t maxConnections = 10000;
  uint64_t maxFrameBytes = (uint64_t{1} << 31) - 1;  // largest accepted payload
  TlsOptions tls;                                    // mutual TLS on every connection when tls.enabled()
};

struct IncomingRequest {
  uint64_t id;  // local id to pass to reply()
  std::string peer;
  uint32_t msgType;
  Bytes payload;
};

struct BroadcastResult {
  std::string peer;
  bool ok = false;
  Bytes payload;      // when ok
  std::string error;  // when not ok
};

class Communicator : private ConnectionListener {
 public:
  explicit Communicator(const CommunicatorOptions& opts = CommunicatorOptions());
  ~Communicator() override;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  uint16_t port() const { return server_->address().port; }
  std::string address() const { return server_->address().toString(); }
  uint64_t maxFrameBytes() const { return opts_.maxFrameBytes; }

  void start();
  bool running() const;
  bool tls() const { return tls_; }
  // Joins the I/O thread, closes every connection and fails every waiter (idempotent).
  void stop();

  // Sends a request and blocks for its reply. Throws TimeoutError/IoError naming the peer, or
  // IoError carrying exactly the peer's error text when it replied with an error.
  Bytes request(const std::string& peer, uint32_t msgType, std::string_view payload, double timeoutSec);
  // The same request to every peer in parallel, under one shared deadline.
  std::vector<BroadcastResult> broadcast(const std::vector<std::string>& peers, uint32_t msgType,
                                         std::string_view payload, double timeoutSec);

  // An eventfd that is readable while incoming requests are queued.
  int fileno() const { return requestEvent_.fd(); }
  std::vector<IncomingRequest> pollRequests(size_t max);
  // Answers request `id`; false when the requester's connection is already gone.
  bool reply(uint64_t id, std::string_view payload, const std::string& error);

  // Collective plumbing (allreduce.cc).
  void sendCollective(const std::string& peer, const CollectiveMeta& meta, std::string_view data,
                      Deadline deadline);
  Mailbox& mailbox() { return mailbox_; }

 private:
  struct Inflight {
    std::weak_ptr<Connection> conn;
    uint64_t peerRequestId;
  };
  enum class State { kCreated, kRunning, kStopped };

  void onFrame(const std::shared_ptr<Connection>& conn, Frame&& frame) override;
  void onClosed(const std::shared_ptr<Connection>& conn, const std::string& reason) override;
  void checkRunning() const;
  void checkPayload(size_t bytes) const;
  std::shared_ptr<PendingCall> sendRequest(const std::shared_ptr<Connection>& conn, uint64_t id,
                                           uint32_t msgType, std::string_view payload);

  const CommunicatorOptions opts_;  // without the TLS private keys
  const bool tls_;
  EventLoop loop_;
  Mailbox mailbox_;
  std::shared_ptr<TcpServer> server_;
  std::unique_ptr<TcpClient> client_;
  Socket requestEvent_;

  mutable std::mutex stateMu_;
  State state_ = State::kCreated;
  std::atomic<uint64_t> nextRequestId_{1};

  std::mutex requestsMu_;
  uint64_t nextIncomingId_ = 1;
  std::deque<IncomingRequest> requests_;
  std::unordered_map<uint64_t, Inflight> inflight_;
};

}  // namespace fl::comm
