// DIFF_SPARSE_QUANT keep-mask (spec §6): the device and the server rebuild the same 0/1 mask from the seed.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fl::compress {

// Number of kept elements: float32(param_num) * rate, truncated (as the Java device computes it).
size_t retainCount(size_t param_num, float rate);

// Fills out[0, param_num) with retainCount ones first, then shuffles with the Park-Miller style generator
// seeded by `seed` (the iteration), every int step wrapping around like a Java int.
void buildSparseMask(int32_t seed, float rate, size_t param_num, uint8_t* out);

}  // namespace fl::compress
