// Declarations of the per-area binding functions called from bindings.cc.
#pragma once

#include <pybind11/pybind11.h>

namespace fl::py_bind {
void BindKernels(pybind11::module_& m);
void BindSchema(pybind11::module_& m);
void BindComm(pybind11::module_& m);
void BindArmour(pybind11::module_& m);
void BindCompression(pybind11::module_& m);
}  // namespace fl::py_bind
