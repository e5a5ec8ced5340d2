// PYBIND11_MODULE(_core): exception registration, then one Bind* call per C++ area.
#include <pybind11/pybind11.h>

#include "common/error.h"
#include "python/bind.h"

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
  m.doc() = "Private C++ core of mindspore_federated (kernels, schema verifier, communicator).";
  // Base classes first: translators run in reverse order of registration.
  py::register_exception<fl::IoError>(m, "CommError", PyExc_ConnectionError);
  // Two bases (PyErr_NewException takes a tuple): `except CommError` and the builtin `except TimeoutError`
  // both catch a communicator deadline.
  py::register_exception<fl::TimeoutError>(
      m, "CommTimeoutError", py::make_tuple(m.attr("CommError"), py::handle(PyExc_TimeoutError)));
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const fl::EnforceError& e) {
      py::set_error(PyExc_ValueError, e.what());
    }
  });
  fl::py_bind::BindKernels(m);
  fl::py_bind::BindSchema(m);
  fl::py_bind::BindComm(m);
  fl::py_bind::BindArmour(m);
  fl::py_bind::BindCompression(m);
}
