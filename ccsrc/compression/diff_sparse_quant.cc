// DIFF_SPARSE_QUANT decode + accumulate. Built with -ffp-contract=off: every float op rounds like the
// reference's (no fused multiply-add).
#include "compression/diff_sparse_quant.h"

#include <cfloat>
#include <cmath>
#include <cstring>

namespace fl::compress {
namespace {

constexpr float kLevels = 255.0f;
constexpr float kHalfRange = 128.0f;
constexpr float kEps = 1e-10f;

float quantScale(float min_val, float max_val) { return (max_val - min_val) / kLevels + kEps; }

size_t countOnes(const uint8_t* m, size_t n) {
  size_t ones = 0;
  for (size_t i = 0; i < n; ++i) ones += m[i];
  return ones;
}

std::string checkRange(const DsqSegment& s, size_t index, double max_data_size) {
  std::string where = "weight #" + std::to_string(index);
  if (!std::isfinite(s.min_val) || !std::isfinite(s.max_val)) return where + ": min/max not finite";
  if (s.min_val > s.max_val) return where + ": min > max";
  float scale = quantScale(s.min_val, s.max_val);
  // Largest decoded magnitude, with room for the float32 rounding of each step.
  double decoded = std::fmax(std::fabs(s.min_val), std::fabs(s.max_val)) + 2.0 * kLevels * scale;
  double bound = decoded + max_data_size * s.latest_absmax;
  if (!std::isfinite(scale) || !(bound < static_cast<double>(FLT_MAX) / 2)) {
    return where + ": values out of the float32 range";
  }
  return {};
}

}  // namespace

std::string checkDiffSparseQuant(const uint8_t* mask, size_t param_num, const std::vector<DsqSegment>& segs,
                                 double max_data_size) {
  size_t offset = 0;
  for (size_t k = 0; k < segs.size(); ++k) {
    const DsqSegment& s = segs[k];
    if (s.size > param_num - offset) return "the weights hold more elements than the mask";
    size_t kept = countOnes(mask + offset, s.size);
    offset += s.size;
    if (kept != s.code_count) {
      return "weight #" + std::to_string(k) + ": " + std::to_string(s.code_count) +
             " codes, the mask keeps " + std::to_string(kept);
    }
    if (kept > 0) {
      std::string problem = checkRange(s, k, max_data_size);
      if (!problem.empty()) return problem;
    }
  }
  if (offset != param_num) return "the weights hold fewer elements than the mask";
  return {};
}

void addDiffSparseQuant(const uint8_t* mask, const std::vector<DsqSegment>& segs, float data_size) {
  size_t offset = 0;
  for (const DsqSegment& s : segs) {
    const uint8_t* m = mask + offset;
    offset += s.size;
    if (s.acc == nullptr) continue;
    float* acc = s.acc;
    const float* latest = s.latest;
    if (s.code_count == 0) {  // nothing kept in this weight: only the data_size-weighted latest model
      for (size_t i = 0; i < s.size; ++i) acc[i] += 0.0f + data_size * latest[i];
      continue;
    }
    // The dequantized value of each of the 256 codes, computed once with the reference's float ops.
    const float scale = quantScale(s.min_val, s.max_val);
    float table[256];
    for (int c = -128; c < 128; ++c)
      table[c + 128] = (static_cast<float>(c) + kHalfRange) * scale + s.min_val;
    const int8_t* q = s.codes;
    const size_t last = s.code_count - 1;
    // Branch-free over the random mask: every element looks up the next code's value and keeps it or 0.
    size_t k = 0;
    for (size_t i = 0; i < s.size; ++i) {
      const uint32_t keep = m[i];
      const float value = table[static_cast<int>(q[k < last ? k : last]) + 128];
      // diff = keep ? value : +0.0f, as a bit mask so the compiler cannot turn it back into a branch
      uint32_t bits;
      std::memcpy(&bits, &value, sizeof(bits));
      bits &= 0u - keep;
      float diff;
      std::memcpy(&diff, &bits, sizeof(diff));
      k += keep;
      acc[i] += diff + data_size * latest[i];
    }
  }
}

}  // namespace fl::compress
