// One-pass reader of a verified RequestUpdateModel: scalar fields, feature spans and finiteness.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace fl::schema {

struct FeatureSpan {
  std::string name;
  size_t offset = 0;  // byte offset of the float data inside the body
  size_t count = 0;   // number of floats
  bool finite = true;
};

// A CompressFeatureMap entry: int8 codes at `offset` (bytes into the body), `count` of them.
struct CompressSpan {
  std::string name;
  size_t offset = 0;
  size_t count = 0;
  float min_val = 0.0f;
  float max_val = 0.0f;
};

struct UpdateModelView {
  // fl_id, timestamp, finite loss/accuracy, and every feature's name + data (compressed uploads: every
  // compressed entry's name + codes; their feature_map may be left out)
  bool fields_ok = false;
  std::string fl_id;
  int32_t iteration = 0;
  float upload_loss = 0.0f;
  float upload_accuracy = 0.0f;
  int32_t sign = 0;
  std::vector<FeatureSpan> features;
  int32_t upload_compress_type = 0;  // 0 NO_COMPRESS: `features` carry the upload; else the fields below
  float upload_sparse_rate = 0.0f;
  std::vector<std::string> name_vec;
  std::vector<CompressSpan> compressed;
};

// `body` must already have passed verify("RequestUpdateModel", ...).
UpdateModelView readUpdateModel(const uint8_t* body, size_t size);

}  // namespace fl::schema
