// Aggregation kernels for Python: float32 C-contiguous arrays only (no silent copies), GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "aggregation/kernels.h"
#include "common/error.h"
#include "python/bind.h"

namespace py = pybind11;

namespace fl::py_bind {
namespace {

using FloatArray = py::array_t<float, py::array::c_style>;
// Above this many elements the GIL is released around the loop; below it the release costs more
// than the loop itself.
constexpr size_t kReleaseGilAbove = 16384;

float* mutableData(FloatArray& a, const char* name) {
  if (!a.writeable()) throw py::value_error(std::string(name) + " must be writeable");
  return a.mutable_data();
}

void checkSameSize(const FloatArray& acc, const FloatArray& src) {
  if (acc.size() != src.size()) {
    throw py::value_error("size mismatch: acc has " + std::to_string(acc.size()) + " elements, src has " +
                          std::to_string(src.size()));
  }
}

template <typename Fn>
void run(size_t n, Fn&& fn) {
  if (n > kReleaseGilAbove) {
    py::gil_scoped_release release;
    fn();
  } else {
    fn();
  }
}

void accumulate(FloatArray acc, FloatArray src) {
  checkSameSize(acc, src);
  float* a = mutableData(acc, "acc");
  const float* s = src.data();
  size_t n = static_cast<size_t>(acc.size());
  run(n, [&] { agg::accumulate(a, s, n); });
}

void accumulateScaled(FloatArray acc, FloatArray src, float w) {
  checkSameSize(acc, src);
  float* a = mutableData(acc, "acc");
  const float* s = src.data();
  size_t n = static_cast<size_t>(acc.size());
  run(n, [&] { agg::accumulateScaled(a, s, w, n); });
}

void scale(FloatArray x, float s) {
  float* p = mutableData(x, "x");
  size_t n = static_cast<size_t>(x.size());
  run(n, [&] { agg::scale(p, s, n); });
}

void divide(FloatArray x, double d) {
  if (!(d != 0.0)) throw py::value_error("divide by zero");
  float* p = mutableData(x, "x");
  size_t n = static_cast<size_t>(x.size());
  run(n, [&] { agg::divide(p, d, n); });
}

bool allFinite(FloatArray x) {
  const float* p = x.data();
  size_t n = static_cast<size_t>(x.size());
  bool ok = true;
  run(n, [&] { ok = agg::allFinite(p, n); });
  return ok;
}

}  // namespace

void BindKernels(py::module_& m) {
  m.def("accumulate", &accumulate, py::arg("acc").noconvert(), py::arg("src").noconvert(),
        "acc += src (float32, C-contiguous, same size).");
  m.def("accumulate_scaled", &accumulateScaled, py::arg("acc").noconvert(), py::arg("src").noconvert(),
        py::arg("w"), "acc += w * src.");
  m.def("scale", &scale, py::arg("x").noconvert(), py::arg("s"), "x *= s in place.");
  m.def("divide", &divide, py::arg("x").noconvert(), py::arg("d"), "x /= d in place (d != 0).");
  m.def("all_finite", &allFinite, py::arg("x").noconvert(), "True when x holds no NaN/Inf.");
}

}  // namespace fl::py_bind
