// DIFF_SPARSE_QUANT kernels: the keep-mask against golden values of the rule, the checks, and the decode
// against a plain reference loop.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "compression/diff_sparse_quant.h"
#include "compression/sparse_mask.h"

namespace {

std::vector<size_t> kept(int32_t seed, float rate, size_t n) {
  std::vector<uint8_t> mask(n);
  fl::compress::buildSparseMask(seed, rate, n, mask.data());
  std::vector<size_t> out;
  for (size_t i = 0; i < n; ++i) {
    if (mask[i]) out.push_back(i);
  }
  return out;
}

TEST(SparseMask, GoldenValues) {
  EXPECT_EQ(kept(1, 0.4f, 10), (std::vector<size_t>{4, 6, 8, 9}));
  EXPECT_EQ(kept(2147483647, 0.3f, 20), (std::vector<size_t>{4, 7, 13, 14, 16, 18}));
  EXPECT_EQ(kept(-2147483647 - 1, 0.5f, 16), (std::vector<size_t>{0, 3, 4, 6, 8, 9, 10, 12}));
  EXPECT_EQ(kept(100000, 0.25f, 12), (std::vector<size_t>{0, 1, 7}));
}

TEST(SparseMask, RetainCountIsFloat32Truncation) {
  EXPECT_EQ(fl::compress::retainCount(61706, 0.4f), static_cast<size_t>(61706.0f * 0.4f));
  EXPECT_EQ(kept(3, 0.4f, 61706).size(), fl::compress::retainCount(61706, 0.4f));
  EXPECT_EQ(kept(3, 1.0f, 100).size(), 100u);
  EXPECT_EQ(kept(3, 0.0f, 100).size(), 0u);
  EXPECT_TRUE(kept(3, 0.5f, 0).empty());
}

struct Upload {
  std::vector<uint8_t> mask;
  std::vector<std::vector<int8_t>> codes;
  std::vector<std::vector<float>> latest, acc;
  std::vector<fl::compress::DsqSegment> segs;
};

Upload makeUpload(const std::vector<size_t>& sizes, int32_t seed, float rate, unsigned rng_seed) {
  std::mt19937 gen(rng_seed);
  std::uniform_int_distribution<int> code(-128, 127);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Upload up;
  size_t total = 0;
  for (size_t s : sizes) total += s;
  up.mask.resize(total);
  fl::compress::buildSparseMask(seed, rate, total, up.mask.data());
  size_t offset = 0;
  for (size_t s : sizes) {
    size_t ones = 0;
    for (size_t i = 0; i < s; ++i) ones += up.mask[offset + i];
    std::vector<int8_t> c(ones);
    for (auto& x : c) x = static_cast<int8_t>(code(gen));
    std::vector<float> l(s);
    double absmax = 0;
    for (auto& x : l) {
      x = normal(gen);
      absmax = std::fmax(absmax, std::fabs(x));
    }
    up.codes.push_back(std::move(c));
    up.latest.push_back(std::move(l));
    up.acc.emplace_back(s, 0.5f);
    fl::compress::DsqSegment seg;
    seg.code_count = ones;
    seg.min_val = -0.25f;
    seg.max_val = 0.75f;
    seg.size = s;
    seg.latest_absmax = absmax;
    up.segs.push_back(seg);
    offset += s;
  }
  for (size_t k = 0; k < sizes.size(); ++k) {
    up.segs[k].codes = up.codes[k].data();
    up.segs[k].latest = up.latest[k].data();
    up.segs[k].acc = up.acc[k].data();
  }
  return up;
}

TEST(DiffSparseQuant, DecodeMatchesReferenceLoop) {
  Upload up = makeUpload({300, 17, 1024}, 9, 0.4f, 1);
  ASSERT_EQ(fl::compress::checkDiffSparseQuant(up.mask.data(), up.mask.size(), up.segs, 65535.0), "");
  fl::compress::addDiffSparseQuant(up.mask.data(), up.segs, 12.0f);
  size_t offset = 0;
  for (size_t k = 0; k < up.segs.size(); ++k) {
    volatile float scale = (0.75f - -0.25f) / 255.0f;  // volatile: each step rounded to float
    scale = scale + 1e-10f;
    size_t q = 0;
    for (size_t i = 0; i < up.segs[k].size; ++i) {
      volatile float diff = 0.0f;
      if (up.mask[offset + i]) {
        volatile float t = static_cast<float>(up.codes[k][q++]) + 128.0f;
        t = t * scale;
        diff = t + -0.25f;
      }
      volatile float weighted = 12.0f * up.latest[k][i];
      volatile float value = diff + weighted;
      float expect = 0.5f + value;
      ASSERT_EQ(up.acc[k][i], expect) << "weight " << k << " index " << i;
    }
    offset += up.segs[k].size;
  }
}

TEST(DiffSparseQuant, ChecksDescribeTheProblem) {
  Upload up = makeUpload({100, 50}, 4, 0.5f, 2);
  auto check = [&](const std::vector<fl::compress::DsqSegment>& segs) {
    return fl::compress::checkDiffSparseQuant(up.mask.data(), up.mask.size(), segs, 65535.0);
  };
  auto segs = up.segs;
  segs[1].code_count += 1;
  EXPECT_NE(check(segs).find("codes"), std::string::npos);
  segs = up.segs;
  segs[0].min_val = 2.0f;
  EXPECT_NE(check(segs).find("min > max"), std::string::npos);
  segs = up.segs;
  segs[0].max_val = NAN;
  EXPECT_NE(check(segs).find("not finite"), std::string::npos);
  segs = up.segs;
  segs[0].latest_absmax = 1e36;
  EXPECT_NE(check(segs).find("float32 range"), std::string::npos);
  segs = up.segs;
  segs.pop_back();
  EXPECT_NE(check(segs).find("fewer"), std::string::npos);
  segs = up.segs;
  segs[1].size += 1;
  EXPECT_NE(check(segs).find("more"), std::string::npos);
  EXPECT_EQ(check(up.segs), "");
}

}  // namespace
