// Verifier: valid buffers pass, every mutated/truncated buffer returns a bool without crashing.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "common/error.h"
#include "schema/fl_job_generated.h"
#include "schema/verifier.h"

namespace fbs = mindspore::fl::schema;

namespace {

std::vector<uint8_t> makeUpdateModel(bool with_identifier) {
  flatbuffers::FlatBufferBuilder b;
  std::vector<float> data(100, 0.5f);
  auto fm = fbs::CreateFeatureMap(b, b.CreateString("conv1.weight"), b.CreateVector(data));
  std::vector<flatbuffers::Offset<fbs::FeatureMap>> fms{fm};
  auto req = fbs::CreateRequestUpdateModel(b, b.CreateString("fl"), b.CreateString("id1"), 3,
                                           b.CreateVector(fms), b.CreateString("123"));
  if (with_identifier) {
    b.Finish(req, "FLJ0");
  } else {
    b.Finish(req);
  }
  return {b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize()};
}

TEST(Verifier, AcceptsValidBufferWithAndWithoutIdentifier) {
  for (bool ident : {false, true}) {
    auto buf = makeUpdateModel(ident);
    EXPECT_TRUE(fl::schema::verify("RequestUpdateModel", buf.data(), buf.size()));
  }
}

TEST(Verifier, RejectsEmptyAndTinyBuffers) {
  uint8_t b[3] = {1, 2, 3};
  EXPECT_FALSE(fl::schema::verify("RequestFLJob", nullptr, 0));
  EXPECT_FALSE(fl::schema::verify("RequestFLJob", b, sizeof(b)));
}

TEST(Verifier, UnknownTableThrows) {
  uint8_t b[8] = {};
  EXPECT_THROW(fl::schema::verify("NoSuchTable", b, sizeof(b)), fl::EnforceError);
}

TEST(Verifier, MisalignedStartIsHandled) {
  auto buf = makeUpdateModel(false);
  std::vector<uint8_t> shifted(buf.size() + 1);
  std::copy(buf.begin(), buf.end(), shifted.begin() + 1);
  EXPECT_TRUE(fl::schema::verify("RequestUpdateModel", shifted.data() + 1, buf.size()));
}

TEST(Verifier, FuzzedBuffersNeverCrash) {
  auto good = makeUpdateModel(false);
  std::mt19937 gen(42);
  auto names = fl::schema::tableNames();
  size_t rejected = 0;
  for (int i = 0; i < 20000; ++i) {
    auto buf = good;
    switch (i % 4) {
      case 0:  // flipped bytes
        for (int k = 0; k < 1 + i % 7; ++k) buf[gen() % buf.size()] ^= static_cast<uint8_t>(1 + gen() % 255);
        break;
      case 1:  // truncated
        buf.resize(gen() % buf.size());
        break;
      case 2: {  // huge vector length / offset
        size_t pos = (gen() % (buf.size() / 4)) * 4;
        uint32_t v = 0xFFFFFFF0u - (gen() % 64);
        std::memcpy(buf.data() + pos, &v, 4);
        break;
      }
      default:  // random bytes
        for (auto& x : buf) x = static_cast<uint8_t>(gen());
    }
    const auto& table = names[i % names.size()];
    bool ok = fl::schema::verify(table, buf.data(), buf.size());
    if (!ok) ++rejected;
  }
  EXPECT_GT(rejected, 10000u);
}

}  // namespace
