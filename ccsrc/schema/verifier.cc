// Verifier dispatch: one entry per schema table, built on flatbuffers::Verifier.
#include "schema/verifier.h"

#include <cstring>
#include <functional>
#include <unordered_map>
#include <vector>

#include "common/error.h"
#include "schema/fl_job_generated.h"

namespace fl::schema {
namespace {

namespace fbs = mindspore::fl::schema;
using VerifyFn = bool (*)(const uint8_t*, size_t);

template <typename T>
bool verifyAs(const uint8_t* body, size_t size) {
  if (body == nullptr || size < sizeof(flatbuffers::uoffset_t) || size >= FLATBUFFERS_MAX_BUFFER_SIZE) {
    return false;
  }
  flatbuffers::Verifier verifier(body, size, kMaxDepth, kMaxTables);
  return verifier.VerifyBuffer<T>(nullptr);
}

#define FL_TABLE(name) \
  { #name, &verifyAs < fbs::name> }
const std::unordered_map<std::string, VerifyFn>& registry() {
  static const std::unordered_map<std::string, VerifyFn> kTables = {
      // fl_job.fbs
      FL_TABLE(RequestFLJob),
      FL_TABLE(ResponseFLJob),
      FL_TABLE(FLPlan),
      FL_TABLE(RequestUpdateModel),
      FL_TABLE(ResponseUpdateModel),
      FL_TABLE(RequestAsyncUpdateModel),
      FL_TABLE(ResponseAsyncUpdateModel),
      FL_TABLE(RequestPushWeight),
      FL_TABLE(ResponsePushWeight),
      FL_TABLE(RequestGetModel),
      FL_TABLE(ResponseGetModel),
      FL_TABLE(RequestAsyncGetModel),
      FL_TABLE(ResponseAsyncGetModel),
      FL_TABLE(RequestPullWeight),
      FL_TABLE(ResponsePullWeight),
      FL_TABLE(FeatureMapList),
      FL_TABLE(RequestPushMetrics),
      FL_TABLE(ResponsePushMetrics),
      // cipher.fbs
      FL_TABLE(RequestExchangeKeys),
      FL_TABLE(ResponseExchangeKeys),
      FL_TABLE(GetExchangeKeys),
      FL_TABLE(ReturnExchangeKeys),
      FL_TABLE(RequestShareSecrets),
      FL_TABLE(ResponseShareSecrets),
      FL_TABLE(GetShareSecrets),
      FL_TABLE(ReturnShareSecrets),
      FL_TABLE(GetClientList),
      FL_TABLE(ReturnClientList),
      FL_TABLE(SendClientListSign),
      FL_TABLE(ResponseClientListSign),
      FL_TABLE(RequestAllClientListSign),
      FL_TABLE(ReturnAllClientListSign),
      FL_TABLE(SendReconstructSecret),
      FL_TABLE(ReconstructSecret),
  };
  return kTables;
}
#undef FL_TABLE

}  // namespace

bool verify(const std::string& table, const uint8_t* body, size_t size) {
  const auto& tables = registry();
  auto it = tables.find(table);
  FL_ENFORCE(it != tables.end(), "unknown flatbuffers table '", table, "'");
  // Flatbuffers offsets are relative to the buffer start, so a misaligned start would make the
  // aligned-access checks fail spuriously: verify an aligned copy in that (rare) case.
  if (reinterpret_cast<uintptr_t>(body) % alignof(uint64_t) != 0) {
    std::vector<uint64_t> aligned((size + sizeof(uint64_t) - 1) / sizeof(uint64_t));
    if (size > 0) std::memcpy(aligned.data(), body, size);
    return it->second(reinterpret_cast<const uint8_t*>(aligned.data()), size);
  }
  return it->second(body, size);
}

bool isKnownTable(const std::string& table) { return registry().count(table) != 0; }

std::vector<std::string> tableNames() {
  std::vector<std::string> names;
  for (const auto& kv : registry()) names.push_back(kv.first);
  return names;
}

}  // namespace fl::schema
