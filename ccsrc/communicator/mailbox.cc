// Mailbox implementation: collective meta encoding and the keyed, deadline-bounded wait.
#include "communicator/mailbox.h"

#include "common/error.h"
#include "communicator/byte_order.h"

namespace fl::comm {

void encodeMeta(const CollectiveMeta& m, unsigned char out[kCollectiveMetaBytes]) {
  putLe<uint64_t>(out + 0, m.tag);
  putLe<uint64_t>(out + 8, m.count);
  putLe<uint32_t>(out + 16, m.srcRank);
  putLe<uint32_t>(out + 20, m.step);
  putLe<uint32_t>(out + 24, m.chunk);
  putLe<uint16_t>(out + 28, static_cast<uint16_t>(m.dtype));
  putLe<uint16_t>(out + 30, m.groupSize);
}

CollectiveMeta decodeMeta(const unsigned char in[kCollectiveMetaBytes]) {
  CollectiveMeta m;
  m.tag = getLe<uint64_t>(in + 0);
  m.count = getLe<uint64_t>(in + 8);
  m.srcRank = getLe<uint32_t>(in + 16);
  m.step = getLe<uint32_t>(in + 20);
  m.chunk = getLe<uint32_t>(in + 24);
  m.dtype = static_cast<DataType>(getLe<uint16_t>(in + 28));
  m.groupSize = getLe<uint16_t>(in + 30);
  return m;
}

void Mailbox::deliver(Frame&& frame) {
  if (frame.payload.size < kCollectiveMetaBytes) {
    throw IoError(
        FL_ERROR_MSG("collective frame of ", frame.payload.size, " bytes is shorter than its meta"));
  }
  auto m = decodeMeta(reinterpret_cast<const unsigned char*>(frame.payload.data.get()));
  MailKey key{m.tag, m.srcRank, m.step, m.chunk};
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (cancelledLocked(key.tag) != nullptr) return;  // nobody will take it
    frames_[key].push_back(std::move(frame));
  }
  cv_.notify_all();
}

void Mailbox::peerClosed(const std::string& peer) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++closes_[peer];
  }
  cv_.notify_all();
}

uint64_t Mailbox::closeEpoch(const std::string& peer) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = closes_.find(peer);
  return it == closes_.end() ? 0 : it->second;
}

Frame Mailbox::take(const MailKey& key, const std::string& peer, uint64_t epoch, Deadline deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (const std::string* why = cancelledLocked(key.tag))
      throw IoError(FL_ERROR_MSG("collective cancelled: ", *why));
    auto it = frames_.find(key);
    if (it != frames_.end()) {
      Frame f = std::move(it->second.front());
      it->second.pop_front();
      if (it->second.empty()) frames_.erase(it);
      return f;
    }
    if (shutdown_) throw IoError(FL_ERROR_MSG(shutdownReason_));
    auto closed = closes_.find(peer);
    if (closed != closes_.end() && closed->second != epoch) {
      throw IoError(FL_ERROR_MSG("connection from ", peer, " closed"));
    }
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && Clock::now() >= deadline) {
      if (frames_.count(key) != 0) continue;
      throw TimeoutError(FL_ERROR_MSG("timed out waiting for ", peer));
    }
  }
}

void Mailbox::purge(uint64_t tag) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = frames_.lower_bound(MailKey{tag, 0, 0, 0});
  while (it != frames_.end() && it->first.tag == tag) it = frames_.erase(it);
}

const std::string* Mailbox::cancelledLocked(uint64_t tag) const {
  for (const auto& c : cancelled_) {
    if (c.first == tag) return &c.second;
  }
  return nullptr;
}

void Mailbox::cancel(uint64_t tag, const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_.emplace_back(tag, reason);
    if (cancelled_.size() > kCancelledKept) cancelled_.pop_front();
    auto it = frames_.lower_bound(MailKey{tag, 0, 0, 0});
    while (it != frames_.end() && it->first.tag == tag) it = frames_.erase(it);
  }
  cv_.notify_all();
}

void Mailbox::shutdown(const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutdown_ = true;
    shutdownReason_ = reason;
  }
  cv_.notify_all();
}

}  // namespace fl::comm
