// One-pass reader of a verified RequestUpdateModel (the hot path of every accepted update).
#include "schema/update_model.h"

#include <cmath>

#include "aggregation/kernels.h"
#include "schema/fl_job_generated.h"

namespace fl::schema {

namespace fbs = mindspore::fl::schema;

namespace {

// Reads the DIFF_SPARSE_QUANT fields; false when an entry lacks its name or codes.
bool readCompressed(const fbs::RequestUpdateModel* req, const uint8_t* body, UpdateModelView* view) {
  view->upload_sparse_rate = req->upload_sparse_rate();
  if (const auto* names = req->name_vec()) {
    view->name_vec.reserve(names->size());
    for (const auto* name : *names) view->name_vec.push_back(name == nullptr ? std::string() : name->str());
  }
  const auto* cfms = req->compress_feature_map();
  if (cfms == nullptr) return false;
  bool ok = true;
  view->compressed.reserve(cfms->size());
  for (const auto* cfm : *cfms) {
    if (cfm == nullptr || cfm->weight_fullname() == nullptr || cfm->compress_data() == nullptr) {
      ok = false;
      continue;
    }
    CompressSpan span;
    span.name = cfm->weight_fullname()->str();
    span.count = cfm->compress_data()->size();
    span.offset = static_cast<size_t>(reinterpret_cast<const uint8_t*>(cfm->compress_data()->data()) - body);
    span.min_val = cfm->min_val();
    span.max_val = cfm->max_val();
    view->compressed.push_back(std::move(span));
  }
  return ok;
}

}  // namespace

UpdateModelView readUpdateModel(const uint8_t* body, size_t size) {
  (void)size;
  UpdateModelView view;
  const auto* req = flatbuffers::GetRoot<fbs::RequestUpdateModel>(body);
  view.iteration = req->iteration();
  view.upload_loss = req->upload_loss();
  view.upload_accuracy = req->upload_accuracy();
  view.sign = req->sign();
  // A feature_map left out is a schema failure (as the reference); a present but empty one is checked later.
  view.upload_compress_type = static_cast<int32_t>(req->upload_compress_type());
  bool compressed = view.upload_compress_type != static_cast<int32_t>(fbs::CompressType_NO_COMPRESS);
  bool ok = req->fl_id() != nullptr && req->fl_id()->size() > 0 && req->timestamp() != nullptr &&
            (compressed || req->feature_map() != nullptr) && std::isfinite(view.upload_loss) &&
            std::isfinite(view.upload_accuracy);
  if (compressed && !readCompressed(req, body, &view)) ok = false;
  if (req->fl_id() != nullptr) view.fl_id = req->fl_id()->str();
  // A compressed upload is read from its compressed entries only (as the reference), its feature_map ignored.
  if (const auto* fms = compressed ? nullptr : req->feature_map()) {
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
