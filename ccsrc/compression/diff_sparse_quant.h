// DIFF_SPARSE_QUANT upload decoding straight into the FedAvg accumulator (spec §6).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace fl::compress {

// One weight of an upload, in name_vec order.
struct DsqSegment {
  const int8_t* codes = nullptr;  // the kept elements' int8 codes
  size_t code_count = 0;
  float min_val = 0.0f;
  float max_val = 0.0f;
  const float* latest = nullptr;  // the weight in the model the device trained from
  size_t size = 0;                // elements of the weight
  double latest_absmax = 0.0;     // max |latest[i]|
  float* acc = nullptr;           // the weight's accumulator; nullptr: decoded and dropped (not aggregated)
};

// Empty when the upload can be decoded: the segments cover the mask exactly, every weight carries as many
// codes as the mask keeps in it, and min/max are finite, ordered and give finite weights for any
// data_size <= max_data_size. Otherwise a short description of the first problem.
std::string checkDiffSparseQuant(const uint8_t* mask, size_t param_num, const std::vector<DsqSegment>& segs,
                                 double max_data_size);

// For each weight: acc[i] += (mask ? (q + 128) * scale + min : 0) + data_size * latest[i], float32 as the
// reference (scale = (max - min) / 255 + 1e-10). The upload must have passed checkDiffSparseQuant.
void addDiffSparseQuant(const uint8_t* mask, const std::vector<DsqSegment>& segs, float data_size);

}  // namespace fl::compress
