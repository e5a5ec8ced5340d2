// Frame header encoding/validation and the incremental FrameDecoder.
#include "communicator/framing.h"

#include <cstring>

#include "common/error.h"
#include "communicator/byte_order.h"

namespace fl::comm {

void encodeHeader(const FrameHeader& h, unsigned char out[kHeaderBytes]) {
  putLe<uint32_t>(out + 0, h.magic);
  putLe<uint16_t>(out + 4, h.version);
  putLe<uint16_t>(out + 6, static_cast<uint16_t>(h.type));
  putLe<uint32_t>(out + 8, h.flags);
  putLe<uint32_t>(out + 12, h.msgType);
  putLe<uint64_t>(out + 16, h.requestId);
  putLe<uint64_t>(out + 24, h.payloadLen);
}

FrameHeader decodeHeader(const unsigned char in[kHeaderBytes]) {
  FrameHeader h;
  h.magic = getLe<uint32_t>(in + 0);
  h.version = getLe<uint16_t>(in + 4);
  h.type = static_cast<FrameType>(getLe<uint16_t>(in + 6));
  h.flags = getLe<uint32_t>(in + 8);
  h.msgType = getLe<uint32_t>(in + 12);
  h.requestId = getLe<uint64_t>(in + 16);
  h.payloadLen = getLe<uint64_t>(in + 24);
  return h;
}

void checkHeader(const FrameHeader& h, uint64_t maxPayload) {
  if (h.magic != kFrameMagic) throw IoError(FL_ERROR_MSG("bad frame magic ", h.magic));
  if (h.version != kFrameVersion) throw IoError(FL_ERROR_MSG("unsupported frame version ", h.version));
  auto t = static_cast<uint16_t>(h.type);
  if (t < static_cast<uint16_t>(FrameType::kHello) || t > static_cast<uint16_t>(FrameType::kCollective)) {
    throw IoError(FL_ERROR_MSG("unknown frame type ", t));
  }
  if (h.payloadLen > maxPayload) {
    throw IoError(
        FL_ERROR_MSG("frame payload of ", h.payloadLen, " bytes exceeds max_frame_bytes ", maxPayload));
  }
}

Bytes encodeFrame(FrameHeader h, std::initializer_list<std::string_view> parts) {
  size_t total = 0;
  for (auto p : parts) total += p.size();
  h.payloadLen = total;
  Bytes out = Bytes::allocate(kHeaderBytes + total);
  encodeHeader(h, reinterpret_cast<unsigned char*>(out.data.get()));
  size_t off = kHeaderBytes;
  for (auto p : parts) {
    if (!p.empty()) std::memcpy(out.data.get() + off, p.data(), p.size());
    off += p.size();
  }
  return out;
}

char* FrameDecoder::bufferData() {
  if (inPayload_) return frame_.payload.data.get() + payloadHave_;
  return reinterpret_cast<char*>(header_) + headerHave_;
}

size_t FrameDecoder::bufferSize() const {
  if (inPayload_) return frame_.payload.size - payloadHave_;
  return kHeaderBytes - headerHave_;
}

bool FrameDecoder::commit(size_t n) {
  if (inPayload_) {
    payloadHave_ += n;
    return payloadHave_ == frame_.payload.size;
  }
  headerHave_ += n;
  if (headerHave_ < kHeaderBytes) return false;
  frame_.header = decodeHeader(header_);
  checkHeader(frame_.header, maxPayload_);
  frame_.payload = Bytes::allocate(frame_.header.payloadLen);
  headerHave_ = 0;
  payloadHave_ = 0;
  inPayload_ = frame_.header.payloadLen > 0;
  return !inPayload_;
}

Frame FrameDecoder::take() {
  inPayload_ = false;
  payloadHave_ = 0;
  return std::move(frame_);
}

}  // namespace fl::comm
