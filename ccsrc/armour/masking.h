// Mask expansion for PW_ENCRYPT: an AES-256-CTR keystream read as int32 values, added straight into a float
// accumulator without a model-sized temporary.
#pragma once

#include <cstddef>
#include <vector>

#include "armour/ossl.h"

namespace fl::armour {

constexpr size_t kIvBytes = 16;

// Element k of the mask of (key, iv) is m_k = float(v_k) / INT32_MAX in float32 arithmetic (the int32 max
// converts to 2^31 in float, so this is float(v_k) * 2^-31 exactly), where v_k is the k-th little-endian
// int32 of AES-256-CTR(key, iv) over zero bytes (the 128-bit IV is the big-endian block counter).
//
// AddMask: for i in [0, n): acc[i] = acc[i] + float(scale) * m_{offset+i}, every step rounded to float32.
void AddMask(float* acc, size_t n, const Bytes& key, const Bytes& iv, float scale, size_t offset);

struct MaskJob {
  Bytes key;
  Bytes iv;
  float scale;
};

// AddMask(acc, n, job.key, job.iv, job.scale, 0) for every job, in order. With threads != 1 (0: all cores)
// large batches are split into slices of acc, one per thread, each slice adding every job in order, so the
// result is bit-identical to the sequential one.
void AddMasks(float* acc, size_t n, const std::vector<MaskJob>& jobs, int threads = 1);

}  // namespace fl::armour
