// Framing: header/meta round trips, incremental decoding, the max frame size and bad headers.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "common/error.h"
#include "communicator/communicator.h"
#include "communicator/framing.h"
#include "communicator/mailbox.h"

namespace {

using namespace fl::comm;

FrameHeader requestHeader(uint32_t msgType, uint64_t id) {
  FrameHeader h;
  h.type = FrameType::kRequest;
  h.flags = 0xa5a5;
  h.msgType = msgType;
  h.requestId = id;
  return h;
}

// Feeds `wire` into a decoder at most `step` bytes at a time; returns the decoded frames.
std::vector<Frame> decodeAll(const std::string& wire, size_t step, uint64_t maxPayload) {
  FrameDecoder dec(maxPayload);
  std::vector<Frame> out;
  size_t pos = 0;
  while (pos < wire.size()) {
    size_t n = std::min({step, dec.bufferSize(), wire.size() - pos});
    std::memcpy(dec.bufferData(), wire.data() + pos, n);
    pos += n;
    if (dec.commit(n)) out.push_back(dec.take());
  }
  return out;
}

std::string wireOf(const FrameHeader& h, const std::string& payload) {
  Bytes b = encodeFrame(h, {payload});
  return std::string(b.view());
}

TEST(CommFraming, HeaderRoundTrip) {
  FrameHeader h = requestHeader(0xdeadbeef, 0x0102030405060708ull);
  h.payloadLen = 77;
  unsigned char buf[kHeaderBytes];
  encodeHeader(h, buf);
  FrameHeader d = decodeHeader(buf);
  EXPECT_EQ(d.magic, kFrameMagic);
  EXPECT_EQ(d.version, kFrameVersion);
  EXPECT_EQ(d.type, FrameType::kRequest);
  EXPECT_EQ(d.flags, 0xa5a5u);
  EXPECT_EQ(d.msgType, 0xdeadbeefu);
  EXPECT_EQ(d.requestId, 0x0102030405060708ull);
  EXPECT_EQ(d.payloadLen, 77u);
}

TEST(CommFraming, DecoderHandlesAnySplit) {
  std::string payload(1000, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 7);
  std::string wire = wireOf(requestHeader(3, 9), payload) + wireOf(requestHeader(4, 10), "") +
                     wireOf(requestHeader(5, 11), "xyz");
  for (size_t step : {size_t{1}, size_t{5}, size_t{32}, size_t{4096}}) {
    auto frames = decodeAll(wire, step, 1 << 20);
    ASSERT_EQ(frames.size(), 3u) << "step " << step;
    EXPECT_EQ(frames[0].header.msgType, 3u);
    EXPECT_EQ(frames[0].payload.view(), payload);
    EXPECT_EQ(frames[1].header.requestId, 10u);
    EXPECT_EQ(frames[1].payload.size, 0u);
    EXPECT_EQ(frames[2].payload.view(), "xyz");
  }
}

TEST(CommFraming, MaxSizeAcceptedOversizeRejected) {
  const uint64_t kMax = 4096;
  auto ok = decodeAll(wireOf(requestHeader(1, 1), std::string(kMax, 'a')), 1 << 20, kMax);
  ASSERT_EQ(ok.size(), 1u);
  EXPECT_EQ(ok[0].payload.size, kMax);
  std::string oversize = wireOf(requestHeader(1, 2), std::string(kMax + 1, 'a'));
  EXPECT_THROW(decodeAll(oversize, 1 << 20, kMax), fl::IoError);
}

TEST(CommFraming, BadMagicVersionTypeRejected) {
  FrameHeader h = requestHeader(1, 1);
  h.magic = 0x12345678;
  EXPECT_THROW(checkHeader(h, 100), fl::IoError);
  h = requestHeader(1, 1);
  h.version = 99;
  EXPECT_THROW(checkHeader(h, 100), fl::IoError);
  h = requestHeader(1, 1);
  h.type = static_cast<FrameType>(42);
  EXPECT_THROW(checkHeader(h, 100), fl::IoError);
}

TEST(CommFraming, CollectiveMetaRoundTrip) {
  CollectiveMeta m{0xfedcba9876543210ull, 1000000, 7, 13, 4, DataType::kFloat64, 8};
  unsigned char buf[kCollectiveMetaBytes];
  encodeMeta(m, buf);
  CollectiveMeta d = decodeMeta(buf);
  EXPECT_EQ(d.tag, m.tag);
  EXPECT_EQ(d.count, m.count);
  EXPECT_EQ(d.srcRank, 7u);
  EXPECT_EQ(d.step, 13u);
  EXPECT_EQ(d.chunk, 4u);
  EXPECT_EQ(d.dtype, DataType::kFloat64);
  EXPECT_EQ(d.groupSize, 8u);
}

// A peer rejecting an oversized frame closes the connection: the request fails at once, not by timeout.
TEST(CommFraming, OversizeFrameClosesConnection) {
  CommunicatorOptions small;
  small.maxFrameBytes = 1024;
  Communicator server(small), client;
  server.start();
  client.start();
  auto start = Clock::now();
  EXPECT_THROW(client.request(server.address(), 1, std::string(2048, 'x'), 5.0), fl::IoError);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
  // Frames up to the limit still get through on a fresh connection.
  std::thread answer([&] {
    auto until = Clock::now() + std::chrono::seconds(5);
    while (Clock::now() < until) {
      auto reqs = server.pollRequests(8);
      for (auto& r : reqs) server.reply(r.id, "ok", "");
      if (!reqs.empty()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  EXPECT_EQ(client.request(server.address(), 1, std::string(1024, 'x'), 5.0).view(), "ok");
  answer.join();
}

}  // namespace
