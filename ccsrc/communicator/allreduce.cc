// All-reduce algorithms: a segment-pipelined ring and a gather/broadcast fallback for tiny buffers.
#include "communicator/allreduce.h"

#include <algorithm>
#include <cstring>

#include "common/error.h"

namespace fl::comm {
namespace {

template <typename T>
void sumInto(void* dst, const void* src, size_t n) {
  T* d = static_cast<T*>(dst);
  const T* s = static_cast<const T*>(src);
  for (size_t i = 0; i < n; ++i) d[i] += s[i];
}

// One all-reduce in progress on this rank: addressing, framing and error context.
class Collective {
 public:
  Collective(Communicator& comm, const AllreduceOptions& o)
      : comm_(comm), o_(o), n_(o.group.size()), elem_(elementSize(o.dtype)) {
    uint64_t maxFrame = comm.maxFrameBytes();
    size_t maxSeg = maxFrame > kCollectiveMetaBytes ? maxFrame - kCollectiveMetaBytes : 0;
    size_t seg = std::min(o.segmentBytes, maxSeg);
    segElems_ = std::max<size_t>(1, seg / elem_);
  }

  char* at(size_t elem) const { return static_cast<char*>(o_.data) + elem * elem_; }
  size_t segments(size_t len) const { return len == 0 ? 1 : (len + segElems_ - 1) / segElems_; }
  size_t segElems() const { return segElems_; }
  void reduce(void* dst, const void* src, size_t n) const {
    if (o_.dtype == DataType::kFloat64) {
      sumInto<double>(dst, src, n);
    } else {
      sumInto<float>(dst, src, n);
    }
  }

  void send(size_t dst, uint32_t step, uint32_t chunk, const char* p, size_t elems, Deadline deadline) {
    CollectiveMeta m{o_.tag, o_.count, static_cast<uint32_t>(o_.rank), step,
                     chunk,  o_.dtype, static_cast<uint16_t>(n_)};
    try {
      comm_.sendCollective(o_.group[dst], m, std::string_view(p, elems * elem_), deadline);
    } catch (const TimeoutError& e) {
      throw TimeoutError(FL_ERROR_MSG(context(dst, step), "cannot send: ", e.what()));
    } catch (const IoError& e) {
      throw IoError(FL_ERROR_MSG(context(dst, step), "cannot send: ", e.what()));
    }
  }

  // The elements of (src, step, chunk), checked to hold exactly `elems` elements.
  Frame recv(size_t src, uint32_t step, uint32_t chunk, size_t elems, uint64_t epoch, Deadline deadline) {
    Frame f;
    try {
      f = comm_.mailbox().take(MailKey{o_.tag, static_cast<uint32_t>(src), step, chunk}, o_.group[src], epoch,
                               deadline);
    } catch (const TimeoutError&) {
      throw TimeoutError(
          FL_ERROR_MSG(context(src, step), "timed out after ", o_.timeoutSec, " s waiting for data"));
    } catch (const IoError& e) {
      throw IoError(FL_ERROR_MSG(context(src, step), "receive failed: ", e.what()));
    }
    auto m = decodeMeta(reinterpret_cast<const unsigned char*>(f.payload.data.get()));
    size_t bytes = f.payload.size - kCollectiveMetaBytes;
    if (m.count != o_.count || m.dtype != o_.dtype || m.groupSize != n_ || bytes != elems * elem_) {
      throw IoError(FL_ERROR_MSG(context(src, step), "mismatched all-reduce: peer has ", m.count,
                                 " elements (dtype ", static_cast<int>(m.dtype), ", group ", m.groupSize,
                                 "), we have ", o_.count, " (dtype ", static_cast<int>(o_.dtype), ", group ",
                                 n_, ")"));
    }
    return f;
  }

  static const char* elements(const Frame& f) { return f.payload.data.get() + kCollectiveMetaBytes; }
  uint64_t epochOf(size_t rank) { return comm_.mailbox().closeEpoch(o_.group[rank]); }
  Deadline stepDeadline() const { return deadlineAfter(o_.timeoutSec); }

 private:
  std::string context(size_t peer, uint32_t step) const {
    return "all-reduce tag " + std::to_string(o_.tag) + " (rank " + std::to_string(o_.rank) + " of " +
           std::to_string(n_) + ", step " + std::to_string(step) + ") with rank " + std::to_string(peer) +
           " at " + o_.group[peer] + ": ";
  }

  Communicator& comm_;
  const AllreduceOptions& o_;
  const size_t n_;
  const size_t elem_;
  size_t segElems_ = 1;
};

// Block b of the ring covers [start(b), start(b) + len(b)).
struct Blocks {
  size_t count, n;
  size_t len(size_t b) const { return count / n + (b < count % n ? 1 : 0); }
  size_t start(size_t b) const { return b * (count / n) + std::min(b, count % n); }
};

// Reduce-scatter then all-gather as one pipeline of 2(n-1) steps: the block received at step t is
// the block sent at step t+1, so each segment is forwarded as soon as it is reduced (or copied).
void ringAllreduce(Collective& c, const AllreduceOptions& o) {
  const size_t n = o.group.size(), rank = o.rank;
  const size_t left = (rank + n - 1) % n, right = (rank + 1) % n;
  const uint64_t epoch = c.epochOf(left);
  const Blocks blocks{o.count, n};
  const uint32_t steps = static_cast<uint32_t>(2 * (n - 1));
  auto sendSegments = [&](size_t b, uint32_t step, Deadline d) {
    for (size_t j = 0; j < c.segments(blocks.len(b)); ++j) {
      size_t off = j * c.segElems(), len = std::min(c.segElems(), blocks.len(b) - off);
      c.send(right, step, static_cast<uint32_t>(j), c.at(blocks.start(b) + off), len, d);
    }
  };
  sendSegments(rank, 0, c.stepDeadline());
  for (uint32_t t = 0; t < steps; ++t) {
    size_t b = t < n - 1 ? (rank + 2 * n - t - 1) % n : (rank + 2 * n - (t - (n - 1))) % n;
    Deadline d = c.stepDeadline();
    for (size_t j = 0; j < c.segments(blocks.len(b)); ++j) {
      size_t off = j * c.segElems(), len = std::min(c.segElems(), blocks.len(b) - off);
      char* dst = c.at(blocks.start(b) + off);
      Frame f = c.recv(left, t, static_cast<uint32_t>(j), len, epoch, d);
      if (t < n - 1) {
        c.reduce(dst, Collective::elements(f), len);
      } else {
        std::memcpy(dst, Collective::elements(f), len * elementSize(o.dtype));
      }
      if (t + 1 < steps) c.send(right, t + 1, static_cast<uint32_t>(j), dst, len, d);
    }
  }
}

// Fewer elements than ranks: everyone sends to rank 0, which sums in rank order and broadcasts.
void gatherBroadcast(Collective& c, const AllreduceOptions& o) {
  const size_t n = o.group.size();
  Deadline d = c.stepDeadline();
  if (o.rank != 0) {
    uint64_t epoch = c.epochOf(0);
    c.send(0, 0, 0, c.at(0), o.count, d);
    Frame f = c.recv(0, 1, 0, o.count, epoch, c.stepDeadline());
    std::memcpy(c.at(0), Collective::elements(f), o.count * elementSize(o.dtype));
    return;
  }
  std::vector<uint64_t> epochs(n);
  for (size_t r = 1; r < n; ++r) epochs[r] = c.epochOf(r);
  for (size_t r = 1; r < n; ++r) {
    Frame f = c.recv(r, 0, 0, o.count, epochs[r], d);
    c.reduce(c.at(0), Collective::elements(f), o.count);
  }
  d = c.stepDeadline();
  for (size_t r = 1; r < n; ++r) c.send(r, 1, 0, c.at(0), o.count, d);
}

}  // namespace

void allreduce(Communicator& comm, const AllreduceOptions& o) {
  const size_t n = o.group.size();
  FL_ENFORCE(n >= 1, "all-reduce group is empty");
  FL_ENFORCE(n <= 0xffff, "all-reduce group of ", n, " ranks is too large");
  FL_ENFORCE(o.rank < n, "rank ", o.rank, " is outside the group of ", n);
  FL_ENFORCE(o.count == 0 || o.data != nullptr, "all-reduce data is null");
  FL_ENFORCE(o.timeoutSec > 0, "timeout must be > 0");
  if (n == 1 || o.count == 0) return;
  Collective c(comm, o);
  try {
    if (o.count >= n) {
      ringAllreduce(c, o);
    } else {
      gatherBroadcast(c, o);
    }
  } catch (const IoError&) {
    comm.mailbox().purge(o.tag);
    throw;
  }
}

}  // namespace fl::comm
