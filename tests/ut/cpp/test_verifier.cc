// Verifier: valid buffers pass; random and mutated buffers sent to EVERY table's verifier (and to the
// verify-then-read pass of updateModel) return a bool without crashing or hanging.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "schema/fl_job_generated.h"
#include "schema/update_model.h"
#include "schema/verifier.h"

namespace fbs = mindspore::fl::schema;
using flatbuffers::FlatBufferBuilder;
using flatbuffers::Offset;

namespace {

using Bytes = std::vector<uint8_t>;
using Clock = std::chrono::steady_clock;

constexpr size_t kBuffersPerTable = 26000;  // 13 strategies x 2000: >= 10,000 for every verifier
constexpr size_t kUpdateModelReads = 20000;

// ---- valid seeds: every table built with the generated builders, every field set (non-default) ----

Bytes byteRange(size_t n, uint8_t start) {
  Bytes v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(start + 7 * i);
  return v;
}

std::vector<Offset<flatbuffers::String>> strings(FlatBufferBuilder& b,
                                                 std::initializer_list<const char*> items) {
  std::vector<Offset<flatbuffers::String>> out;
  for (const char* s : items) out.push_back(b.CreateString(s));
  return out;
}

std::vector<Offset<fbs::FeatureMap>> featureMaps(FlatBufferBuilder& b) {
  std::vector<float> conv(24), fc(5), bias(3, 0.25f);
  for (size_t i = 0; i < conv.size(); ++i) conv[i] = 0.01f * static_cast<float>(i) - 0.1f;
  for (size_t i = 0; i < fc.size(); ++i) fc[i] = -1.5f + static_cast<float>(i);
  return {fbs::CreateFeatureMapDirect(b, "conv1.weight", &conv),
          fbs::CreateFeatureMapDirect(b, "fc3.weight", &fc),
          fbs::CreateFeatureMapDirect(b, "fc3.bias", &bias)};
}

std::vector<Offset<fbs::CompressFeatureMap>> compressFeatureMaps(FlatBufferBuilder& b) {
  std::vector<int8_t> q1{-128, -1, 0, 1, 127, 42}, q2{5, 6, 7};
  return {fbs::CreateCompressFeatureMapDirect(b, "conv1.weight", &q1, -0.5f, 0.5f),
          fbs::CreateCompressFeatureMapDirect(b, "fc3.bias", &q2, -2.0f, 3.0f)};
}

Offset<fbs::FLPlan> flPlan(FlatBufferBuilder& b) {
  std::vector<float> weights{0.5f, 0.25f, 0.25f};
  std::vector<int8_t> metrics{fbs::Metrics_accuracy, fbs::Metrics_recall, fbs::Metrics_f1};
  Bytes p = byteRange(32, 3), prime = byteRange(64, 11);
  auto early = fbs::CreateEarlyStop(b, fbs::EarlyStopType_weight_diff, 0.125f, 4);
  auto aggregation = fbs::CreateAggregationDirect(b, fbs::AggregationType_FedAdam, &weights);
  auto pw = fbs::CreatePWParamsDirect(b, 3, &p, 5, &prime);
  auto dp = fbs::CreateDPParams(b, 50.0f, 0.01f, 1.0f);
  auto ds = fbs::CreateDSParams(b, 0.01f, 100.0f, 0.6f, 0.1f, 7);
  auto cipher = fbs::CreateCipherPublicParamsDirect(b, "PW_ENCRYPT", pw, dp, ds);
  return fbs::CreateFLPlanDirect(b, "FEDERATED_LEARNING", "Lenet", 25, 20, early, 32, true, 0.01f,
                                 aggregation, &metrics, cipher);
}

std::vector<Offset<fbs::ClientShare>> clientShares(FlatBufferBuilder& b) {
  Bytes s1 = byteRange(40, 1), s2 = byteRange(40, 2);
  return {fbs::CreateClientShareDirect(b, "device_a", &s1, 1),
          fbs::CreateClientShareDirect(b, "device_b", &s2, 2)};
}

std::vector<Offset<fbs::ClientPublicKeys>> clientPublicKeys(FlatBufferBuilder& b) {
  std::vector<Offset<fbs::ClientPublicKeys>> out;
  for (const char* id : {"device_a", "device_b"}) {
    Bytes c_pk = byteRange(65, 4), s_pk = byteRange(65, 5), iv = byteRange(16, 6), salt = byteRange(32, 7),
          sig = byteRange(64, 8);
    auto chain = strings(b, {"leaf-cert", "ca-cert"});
    out.push_back(
        fbs::CreateClientPublicKeysDirect(b, id, &c_pk, &s_pk, &iv, &salt, "1700000000000", 3, &sig, &chain));
  }
  return out;
}

using SeedBuilder = std::function<flatbuffers::uoffset_t(FlatBufferBuilder&)>;

// One builder per table the verifier registry knows (a new table without a seed fails SeedsCoverEveryTable).
const std::map<std::string, SeedBuilder>& seedBuilders() {
  static const std::map<std::string, SeedBuilder> kBuilders = {
      // ---- fl_job.fbs
      {"RequestFLJob",
       [](FlatBufferBuilder& b) {
         Bytes sign = byteRange(64, 9);
         std::vector<int8_t> types{fbs::CompressType_NO_COMPRESS, fbs::CompressType_QUANT};
         return fbs::CreateRequestFLJobDirect(b, "Lenet", "device_a", 3, 640, "1700000000000", &sign,
                                              "attestation", "equip-cert", "equip-ca-cert", "root-cert",
                                              &types, 128)
             .o;
       }},
      {"ResponseFLJob",
       [](FlatBufferBuilder& b) {
         auto plan = flPlan(b);
         auto fms = featureMaps(b);
         auto cfms = compressFeatureMaps(b);
         return fbs::CreateResponseFLJobDirect(b, 200, "ok", 3, true, "1700000001000", plan, &fms,
                                               "1700000000000", fbs::CompressType_DIFF_SPARSE_QUANT, 0.4f,
                                               fbs::CompressType_QUANT, &cfms)
             .o;
       }},
      {"FLPlan", [](FlatBufferBuilder& b) { return flPlan(b).o; }},
      {"RequestUpdateModel",
       [](FlatBufferBuilder& b) {
         auto fms = featureMaps(b);
         auto cfms = compressFeatureMaps(b);
         auto names = strings(b, {"conv1.weight", "fc3.bias"});
         Bytes sig = byteRange(64, 10);
         std::vector<int32_t> index{0, 3, 7, 11};
         return fbs::CreateRequestUpdateModelDirect(b, "Lenet", "device_a", 3, &fms, "1700000000000", &sig,
                                                    0.75f, 1, &index, &cfms,
                                                    fbs::CompressType_DIFF_SPARSE_QUANT, 0.4f, &names, 0.5f)
             .o;
       }},
      {"ResponseUpdateModel",
       [](FlatBufferBuilder& b) {
         auto fms = featureMaps(b);
         return fbs::CreateResponseUpdateModelDirect(b, 200, "ok", &fms, "1700000001000", "1700000000000").o;
       }},
      {"RequestAsyncUpdateModel",
       [](FlatBufferBuilder& b) {
         auto fms = featureMaps(b);
         return fbs::CreateRequestAsyncUpdateModelDirect(b, "Lenet", "device_a", 3, 640, &fms).o;
       }},
      {"ResponseAsyncUpdateModel",
       [](FlatBufferBuilder& b) { return fbs::CreateResponseAsyncUpdateModelDirect(b, 200, "ok", 3).o; }},
      {"RequestPushWeight",
       [](FlatBufferBuilder& b) {
         auto fms = featureMaps(b);
         return fbs::CreateRequestPushWeightDirect(b, 3, &fms).o;
       }},
      {"ResponsePushWeight",
       [](FlatBufferBuilder& b) { return fbs::CreateResponsePushWeightDirect(b, 200, "ok", 3).o; }},
      {"RequestGetModel",
       [](FlatBufferBuilder& b) {
         std::vector<int8_t> types{fbs::CompressType_QUANT, fbs::CompressType_NO_COMPRESS};
         return fbs::CreateRequestGetModelDirect(b, "Lenet", 3, "1700000000000", &types).o;
       }},
      {"ResponseGetModel",
       [](FlatBufferBuilder& b) {
         auto fms = featureMaps(b);
         auto cfms = compressFeatureMaps(b);
         return fbs::CreateResponseGetModelDirect(b, 200, "ok", 3, &fms, "1700000000000",
                                                  fbs::CompressType_QUANT, &cfms)
             .o;
       }},
      {"RequestAsyncGetModel",
       [](FlatBufferBuilder& b) { return fbs::CreateRequestAsyncGetModelDirect(b, "Lenet", 3).o; }},
      {"ResponseAsyncGetModel",
       [](FlatBufferBuilder& b) {
         auto fms = featureMaps(b);
         return fbs::CreateResponseAsyncGetModelDirect(b, 200, "ok", 3, &fms).o;
       }},
      {"RequestPullWeight",
       [](FlatBufferBuilder& b) {
         auto names = strings(b, {"conv1.weight", "fc3.weight", "fc3.bias"});
         return fbs::CreateRequestPullWeightDirect(b, 3, &names).o;
       }},
      {"ResponsePullWeight",
       [](FlatBufferBuilder& b) {
         auto fms = featureMaps(b);
         return fbs::CreateResponsePullWeightDirect(b, 200, "ok", 3, &fms).o;
       }},
      {"FeatureMapList",
       [](FlatBufferBuilder& b) {
         auto fms = featureMaps(b);
         return fbs::CreateFeatureMapListDirect(b, &fms).o;
       }},
      {"RequestPushMetrics",
       [](FlatBufferBuilder& b) { return fbs::CreateRequestPushMetrics(b, 0.5f, 0.875f).o; }},
      {"ResponsePushMetrics", [](FlatBufferBuilder& b) { return fbs::CreateResponsePushMetrics(b, 200).o; }},
      // ---- cipher.fbs
      {"RequestExchangeKeys",
       [](FlatBufferBuilder& b) {
         Bytes c_pk = byteRange(65, 1), s_pk = byteRange(65, 2), ind_iv = byteRange(16, 3),
               pw_iv = byteRange(16, 4), salt = byteRange(32, 5), sig = byteRange(64, 6);
         auto chain = strings(b, {"leaf-cert", "ca-cert", "root-cert"});
         return fbs::CreateRequestExchangeKeysDirect(b, "device_a", &c_pk, &s_pk, 3, "1700000000000", &ind_iv,
                                                     &pw_iv, &salt, &sig, &chain)
             .o;
       }},
      {"ResponseExchangeKeys",
       [](FlatBufferBuilder& b) {
         return fbs::CreateResponseExchangeKeysDirect(b, 200, "ok", "1700000001000", 3).o;
       }},
      {"GetExchangeKeys",
       [](FlatBufferBuilder& b) {
         Bytes sig = byteRange(64, 12);
         return fbs::CreateGetExchangeKeysDirect(b, "device_a", 3, "1700000000000", &sig).o;
       }},
      {"ReturnExchangeKeys",
       [](FlatBufferBuilder& b) {
         auto keys = clientPublicKeys(b);
         return fbs::CreateReturnExchangeKeysDirect(b, 200, 3, &keys, "1700000001000").o;
       }},
      {"RequestShareSecrets",
       [](FlatBufferBuilder& b) {
         auto shares = clientShares(b);
         Bytes sig = byteRange(64, 13);
         return fbs::CreateRequestShareSecretsDirect(b, "device_a", &shares, 3, "1700000000000", &sig).o;
       }},
      {"ResponseShareSecrets",
       [](FlatBufferBuilder& b) {
         return fbs::CreateResponseShareSecretsDirect(b, 200, "ok", "1700000001000", 3).o;
       }},
      {"GetShareSecrets",
       [](FlatBufferBuilder& b) {
         Bytes sig = byteRange(64, 14);
         return fbs::CreateGetShareSecretsDirect(b, "device_a", 3, "1700000000000", &sig).o;
       }},
      {"ReturnShareSecrets",
       [](FlatBufferBuilder& b) {
         auto shares = clientShares(b);
         return fbs::CreateReturnShareSecretsDirect(b, 200, 3, &shares, "1700000001000").o;
       }},
      {"GetClientList",
       [](FlatBufferBuilder& b) {
         Bytes sig = byteRange(64, 15);
         return fbs::CreateGetClientListDirect(b, "device_a", 3, "1700000000000", &sig).o;
       }},
      {"ReturnClientList",
       [](FlatBufferBuilder& b) {
         auto clients = strings(b, {"device_a", "device_b", "device_c"});
         return fbs::CreateReturnClientListDirect(b, 200, "ok", &clients, 3, "1700000001000").o;
       }},
      {"SendClientListSign",
       [](FlatBufferBuilder& b) {
         Bytes sig = byteRange(64, 16), req_sig = byteRange(64, 17);
         return fbs::CreateSendClientListSignDirect(b, "device_a", 3, "1700000000000", &sig, &req_sig).o;
       }},
      {"ResponseClientListSign",
       [](FlatBufferBuilder& b) {
         return fbs::CreateResponseClientListSignDirect(b, 200, "ok", 3, "1700000001000").o;
       }},
      {"RequestAllClientListSign",
       [](FlatBufferBuilder& b) {
         Bytes sig = byteRange(64, 18);
         return fbs::CreateRequestAllClientListSignDirect(b, "device_a", 3, "1700000000000", &sig).o;
       }},
      {"ReturnAllClientListSign",
       [](FlatBufferBuilder& b) {
         Bytes s1 = byteRange(64, 19), s2 = byteRange(64, 20);
         std::vector<Offset<fbs::ClientListSign>> signs{fbs::CreateClientListSignDirect(b, "device_a", &s1),
                                                        fbs::CreateClientListSignDirect(b, "device_b", &s2)};
         return fbs::CreateReturnAllClientListSignDirect(b, 200, "ok", &signs, 3, "1700000001000").o;
       }},
      {"SendReconstructSecret",
       [](FlatBufferBuilder& b) {
         auto shares = clientShares(b);
         Bytes sig = byteRange(64, 21);
         return fbs::CreateSendReconstructSecretDirect(b, "device_a", &shares, 3, "1700000000000", &sig).o;
       }},
      {"ReconstructSecret",
       [](FlatBufferBuilder& b) {
         return fbs::CreateReconstructSecretDirect(b, 200, "ok", 3, "1700000001000").o;
       }},
  };
  return kBuilders;
}

Bytes buildSeed(const std::string& table, bool with_identifier) {
  FlatBufferBuilder b;
  Offset<void> root(seedBuilders().at(table)(b));
  b.Finish(root, with_identifier ? "FLJ0" : nullptr);
  return {b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize()};
}

Bytes makeUpdateModel(bool with_identifier) { return buildSeed("RequestUpdateModel", with_identifier); }

// The RequestUpdateModel seed as a plain upload (NO_COMPRESS): its feature_map is what gets read.
Bytes makePlainUpdateModel(bool with_identifier) {
  FlatBufferBuilder b;
  auto fms = featureMaps(b);
  auto cfms = compressFeatureMaps(b);
  auto names = strings(b, {"conv1.weight", "fc3.bias"});
  Bytes sig = byteRange(64, 10);
  std::vector<int32_t> index{0, 3, 7, 11};
  b.Finish(
      fbs::CreateRequestUpdateModelDirect(b, "Lenet", "device_a", 3, &fms, "1700000000000", &sig, 0.75f, 1,
                                          &index, &cfms, fbs::CompressType_NO_COMPRESS, 0.4f, &names, 0.5f),
      with_identifier ? "FLJ0" : nullptr);
  return {b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize()};
}

// Number of fields of every table in the .fbs files (field order is the wire format).
std::map<std::string, size_t> schemaFieldCounts() {
  std::map<std::string, size_t> counts;
  for (const char* file : {"fl_job.fbs", "cipher.fbs"}) {
    std::ifstream in(std::string(FL_SCHEMA_DIR) + "/" + file);
    EXPECT_TRUE(in.good()) << file;
    std::string line, current;
    while (std::getline(in, line)) {
      std::istringstream words(line);
      std::string first, name;
      words >> first;
      if (first == "table" && (words >> name)) {  // `table Name {`
        current = name;
        counts[current] = 0;
      } else if (!current.empty() && line.find('}') != std::string::npos) {
        current.clear();
      } else if (!current.empty() && first.rfind("//", 0) != 0 && line.find(':') != std::string::npos &&
                 line.find(';') != std::string::npos) {  // `name:type;` or `name:type = default;`
        ++counts[current];
      }
    }
  }
  return counts;
}

// (fields in the root table's vtable, how many of them are present) of a finished buffer.
std::pair<size_t, size_t> rootVtableFields(const Bytes& buf) {
  uint32_t root = 0;
  std::memcpy(&root, buf.data(), 4);
  int32_t soffset = 0;
  std::memcpy(&soffset, buf.data() + root, 4);
  size_t vtable = static_cast<size_t>(static_cast<int64_t>(root) - soffset);
  uint16_t vsize = 0;
  std::memcpy(&vsize, buf.data() + vtable, 2);
  size_t n = (vsize - 4u) / 2u, present = 0;
  for (size_t k = 0; k < n; ++k) {
    uint16_t entry = 0;
    std::memcpy(&entry, buf.data() + vtable + 4 + 2 * k, 2);
    present += entry != 0;
  }
  return {n, present};
}

// ---- mutations ------------------------------------------------------------------------------------

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : gen_(seed) {}

  size_t below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(gen_() % n); }
  uint8_t byte() { return static_cast<uint8_t>(gen_()); }

  uint32_t hugeWord(size_t size) {
    static const uint32_t kHuge[] = {0x7fffffffu, 0x80000000u, 0xffffffffu, 0xfffffffcu, 0x7ffffff0u,
                                     0x40000000u, 0x00ffffffu, 0x0000ffffu, 0xfffffff0u, 0x3fffffffu};
    switch (below(4)) {
      case 0:
        return kHuge[below(sizeof(kHuge) / sizeof(kHuge[0]))];
      case 1:  // just past the end, or at it
        return static_cast<uint32_t>(size + below(9)) - 4u;
      case 2:  // negative as a signed offset
        return static_cast<uint32_t>(-static_cast<int64_t>(1 + below(size + 8)));
      default:
        return static_cast<uint32_t>(gen_());
    }
  }

  void put32(Bytes& buf, size_t pos, uint32_t v) {
    if (pos + 4 <= buf.size()) std::memcpy(buf.data() + pos, &v, 4);
  }

  Bytes random(size_t max_len) {
    Bytes buf(below(max_len + 1));
    for (auto& x : buf) x = byte();
    return buf;
  }

  void flipBits(Bytes& buf) {
    if (buf.empty()) return;
    for (size_t k = 0, n = 1 + below(8); k < n; ++k)
      buf[below(buf.size())] ^= static_cast<uint8_t>(1u << below(8));
  }

  void overwriteBytes(Bytes& buf) {
    if (buf.empty()) return;
    for (size_t k = 0, n = 1 + below(4); k < n; ++k) buf[below(buf.size())] = byte();
  }

  void hugeAligned(Bytes& buf) {
    if (buf.size() >= 4) put32(buf, 4 * below(buf.size() / 4), hugeWord(buf.size()));
  }

  void hugeUnaligned(Bytes& buf) {
    if (buf.size() >= 4) put32(buf, below(buf.size() - 3), hugeWord(buf.size()));
  }

  void overwrite16(Bytes& buf) {  // vtable sizes and field offsets are 16-bit
    static const uint16_t kVals[] = {0xffff, 0x7fff, 0x8000, 0, 1, 3, 0xfffe};
    if (buf.size() < 2) return;
    uint16_t v =
        below(3) == 0 ? static_cast<uint16_t>(gen_()) : kVals[below(sizeof(kVals) / sizeof(kVals[0]))];
    std::memcpy(buf.data() + 2 * below(buf.size() / 2), &v, 2);
  }

  // The root offset, the root table's vtable soffset or the vtable's own size fields.
  void targeted(Bytes& buf) {
    if (buf.size() < 8) return hugeAligned(buf);
    uint32_t root32 = 0;
    std::memcpy(&root32, buf.data(), 4);
    const size_t root = root32;  // size_t: no wrap-around in the bounds checks below
    switch (below(4)) {
      case 0:
        return put32(buf, 0, hugeWord(buf.size()));
      case 1:
        return put32(buf, root, hugeWord(buf.size()));
      case 2: {  // the vtable: its size / the table's inline size
        if (root + 4 > buf.size()) return;
        int32_t soffset = 0;
        std::memcpy(&soffset, buf.data() + root, 4);
        const int64_t vt = static_cast<int64_t>(root) - soffset;
        if (vt < 0 || static_cast<size_t>(vt) + 4 > buf.size()) return;
        uint16_t v = static_cast<uint16_t>(below(2) ? 0xffff : gen_());
        std::memcpy(buf.data() + vt + 2 * below(2), &v, 2);
        return;
      }
      default:  // a field offset inside the root table
        if (root + 8 <= buf.size())
          put32(buf, root + 4 + 4 * below((buf.size() - root - 4) / 4), hugeWord(buf.size()));
    }
  }

  void truncate(Bytes& buf) { buf.resize(below(buf.size())); }

  void splice(Bytes& buf) {
    if (buf.size() < 8) return;
    size_t len = 1 + below(buf.size() / 2), from = below(buf.size() - len + 1),
           to = below(buf.size() - len + 1);
    std::memmove(buf.data() + to, buf.data() + from, len);
  }

  void grow(Bytes& buf) {
    size_t pos = below(2) ? buf.size() : below(buf.size() + 1), n = 1 + below(64);
    Bytes extra(n);
    for (auto& x : extra) x = byte();
    buf.insert(buf.begin() + static_cast<std::ptrdiff_t>(pos), extra.begin(), extra.end());
  }

  void stacked(Bytes& buf) {
    for (size_t k = 0, n = 2 + below(3); k < n; ++k) {
      switch (below(7)) {
        case 0:
          flipBits(buf);
          break;
        case 1:
          overwriteBytes(buf);
          break;
        case 2:
          hugeAligned(buf);
          break;
        case 3:
          overwrite16(buf);
          break;
        case 4:
          targeted(buf);
          break;
        case 5:
          splice(buf);
          break;
        default:
          grow(buf);
      }
    }
  }

 private:
  std::mt19937_64 gen_;
};

constexpr int kStrategies = 13;
// Calls verify() on `buf`, at an aligned start or (every 5th call) at an odd address.
bool verifyAt(const std::string& table, const Bytes& buf, size_t call) {
  if (call % 5 != 4) return fl::schema::verify(table, buf.data(), buf.size());
  Bytes shifted(buf.size() + 8);
  size_t shift = 1 + call % 7;
  std::copy(buf.begin(), buf.end(), shifted.begin() + static_cast<std::ptrdiff_t>(shift));
  return fl::schema::verify(table, shifted.data() + shift, buf.size());
}

// The verify-then-read pass of updateModel (what _core.read_update_model does), with its invariants checked.
struct ReadStats {
  size_t read = 0, fields_ok = 0, fields_bad = 0, non_finite = 0, features = 0;
};

void verifyAndRead(const Bytes& buf, ReadStats& stats) {
  if (!fl::schema::verify("RequestUpdateModel", buf.data(), buf.size())) return;
  ASSERT_EQ(reinterpret_cast<uintptr_t>(buf.data()) % alignof(uint64_t), 0u);
  fl::schema::UpdateModelView view = fl::schema::readUpdateModel(buf.data(), buf.size());
  ++stats.read;
  ++(view.fields_ok ? stats.fields_ok : stats.fields_bad);
  const auto* req = flatbuffers::GetRoot<fbs::RequestUpdateModel>(buf.data());
  // a compressed upload is read from its compressed entries only
  bool compressed = req->upload_compress_type() != fbs::CompressType_NO_COMPRESS;
  size_t listed = !compressed && req->feature_map() ? req->feature_map()->size() : 0;
  size_t listed_compressed =
      compressed && req->compress_feature_map() ? req->compress_feature_map()->size() : 0;
  ASSERT_LE(view.features.size(), listed);
  ASSERT_LE(view.compressed.size(), listed_compressed);
  for (const auto& c : view.compressed) {  // int8 codes inside the body, after their length prefix
    ASSERT_GE(c.offset, 4u);
    ASSERT_LE(c.count, buf.size() - c.offset);
  }
  if (view.fields_ok) {
    ASSERT_FALSE(view.fl_id.empty());
    ASSERT_TRUE(std::isfinite(view.upload_loss) && std::isfinite(view.upload_accuracy));
    ASSERT_EQ(view.features.size(), listed);
    ASSERT_EQ(view.compressed.size(), listed_compressed);
  }
  for (const auto& f : view.features) {
    ++stats.features;
    // the span lies inside the body, after its 4-byte length prefix, float-aligned
    ASSERT_GE(f.offset, 4u);
    ASSERT_EQ(f.offset % alignof(float), 0u);
    ASSERT_LE(f.count, (buf.size() - f.offset) / sizeof(float));
    uint32_t prefix = 0;
    std::memcpy(&prefix, buf.data() + f.offset - 4, 4);
    ASSERT_EQ(prefix, f.count);
    bool finite = true;
    for (size_t k = 0; k < f.count; ++k) {
      float x;
      std::memcpy(&x, buf.data() + f.offset + k * sizeof(float), sizeof(float));
      finite = finite && std::isfinite(x);
    }
    ASSERT_EQ(f.finite, finite) << f.name;
    stats.non_finite += !f.finite;
  }
}

// ---- tests ----------------------------------------------------------------------------------------

TEST(Verifier, AcceptsValidBufferWithAndWithoutIdentifier) {
  for (bool ident : {false, true}) {
    auto buf = makeUpdateModel(ident);
    EXPECT_TRUE(fl::schema::verify("RequestUpdateModel", buf.data(), buf.size()));
  }
}

TEST(Verifier, RejectsEmptyAndTinyBuffers) {
  uint8_t b[3] = {1, 2, 3};
  for (const auto& table : fl::schema::tableNames()) {
    EXPECT_FALSE(fl::schema::verify(table, nullptr, 0)) << table;
    EXPECT_FALSE(fl::schema::verify(table, b, sizeof(b))) << table;
  }
}

TEST(Verifier, UnknownTableThrows) {
  uint8_t b[8] = {};
  EXPECT_THROW(fl::schema::verify("NoSuchTable", b, sizeof(b)), fl::EnforceError);
}

TEST(Verifier, MisalignedStartIsHandled) {
  auto buf = makeUpdateModel(false);
  std::vector<uint8_t> shifted(buf.size() + 1);
  std::copy(buf.begin(), buf.end(), shifted.begin() + 1);
  EXPECT_TRUE(fl::schema::verify("RequestUpdateModel", shifted.data() + 1, buf.size()));
}

// Every verifier has a valid seed that sets every field of its root table, and the seed verifies.
TEST(Verifier, SeedsCoverEveryTableAndVerify) {
  auto names = fl::schema::tableNames();
  std::set<std::string> registered(names.begin(), names.end()), seeded;
  for (const auto& kv : seedBuilders()) seeded.insert(kv.first);
  EXPECT_EQ(registered, seeded);
  EXPECT_EQ(registered.size(), 34u);
  auto fields = schemaFieldCounts();
  for (const auto& table : names) {
    ASSERT_TRUE(fields.count(table)) << table << " is not a table of the .fbs files";
    for (bool ident : {false, true}) {
      auto seed = buildSeed(table, ident);
      EXPECT_TRUE(fl::schema::verify(table, seed.data(), seed.size())) << table;
      EXPECT_TRUE(verifyAt(table, seed, 4)) << table << " (misaligned)";
      auto [n, present] = rootVtableFields(seed);
      EXPECT_EQ(n, fields[table]) << table << ": the seed leaves trailing fields unset";
      EXPECT_EQ(present, fields[table]) << table << ": the seed leaves a field unset";
    }
  }
}

// >= 10,000 random and mutated buffers to EVERY verifier: only true/false, never a crash or a hang.
TEST(Verifier, FuzzedBuffersToEveryTableNeverCrash) {
  auto names = fl::schema::tableNames();
  std::sort(names.begin(), names.end());
  std::map<std::string, std::pair<Bytes, Bytes>> seeds;  // (no identifier, FLJ0)
  for (const auto& t : names) seeds[t] = {buildSeed(t, false), buildSeed(t, true)};
  Mutator mut(20240611);
  ReadStats read_stats;
  size_t total = 0;
  double slowest_ms = 0.0;
  const auto started = Clock::now();
  for (size_t ti = 0; ti < names.size(); ++ti) {
    const auto& table = names[ti];
    size_t counts[kStrategies] = {}, accepted[kStrategies] = {};
    for (size_t i = 0; i < kBuffersPerTable; ++i) {
      const int strategy = static_cast<int>(i % kStrategies);
      const auto& pair = seeds[table];
      const Bytes& seed = (i / kStrategies) % 2 ? pair.second : pair.first;
      Bytes buf = seed;
      switch (strategy) {
        case 0:
          buf = mut.random(2 * seed.size() + 64);
          break;
        case 1:  // random body behind a plausible root offset
          buf = mut.random(2 * seed.size() + 64);
          if (buf.size() >= 8) mut.put32(buf, 0, static_cast<uint32_t>(4 * mut.below(buf.size() / 4)));
          break;
        case 2:
          mut.truncate(buf);
          break;
        case 3:
          mut.flipBits(buf);
          break;
        case 4:
          mut.overwriteBytes(buf);
          break;
        case 5:
          mut.hugeAligned(buf);
          break;
        case 6:
          mut.hugeUnaligned(buf);
          break;
        case 7:
          mut.overwrite16(buf);
          break;
        case 8:
          mut.targeted(buf);
          break;
        case 9:
          mut.splice(buf);
          break;
        case 10:
          mut.grow(buf);
          break;
        case 11: {  // another table's (valid or flipped) buffer verified as this one
          const auto& other = seeds[names[mut.below(names.size())]];
          buf = mut.below(2) ? other.first : other.second;
          if (mut.below(2)) mut.flipBits(buf);
          break;
        }
        default:
          mut.stacked(buf);
      }
      const auto t0 = Clock::now();
      const bool ok = verifyAt(table, buf, i);
      slowest_ms = std::max(slowest_ms, std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      ++counts[strategy];
      accepted[strategy] += ok;
      ++total;
      if (table == "RequestUpdateModel" && ok) verifyAndRead(buf, read_stats);
      ASSERT_FALSE(::testing::Test::HasFatalFailure()) << table << " buffer " << i;
    }
    size_t sum = 0, rejected = 0;
    for (int s = 0; s < kStrategies; ++s) {
      sum += counts[s];
      rejected += counts[s] - accepted[s];
    }
    EXPECT_GE(sum, 10000u) << table;
    // pure random bytes are essentially never a valid table; plenty of mutations are rejected
    EXPECT_LE(accepted[0], counts[0] / 20) << table;
    EXPECT_GT(rejected, sum / 4) << table;
    // and the verifier is not trivially false: bit flips in scalars / payload bytes stay valid
    EXPECT_GT(accepted[3] + accepted[4], 0u) << table;
    auto seed = seeds[table].first;
    EXPECT_TRUE(fl::schema::verify(table, seed.data(), seed.size())) << table << " seed after fuzzing";
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  EXPECT_EQ(total, names.size() * kBuffersPerTable);
  EXPECT_LT(slowest_ms, 1000.0) << "one verification took " << slowest_ms << " ms";
  EXPECT_GT(read_stats.read, 100u);
  std::printf(
      "[ fuzz ] %zu tables x %zu buffers = %zu verifications in %.2f s (slowest %.3f ms); "
      "updateModel reads %zu\n",
      names.size(), kBuffersPerTable, total, seconds, slowest_ms, read_stats.read);
}

// The verify-then-read pass of updateModel on mutated updateModel bodies: every body that verifies is read
// without touching memory outside it, and its feature spans / finiteness flags match the bytes.
TEST(Verifier, UpdateModelVerifyAndReadFuzz) {
  Mutator mut(7);
  // a plain upload (its features are read) and a compressed one (its compressed entries are)
  const Bytes seeds[2] = {makePlainUpdateModel(false), makeUpdateModel(true)};
  // positions of the float payloads of the seed (targets for NaN/Inf writes)
  std::vector<std::pair<size_t, size_t>> payload[2];
  for (int s = 0; s < 2; ++s) {
    const auto* req = flatbuffers::GetRoot<fbs::RequestUpdateModel>(seeds[s].data());
    for (const auto* fm : *req->feature_map()) {
      auto off = static_cast<size_t>(reinterpret_cast<const uint8_t*>(fm->data()->data()) - seeds[s].data());
      payload[s].emplace_back(off, fm->data()->size());
    }
  }
  ReadStats stats;
  for (size_t i = 0; i < kUpdateModelReads; ++i) {
    const int s = static_cast<int>(i % 2);
    Bytes buf = seeds[s];
    switch (i % 6) {
      case 0: {  // NaN / +-Inf / denormal into a payload float
        static const float kOdd[] = {
            std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
            -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::denorm_min(),
            std::numeric_limits<float>::max()};
        const auto& [off, count] = payload[s][mut.below(payload[s].size())];
        float v = kOdd[mut.below(5)];
        std::memcpy(buf.data() + off + 4 * mut.below(count), &v, 4);
        break;
      }
      case 1:
        mut.flipBits(buf);
        break;
      case 2:
        mut.hugeAligned(buf);
        break;
      case 3:
        mut.overwrite16(buf);
        break;
      case 4:
        mut.targeted(buf);
        break;
      default:
        mut.stacked(buf);
    }
    verifyAndRead(buf, stats);
    ASSERT_FALSE(::testing::Test::HasFatalFailure()) << "buffer " << i;
  }
  verifyAndRead(seeds[0], stats);
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  EXPECT_GT(stats.read, kUpdateModelReads / 6);  // at least the NaN writes stay valid flatbuffers
  EXPECT_GT(stats.non_finite, 0u);
  EXPECT_GT(stats.fields_ok, 0u);
  EXPECT_GT(stats.fields_bad, 0u);
  std::printf(
      "[ fuzz ] updateModel verify+read: %zu of %zu mutated bodies read (fields_ok %zu, bad %zu, "
      "%zu features, %zu non-finite)\n",
      stats.read, kUpdateModelReads, stats.fields_ok, stats.fields_bad, stats.features, stats.non_finite);
}

}  // namespace
