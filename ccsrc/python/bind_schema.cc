// Schema verifier for Python: verify(table, body) -> bool, GIL released for large bodies.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "python/bind.h"
#include "schema/update_model.h"
#include "schema/verifier.h"

namespace py = pybind11;

namespace fl::py_bind {
namespace {

constexpr size_t kReleaseGilAbove = 65536;

bool verify(const std::string& table, const py::buffer& body) {
  if (!schema::isKnownTable(table)) throw py::value_error("unknown flatbuffers table '" + table + "'");
  py::buffer_info info = body.request();
  if (info.ndim != 1 || info.itemsize != 1 || (info.ndim == 1 && info.strides[0] != 1)) {
    throw py::type_error("body must be a contiguous bytes-like object");
  }
  const auto* data = static_cast<const uint8_t*>(info.ptr);
  size_t size = static_cast<size_t>(info.size);
  if (size > kReleaseGilAbove) {
    py::gil_scoped_release release;
    return schema::verify(table, data, size);
  }
  return schema::verify(table, data, size);
}

// Device strings may hold any bytes: decode like Python's bytes.decode("utf-8", "replace").
py::str lenientStr(const std::string& s) {
  PyObject* obj = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace");
  if (obj == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(obj);
}

// None for an uncompressed upload, else (upload_compress_type, upload_sparse_rate, [name_vec],
// [(name, byte_offset, count, min_val, max_val)]).
py::object compressedFields(const schema::UpdateModelView& view) {
  if (view.upload_compress_type == 0) return py::none();
  py::list names;
  for (const auto& name : view.name_vec) names.append(lenientStr(name));
  py::list entries;
  for (const auto& c : view.compressed) {
    entries.append(py::make_tuple(lenientStr(c.name), c.offset, c.count, c.min_val, c.max_val));
  }
  return py::make_tuple(view.upload_compress_type, view.upload_sparse_rate, names, entries);
}

// verify + read in one call: None when the body is not a valid RequestUpdateModel, else
// (fields_ok, fl_id, iteration, upload_loss, upload_accuracy, sign, [(name, offset, count, finite)]).
py::object readUpdateModel(const py::buffer& body) {
  py::buffer_info info = body.request();
  if (info.ndim != 1 || info.itemsize != 1 || info.strides[0] != 1) {
    throw py::type_error("body must be a contiguous bytes-like object");
  }
  const auto* data = static_cast<const uint8_t*>(info.ptr);
  size_t size = static_cast<size_t>(info.size);
  schema::UpdateModelView view;
  bool valid = false;
  {
    py::gil_scoped_release release;  // no Python object may be touched in here, py::none() included
    valid = schema::verify("RequestUpdateModel", data, size) &&
            reinterpret_cast<uintptr_t>(data) % alignof(uint64_t) == 0;
    if (valid) view = schema::readUpdateModel(data, size);
  }
  if (!valid) return py::none();
  py::list features;
  for (const auto& f : view.features) {
    features.append(py::make_tuple(lenientStr(f.name), f.offset, f.count, f.finite));
  }
  return py::make_tuple(view.fields_ok, lenientStr(view.fl_id), view.iteration, view.upload_loss,
                        view.upload_accuracy, view.sign, features, compressedFields(view));
}

}  // namespace

void BindSchema(py::module_& m) {
  m.def(
      "read_update_model", &readUpdateModel, py::arg("body"),
      "Verify and read a RequestUpdateModel in one pass: None if invalid, else (fields_ok, fl_id, iteration, "
      "upload_loss, upload_accuracy, sign, [(name, byte_offset, count, finite)], compressed) where "
      "compressed is None or (upload_compress_type, upload_sparse_rate, [name_vec], "
      "[(name, byte_offset, count, min_val, max_val)]).");
  m.def("verify", &verify, py::arg("table_name"), py::arg("body"),
        "Verify a flatbuffers body as root table `table_name`; False for any malformed buffer.");
  m.def("table_names", &schema::tableNames, "Names of the tables verify() knows.");
}

}  // namespace fl::py_bind
