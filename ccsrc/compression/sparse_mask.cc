// The keep-mask shuffle: 32-bit signed arithmetic that wraps (done in uint32 to stay defined in C++).
#include "compression/sparse_mask.h"

#include <cstring>
#include <utility>

namespace fl::compress {
namespace {

constexpr int32_t kModulus = 2147483647;  // 2^31 - 1
constexpr int32_t kMultiplier = 48271;
constexpr double kSpan = 4294967294.0;  // 2 * (2^31 - 1): maps the signed state into (0, 1)

int32_t wrapAdd(int32_t a, int32_t b) {
  return static_cast<int32_t>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b));
}

int32_t wrapMul(int32_t a, int32_t b) {
  return static_cast<int32_t>(static_cast<uint32_t>(a) * static_cast<uint32_t>(b));
}

// One generator step: (state * 48271) % (2^31 - 1) with Java int semantics (wrapping product, remainder
// truncated towards zero, so it keeps the sign of the product).
int32_t step(int32_t state) { return wrapMul(state, kMultiplier) % kModulus; }

}  // namespace

size_t retainCount(size_t param_num, float rate) {
  return static_cast<size_t>(static_cast<float>(param_num) * rate);
}

void buildSparseMask(int32_t seed, float rate, size_t param_num, uint8_t* out) {
  size_t retain = retainCount(param_num, rate);
  if (retain > param_num) retain = param_num;
  std::memset(out, 1, retain);
  std::memset(out + retain, 0, param_num - retain);
  int32_t state = step(wrapAdd(seed, kModulus));
  for (size_t i = 0; i < param_num; ++i) {
    double rand = static_cast<double>(state) / kSpan + 0.5;
    state = step(state);
    size_t j = static_cast<size_t>(rand * static_cast<double>(param_num - i)) + i;
    if (j >= param_num) j = param_num - 1;  // unreachable for |state| < 2^31 - 1; keeps the index in range
    std::swap(out[i], out[j]);
  }
}

}  // namespace fl::compress
