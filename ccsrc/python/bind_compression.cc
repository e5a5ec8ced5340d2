// DIFF_SPARSE_QUANT for Python: the keep-mask and the decode-into-accumulator kernel (GIL released).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "compression/diff_sparse_quant.h"
#include "compression/sparse_mask.h"
#include "python/bind.h"

namespace py = pybind11;

namespace fl::py_bind {
namespace {

using FloatArray = py::array_t<float, py::array::c_style>;
using MaskArray = py::array_t<uint8_t, py::array::c_style>;

py::array sparseMask(int32_t seed, float rate, size_t param_num) {
  if (!(rate >= 0.0f && rate <= 1.0f)) throw py::value_error("rate must be in [0, 1]");
  MaskArray mask(static_cast<py::ssize_t>(param_num));
  uint8_t* out = mask.mutable_data();
  {
    py::gil_scoped_release release;
    compress::buildSparseMask(seed, rate, param_num, out);
  }
  return mask;
}

// What the segments point into; the Python objects stay referenced by the caller during the call.
struct Upload {
  const uint8_t* mask = nullptr;
  size_t param_num = 0;
  std::vector<compress::DsqSegment> segs;
};

// segments: [(code_offset, code_count, min_val, max_val, latest, acc or None, latest_absmax)] over `body`.
Upload toUpload(const MaskArray& mask, const py::buffer& body, const py::list& segments) {
  py::buffer_info info = body.request();
  if (info.ndim != 1 || info.itemsize != 1 || info.strides[0] != 1) {
    throw py::type_error("body must be a contiguous bytes-like object");
  }
  const auto* base = static_cast<const uint8_t*>(info.ptr);
  size_t body_size = static_cast<size_t>(info.size);
  Upload up;
  up.mask = mask.data();
  up.param_num = static_cast<size_t>(mask.size());
  for (const auto& item : segments) {
    auto t = item.cast<py::tuple>();
    compress::DsqSegment s;
    size_t offset = t[0].cast<size_t>();
    s.code_count = t[1].cast<size_t>();
    if (offset > body_size || s.code_count > body_size - offset)
      throw py::value_error("codes outside the body");
    s.codes = reinterpret_cast<const int8_t*>(base + offset);
    s.min_val = t[2].cast<float>();
    s.max_val = t[3].cast<float>();
    auto latest = t[4].cast<FloatArray>();
    s.latest = latest.data();
    s.size = static_cast<size_t>(latest.size());
    if (!t[5].is_none()) {
      auto acc = t[5].cast<FloatArray>();
      if (!acc.writeable() || static_cast<size_t>(acc.size()) != s.size) {
        throw py::value_error("accumulator must be writeable and as large as the weight");
      }
      s.acc = acc.mutable_data();
    }
    s.latest_absmax = t[6].cast<double>();
    up.segs.push_back(s);
  }
  return up;
}

std::string check(MaskArray mask, const py::buffer& body, const py::list& segments, double max_data_size) {
  Upload up = toUpload(mask, body, segments);
  py::gil_scoped_release release;
  return compress::checkDiffSparseQuant(up.mask, up.param_num, up.segs, max_data_size);
}

void add(MaskArray mask, const py::buffer& body, const py::list& segments, float data_size) {
  Upload up = toUpload(mask, body, segments);
  std::string problem;
  {
    py::gil_scoped_release release;
    problem = compress::checkDiffSparseQuant(up.mask, up.param_num, up.segs, data_size);
    if (problem.empty()) compress::addDiffSparseQuant(up.mask, up.segs, data_size);
  }
  if (!problem.empty()) throw py::value_error("DIFF_SPARSE_QUANT upload not decodable: " + problem);
}

}  // namespace

void BindCompression(py::module_& m) {
  m.def(
      "sparse_mask", &sparseMask, py::arg("seed"), py::arg("rate"), py::arg("param_num"),
      "DIFF_SPARSE_QUANT keep-mask: uint8 array of param_num 0/1 values for this seed (iteration) and rate.");
  m.def("check_diff_sparse_quant", &check, py::arg("mask").noconvert(), py::arg("body"), py::arg("segments"),
        py::arg("max_data_size"),
        "'' when the upload decodes into finite weights, else the first problem. segments: [(code_offset, "
        "code_count, min_val, max_val, latest float32, acc float32 or None, latest_absmax)] in name_vec "
        "order.");
  m.def("add_diff_sparse_quant", &add, py::arg("mask").noconvert(), py::arg("body"), py::arg("segments"),
        py::arg("data_size"),
        "Decodes a checked DIFF_SPARSE_QUANT upload and adds it (data_size-weighted) into the accumulators.");
}

}  // namespace fl::py_bind
