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

struct UpdateModelView {
  bool fields_ok = false;  // fl_id, timestamp, every feature's name + data, finite loss/accuracy
  std::string fl_id;
  int32_t iteration = 0;
  float upload_loss = 0.0f;
  float upload_accuracy = 0.0f;
  int32_t sign = 0;
  std::vector<FeatureSpan> features;
};

// `body` must already have passed verify("RequestUpdateModel", ...).
UpdateModelView readUpdateModel(const uint8_t* body, size_t size);

}  // namespace fl::schema
