// Element-wise float kernels for aggregation, over raw pointers (no Python types).
#pragma once

#include <cstddef>

namespace fl::agg {

// acc[i] += src[i]
void accumulate(float* acc, const float* src, size_t n);
// acc[i] += w * src[i]
void accumulateScaled(float* acc, const float* src, float w, size_t n);
// x[i] *= s
void scale(float* x, float s, size_t n);
// x[i] /= d  (exact division, not multiplication by 1/d)
void divide(float* x, double d, size_t n);
// true when no element is NaN or +-Inf
bool allFinite(const float* x, size_t n);

}  // namespace fl::agg
