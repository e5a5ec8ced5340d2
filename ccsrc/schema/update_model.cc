// One-pass reader of a verified RequestUpdateModel (the hot path of every accepted update).
#include "schema/update_model.h"

#include <cmath>

#include "aggregation/kernels.h"
#include "schema/fl_job_generated.h"

namespace fl::schema {

namespace fbs = mindspore::fl::schema;

UpdateModelView readUpdateModel(const uint8_t* body, size_t size) {
  (void)size;
  UpdateModelView view;
  const auto* req = flatbuffers::GetRoot<fbs::RequestUpdateModel>(body);
  view.iteration = req->iteration();
  view.upload_loss = req->upload_loss();
  view.upload_accuracy = req->upload_accuracy();
  view.sign = req->sign();
  // A feature_map left out is a schema failure (as the reference); a present but empty one is checked later.
  bool ok = req->fl_id() != nullptr && req->fl_id()->size() > 0 && req->timestamp() != nullptr &&
            req->feature_map() != nullptr && std::isfinite(view.upload_loss) &&
            std::isfinite(view.upload_accuracy);
  if (req->fl_id() != nullptr) view.fl_id = req->fl_id()->str();
  if (const auto* fms = req->feature_map()) {
    view.features.reserve(fms->size());
    for (const auto* fm : *fms) {
      FeatureSpan span;
      if (fm == nullptr || fm->weight_fullname() == nullptr || fm->data() == nullptr) {
        ok = false;
        continue;
      }
      span.name = fm->weight_fullname()->str();
      const float* data = fm->data()->data();
      span.count = fm->data()->size();
      span.offset = static_cast<size_t>(reinterpret_cast<const uint8_t*>(data) - body);
      span.finite = agg::allFinite(data, span.count);
      view.features.push_back(std::move(span));
    }
  }
  view.fields_ok = ok;
  return view;
}

}  // namespace fl::schema
