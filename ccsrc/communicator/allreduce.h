// All-reduce (sum) over a group of Communicators, on raw buffers: ring reduce-scatter + all-gather
// when there are at least as many elements as ranks, otherwise reduce to rank 0 + broadcast.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "communicator/communicator.h"
#include "communicator/mailbox.h"

namespace fl::comm {

// Frames are cut into segments of at most this many bytes so receiving, reducing and forwarding
// overlap; tests lower it to exercise multi-segment paths on small buffers.
constexpr size_t kDefaultSegmentBytes = 1u << 20;

struct AllreduceOptions {
  std::vector<std::string> group;  // peer addresses incl. self, in the same order on every rank
  size_t rank = 0;                 // our index in `group`
  void* data = nullptr;            // summed in place
  size_t count = 0;                // elements
  DataType dtype = DataType::kFloat32;
  uint64_t tag = 0;          // distinguishes concurrent collectives (e.g. the iteration number)
  double timeoutSec = 30.0;  // per step
  size_t segmentBytes = kDefaultSegmentBytes;
};

// Every rank ends with the element-wise sum. Throws TimeoutError/IoError naming the peer that
// stalled or died (frames of `tag` still buffered are then dropped), EnforceError on bad options.
void allreduce(Communicator& comm, const AllreduceOptions& opts);

}  // namespace fl::comm
