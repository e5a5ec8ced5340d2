// Element-wise float kernels: simple loops the compiler vectorises at -O3.
#include "aggregation/kernels.h"

#include <cstdint>
#include <cstring>

namespace fl::agg {

void accumulate(float* __restrict acc, const float* __restrict src, size_t n) {
  for (size_t i = 0; i < n; ++i) acc[i] += src[i];
}

void accumulateScaled(float* __restrict acc, const float* __restrict src, float w, size_t n) {
  for (size_t i = 0; i < n; ++i) acc[i] += w * src[i];
}

void scale(float* x, float s, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] *= s;
}

void divide(float* x, double d, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] = static_cast<float>(static_cast<double>(x[i]) / d);
}

bool allFinite(const float* x, size_t n) {
  // A float is finite iff its exponent bits are not all ones. Branch-free OR-reduction per block
  // keeps the loop vectorisable; early exit per block.
  constexpr uint32_t kExp = 0x7f800000u;
  constexpr size_t kBlock = 4096;
  for (size_t start = 0; start < n; start += kBlock) {
    size_t end = start + kBlock < n ? start + kBlock : n;
    uint32_t bad = 0;
    for (size_t i = start; i < end; ++i) {
      uint32_t bits;
      std::memcpy(&bits, x + i, sizeof(bits));
      bad |= static_cast<uint32_t>((bits & kExp) == kExp);
    }
    if (bad) return false;
  }
  return true;
}

}  // namespace fl::agg
