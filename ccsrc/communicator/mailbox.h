// Mailbox: routes collective frames, keyed by (tag, source rank, step, chunk), to the collective
// waiting for them. Frames that arrive before the local call starts are buffered (FIFO per key).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "communicator/framing.h"
#include "communicator/time.h"

namespace fl::comm {

enum class DataType : uint16_t { kFloat32 = 1, kFloat64 = 2 };

inline size_t elementSize(DataType t) { return t == DataType::kFloat64 ? 8 : 4; }

// Prefix of every kCollective payload; the elements follow it.
struct CollectiveMeta {
  uint64_t tag = 0;
  uint64_t count = 0;  // elements in the whole all-reduce (a cross-rank consistency check)
  uint32_t srcRank = 0;
  uint32_t step = 0;
  uint32_t chunk = 0;
  DataType dtype = DataType::kFloat32;
  uint16_t groupSize = 0;
};
constexpr size_t kCollectiveMetaBytes = 32;

void encodeMeta(const CollectiveMeta& m, unsigned char out[kCollectiveMetaBytes]);
CollectiveMeta decodeMeta(const unsigned char in[kCollectiveMetaBytes]);

struct MailKey {
  uint64_t tag;
  uint32_t srcRank;
  uint32_t step;
  uint32_t chunk;
  bool operator<(const MailKey& o) const {
    return std::tie(tag, srcRank, step, chunk) < std::tie(o.tag, o.srcRank, o.step, o.chunk);
  }
};

class Mailbox {
 public:
  // Loop thread: files a collective frame. Throws IoError when its payload is too short.
  void deliver(Frame&& frame);
  // The inbound connection from `peer` (its listening address) closed.
  void peerClosed(const std::string& peer);
  // Number of closes of inbound connections from `peer` so far; snapshot it before waiting.
  uint64_t closeEpoch(const std::string& peer);
  // Takes the oldest frame filed under `key`. Throws IoError if `peer` (the sender) closed a
  // connection after `epoch` or the mailbox shut down, TimeoutError past `deadline`.
  Frame take(const MailKey& key, const std::string& peer, uint64_t epoch, Deadline deadline);
  // Drops every frame of `tag` (after a failed collective).
  void purge(uint64_t tag);
  // Fails every current and later take() of `tag` with IoError(reason) and drops its frames: the collective
  // is no longer wanted (its iteration ended without it). The newest kCancelledKept tags are remembered.
  void cancel(uint64_t tag, const std::string& reason);
  // Wakes all waiters with IoError(reason); later takes fail at once.
  void shutdown(const std::string& reason);

 private:
  const std::string* cancelledLocked(uint64_t tag) const;  // needs mu_

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<MailKey, std::deque<Frame>> frames_;
  std::unordered_map<std::string, uint64_t> closes_;
  static constexpr size_t kCancelledKept = 64;
  std::deque<std::pair<uint64_t, std::string>> cancelled_;  // (tag, reason), newest last
  bool shutdown_ = false;
  std::string shutdownReason_;
};

}  // namespace fl::comm
