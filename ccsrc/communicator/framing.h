// Wire framing: a fixed 32-byte little-endian header (magic, version, type, flags, message type,
// request id, payload length) followed by the payload; an incremental decoder enforces the size limit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string_view>

#include "communicator/buffer_pool.h"

namespace fl::comm {

constexpr uint32_t kFrameMagic = 0x4346534d;  // "MSFC" on the wire
constexpr uint16_t kFrameVersion = 1;
constexpr size_t kHeaderBytes = 32;

enum class FrameType : uint16_t {
  kHello = 1,       // payload: the sender's listening address; first frame of every outbound connection
  kRequest = 2,     // msgType + requestId chosen by the requester
  kReply = 3,       // requestId echoed
  kErrorReply = 4,  // requestId echoed, payload is the error text
  kCollective = 5,  // payload: CollectiveMeta + raw elements (see mailbox.h)
};

struct FrameHeader {
  uint32_t magic = kFrameMagic;
  uint16_t version = kFrameVersion;
  FrameType type = FrameType::kRequest;
  uint32_t flags = 0;
  uint32_t msgType = 0;
  uint64_t requestId = 0;
  uint64_t payloadLen = 0;
};

// An owned, uninitialised byte buffer from the BufferPool (std::vector would zero-fill megabytes).
struct Bytes {
  std::unique_ptr<char[], PooledDeleter> data;
  size_t size = 0;

  static Bytes allocate(size_t n) {
    size_t capacity = 0;
    char* p = BufferPool::instance().acquire(n, &capacity);
    return Bytes{std::unique_ptr<char[], PooledDeleter>(p, PooledDeleter{capacity}), n};
  }
  std::string_view view() const { return std::string_view(data.get(), size); }
};

struct Frame {
  FrameHeader header;
  Bytes payload;
};

void encodeHeader(const FrameHeader& h, unsigned char out[kHeaderBytes]);
FrameHeader decodeHeader(const unsigned char in[kHeaderBytes]);
// Throws IoError when the magic/version/type is wrong or the payload exceeds `maxPayload` bytes.
void checkHeader(const FrameHeader& h, uint64_t maxPayload);
// Header (payloadLen filled in) followed by the concatenated parts, ready to write.
Bytes encodeFrame(FrameHeader h, std::initializer_list<std::string_view> parts);

// Incremental decoder: the reader writes into buffer() and reports the count via commit();
// payload bytes land directly in the frame, without an intermediate copy.
class FrameDecoder {
 public:
  explicit FrameDecoder(uint64_t maxPayload) : maxPayload_(maxPayload) {}

  // Where the next received bytes belong; never empty.
  char* bufferData();
  size_t bufferSize() const;
  // Accounts for `n` bytes written at bufferData(); true when a whole frame is ready for take().
  // Throws IoError on a malformed or oversized header.
  bool commit(size_t n);
  Frame take();

 private:
  uint64_t maxPayload_;
  unsigned char header_[kHeaderBytes] = {0};
  size_t headerHave_ = 0;
  bool inPayload_ = false;
  size_t payloadHave_ = 0;
  Frame frame_;
};

}  // namespace fl::comm
