// Communicator implementation: lifecycle, request/reply, broadcast, incoming request queue.
#include "communicator/communicator.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "common/error.h"

namespace fl::comm {
namespace {
constexpr const char* kStopped = "communicator stopped";

CommunicatorOptions withoutKeys(CommunicatorOptions opts) {
  opts.tls.wipeKeys();
  return opts;
}
}  // namespace

Communicator::Communicator(const CommunicatorOptions& opts)
    : opts_(withoutKeys(opts)), tls_(opts.tls.enabled()) {
  FL_ENFORCE(opts.maxConnections > 0, "max_connections must be > 0");
  FL_ENFORCE(opts.maxFrameBytes > 0, "max_frame_bytes must be > 0");
  ConnectionListener* self = this;
  std::shared_ptr<const TlsContext> serverTls, clientTls;
  if (tls_) {
    serverTls = std::make_shared<TlsContext>(opts.tls.server, opts.tls, true);
    clientTls = std::make_shared<TlsContext>(opts.tls.client, opts.tls, false);
  }
  server_ = std::make_shared<TcpServer>(loop_, Address{opts.ip, opts.port}, opts.maxConnections,
                                        opts.maxFrameBytes, self, serverTls);
  client_ =
      std::make_unique<TcpClient>(loop_, opts.maxFrameBytes, server_->address().toString(), self, clientTls);
  requestEvent_ = Socket(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!requestEvent_.valid()) throw IoError(FL_ERROR_MSG(errnoText("eventfd", errno)));
}

Communicator::~Communicator() { stop(); }

void Communicator::start() {
  std::lock_guard<std::mutex> lock(stateMu_);
  FL_ENFORCE(state_ == State::kCreated, "start() may be called once, before stop()");
  server_->attach();
  loop_.start();
  state_ = State::kRunning;
}

bool Communicator::running() const {
  std::lock_guard<std::mutex> lock(stateMu_);
  return state_ == State::kRunning;
}

void Communicator::stop() {
  {
    std::lock_guard<std::mutex> lock(stateMu_);
    if (state_ == State::kStopped) return;
    state_ = State::kStopped;
  }
  loop_.stop();
  server_->closeAll(kStopped);
  client_->closeAll(kStopped);
  mailbox_.shutdown(std::string("all-reduce aborted: ") + kStopped);
}

void Communicator::checkRunning() const {
  std::lock_guard<std::mutex> lock(stateMu_);
  if (state_ == State::kStopped) throw IoError(FL_ERROR_MSG(kStopped));
  FL_ENFORCE(state_ == State::kRunning, "communicator not started: call start() first");
}

void Communicator::checkPayload(size_t bytes) const {
  FL_ENFORCE(bytes <= opts_.maxFrameBytes, "payload of ", bytes, " bytes exceeds max_frame_bytes ",
             opts_.maxFrameBytes);
}

std::shared_ptr<PendingCall> Communicator::sendRequest(const std::shared_ptr<Connection>& conn, uint64_t id,
                                                       uint32_t msgType, std::string_view payload) {
  FrameHeader h;
  h.type = FrameType::kRequest;
  h.msgType = msgType;
  h.requestId = id;
  auto call = conn->startCall(id);
  try {
    conn->send(encodeFrame(h, {payload}));
  } catch (...) {
    conn->abandonCall(id);
    throw;
  }
  return call;
}

Bytes Communicator::request(const std::string& peer, uint32_t msgType, std::string_view payload,
                            double timeoutSec) {
  checkRunning();
  checkPayload(payload.size());
  Deadline deadline = deadlineAfter(timeoutSec);
  auto conn = client_->get(peer, deadline);
  uint64_t id = nextRequestId_++;
  auto call = sendRequest(conn, id, msgType, payload);
  CallResult r = call->wait(deadline);
  switch (r.status) {
    case CallResult::Status::kOk:
      return std::move(r.payload);
    case CallResult::Status::kRemoteError:
      throw IoError(r.error);
    case CallResult::Status::kFailed:
      throw IoError(FL_ERROR_MSG("request to ", peer, " (msg_type ", msgType, ") failed: ", r.error));
    case CallResult::Status::kTimeout:
      break;
  }
  conn->abandonCall(id);
  throw TimeoutError(
      FL_ERROR_MSG("request to ", peer, " (msg_type ", msgType, ") timed out after ", timeoutSec, " s"));
}

std::vector<BroadcastResult> Communicator::broadcast(const std::vector<std::string>& peers, uint32_t msgType,
                                                     std::string_view payload, double timeoutSec) {
  checkRunning();
  checkPayload(payload.size());
  Deadline deadline = deadlineAfter(timeoutSec);
  std::vector<BroadcastResult> out(peers.size());
  std::vector<std::pair<std::shared_ptr<Connection>, uint64_t>> sent(peers.size());
  std::vector<std::shared_ptr<PendingCall>> calls(peers.size());
  for (size_t i = 0; i < peers.size(); ++i) {
    out[i].peer = peers[i];
    try {
      auto conn = client_->get(peers[i], deadline);
      uint64_t id = nextRequestId_++;
      calls[i] = sendRequest(conn, id, msgType, payload);
      sent[i] = {conn, id};
    } catch (const Exception& e) {
      out[i].error = e.what();
    }
  }
  for (size_t i = 0; i < peers.size(); ++i) {
    if (!calls[i]) continue;
    CallResult r = calls[i]->wait(deadline);
    out[i].ok = r.status == CallResult::Status::kOk;
    out[i].payload = std::move(r.payload);
    if (r.status == CallResult::Status::kRemoteError) out[i].error = r.error;
    if (r.status == CallResult::Status::kFailed) {
      out[i].error = FL_ERROR_MSG("request to ", peers[i], " failed: ", r.error);
    }
    if (r.status == CallResult::Status::kTimeout) {
      sent[i].first->abandonCall(sent[i].second);
      out[i].error = FL_ERROR_MSG("request to ", peers[i], " timed out after ", timeoutSec, " s");
    }
  }
  return out;
}

std::vector<IncomingRequest> Communicator::pollRequests(size_t max) {
  std::vector<IncomingRequest> out;
  std::lock_guard<std::mutex> lock(requestsMu_);
  while (!requests_.empty() && out.size() < max) {
    out.push_back(std::move(requests_.front()));
    requests_.pop_front();
  }
  if (requests_.empty()) {
    uint64_t count = 0;
    ssize_t rc = ::read(requestEvent_.fd(), &count, sizeof(count));
    (void)rc;  // EAGAIN when it was not signalled
  }
  return out;
}

bool Communicator::reply(uint64_t id, std::string_view payload, const std::string& error) {
  Inflight target;
  {
    std::lock_guard<std::mutex> lock(requestsMu_);
    auto it = inflight_.find(id);
    FL_ENFORCE(it != inflight_.end(), "unknown or already answered request id ", id);
    target = it->second;
    inflight_.erase(it);
  }
  auto conn = target.conn.lock();
  if (!conn || conn->closed()) return false;
  FrameHeader h;
  h.type = error.empty() ? FrameType::kReply : FrameType::kErrorReply;
  h.requestId = target.peerRequestId;
  try {
    conn->send(encodeFrame(h, {error.empty() ? payload : std::string_view(error)}));
  } catch (const IoError&) {
    return false;
  }
  return true;
}

void Communicator::sendCollective(const std::string& peer, const CollectiveMeta& meta, std::string_view data,
                                  Deadline deadline) {
  checkRunning();
  unsigned char metaBytes[kCollectiveMetaBytes];
  encodeMeta(meta, metaBytes);
  FrameHeader h;
  h.type = FrameType::kCollective;
  auto conn = client_->get(peer, deadline);
  conn->send(encodeFrame(h, {std::string_view(reinterpret_cast<char*>(metaBytes), sizeof(metaBytes)), data}));
}

void Communicator::onFrame(const std::shared_ptr<Connection>& conn, Frame&& frame) {
  if (frame.header.type == FrameType::kCollective) {
    mailbox_.deliver(std::move(frame));
    return;
  }
  std::lock_guard<std::mutex> lock(requestsMu_);
  uint64_t id = nextIncomingId_++;
  inflight_.emplace(id, Inflight{conn, frame.header.requestId});
  requests_.push_back(IncomingRequest{id, conn->peer(), frame.header.msgType, std::move(frame.payload)});
  if (requests_.size() == 1) {
    uint64_t one = 1;
    ssize_t rc = ::write(requestEvent_.fd(), &one, sizeof(one));
    (void)rc;
  }
}

void Communicator::onClosed(const std::shared_ptr<Connection>& conn, const std::string& reason) {
  (void)reason;
  if (conn->inbound()) mailbox_.peerClosed(conn->peer());
}

}  // namespace fl::comm
