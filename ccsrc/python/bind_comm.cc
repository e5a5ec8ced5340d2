// Communicator bindings: request/reply, broadcast, the polled request queue and all-reduce.
// Every blocking call releases the GIL; the I/O thread never calls into Python.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <tuple>
#include <vector>

#include "common/error.h"
#include "communicator/allreduce.h"
#include "communicator/communicator.h"
#include "python/bind.h"

namespace py = pybind11;

namespace fl::py_bind {
namespace {

using comm::Communicator;

// A read-only, C-contiguous view of any bytes-like object, held while the GIL is released.
class BytesView {
 public:
  explicit BytesView(const py::object& obj) {
    if (PyObject_GetBuffer(obj.ptr(), &view_, PyBUF_SIMPLE) != 0) throw py::error_already_set();
  }
  ~BytesView() { PyBuffer_Release(&view_); }
  BytesView(const BytesView&) = delete;
  BytesView& operator=(const BytesView&) = delete;
  std::string_view view() const { return std::string_view(static_cast<const char*>(view_.buf), view_.len); }

 private:
  Py_buffer view_{};
};

py::bytes toPy(const comm::Bytes& b) { return py::bytes(b.data.get(), b.size); }

std::string tlsItem(const py::dict& tls, const char* key, bool required) {
  if (!tls.contains(key)) {
    if (required) throw py::value_error(std::string("tls needs '") + key + "'");
    return "";
  }
  py::object v = tls[key];
  if (py::isinstance<py::bytes>(v)) return std::string(v.cast<py::bytes>());
  return v.cast<std::string>();
}

// tls: None, or {"server_cert", "server_key", "client_cert", "client_key" (PEM), "ca_file", "crl_file",
// "ciphers"}. The key texts are wiped from the options once the TLS contexts hold them.
std::unique_ptr<Communicator> make(const std::string& ip, int port, size_t maxConnections,
                                   uint64_t maxFrameBytes, const py::object& tls) {
  if (port < 0 || port > 65535) {
    throw py::value_error("port must be between 0 and 65535 (got " + std::to_string(port) + ")");
  }
  comm::CommunicatorOptions o;
  o.ip = ip;
  o.port = static_cast<uint16_t>(port);
  o.maxConnections = maxConnections;
  o.maxFrameBytes = maxFrameBytes;
  if (!tls.is_none()) {
    py::dict d = tls.cast<py::dict>();
    o.tls.server = {tlsItem(d, "server_cert", true), tlsItem(d, "server_key", true)};
    o.tls.client = {tlsItem(d, "client_cert", true), tlsItem(d, "client_key", true)};
    o.tls.caFile = tlsItem(d, "ca_file", true);
    o.tls.crlFile = tlsItem(d, "crl_file", false);
    o.tls.ciphers = tlsItem(d, "ciphers", false);
    if (o.tls.caFile.empty()) throw py::value_error("tls needs a non-empty 'ca_file'");
  }
  try {
    auto c = std::make_unique<Communicator>(o);
    o.tls.wipeKeys();
    return c;
  } catch (...) {
    o.tls.wipeKeys();
    throw;
  }
}

py::bytes request(Communicator& c, const std::string& peer, uint32_t msgType, const py::object& payload,
                  double timeout) {
  BytesView in(payload);
  comm::Bytes out;
  {
    py::gil_scoped_release release;
    out = c.request(peer, msgType, in.view(), timeout);
  }
  return toPy(out);
}

py::list broadcast(Communicator& c, const std::vector<std::string>& peers, uint32_t msgType,
                   const py::object& payload, double timeout) {
  BytesView in(payload);
  std::vector<comm::BroadcastResult> results;
  {
    py::gil_scoped_release release;
    results = c.broadcast(peers, msgType, in.view(), timeout);
  }
  py::list out;
  for (auto& r : results) {
    py::object body = r.ok ? py::object(toPy(r.payload)) : py::object(py::none());
    out.append(py::make_tuple(r.peer, body, r.error));
  }
  return out;
}

py::list pollRequests(Communicator& c, size_t max) {
  py::list out;
  for (auto& r : c.pollRequests(max)) out.append(py::make_tuple(r.id, r.peer, r.msgType, toPy(r.payload)));
  return out;
}

bool reply(Communicator& c, uint64_t id, const py::object& payload, const std::string& error) {
  BytesView in(payload);
  py::gil_scoped_release release;
  return c.reply(id, in.view(), error);
}

template <typename T>
void allreduceArray(Communicator& c, std::vector<std::string> group, size_t rank,
                    py::array_t<T, py::array::c_style> data, uint64_t tag, double timeout,
                    size_t segmentBytes) {
  if (!data.writeable()) throw py::value_error("data must be writeable");
  comm::AllreduceOptions o;
  o.group = std::move(group);
  o.rank = rank;
  o.data = data.mutable_data();
  o.count = static_cast<size_t>(data.size());
  o.dtype = sizeof(T) == 8 ? comm::DataType::kFloat64 : comm::DataType::kFloat32;
  o.tag = tag;
  o.timeoutSec = timeout;
  o.segmentBytes = segmentBytes;
  py::gil_scoped_release release;
  comm::allreduce(c, o);
}

}  // namespace

void BindComm(py::module_& m) {
  using Release = py::call_guard<py::gil_scoped_release>;
  py::class_<Communicator> c(m, "Communicator",
                             "TCP endpoint of one node: request/reply, broadcast and all-reduce with peers.");
  c.def(py::init(&make), py::arg("ip") = "127.0.0.1", py::arg("port") = 0, py::arg("max_connections") = 10000,
        py::arg("max_frame_bytes") = (uint64_t{1} << 31) - 1, py::arg("tls") = py::none(),
        "Binds and listens at once (port 0 picks a free port); start() launches the I/O thread. With tls "
        "(a dict of PEM texts and CA/CRL files, see comm.tls_options), every link is mutual TLS.");
  c.def_property_readonly("tls", &Communicator::tls, "True when every link is mutual TLS.");
  c.def_property_readonly("port", &Communicator::port);
  c.def_property_readonly("address", &Communicator::address, "\"ip:port\" peers use to reach us.");
  c.def_property_readonly("running", &Communicator::running);
  c.def("start", &Communicator::start, Release(), "Start the I/O thread (once).");
  c.def("stop", &Communicator::stop, Release(),
        "Close every connection, fail every waiter and join the I/O thread (idempotent).");
  c.def(
      "__enter__",
      [](Communicator& self) -> Communicator& {
        if (!self.running()) self.start();
        return self;
      },
      py::return_value_policy::reference);
  c.def("__exit__", [](Communicator& self, const py::args&) {
    py::gil_scoped_release release;
    self.stop();
  });
  c.def("request", &request, py::arg("peer"), py::arg("msg_type"), py::arg("payload"), py::arg("timeout"),
        "Send a request and block (GIL released) for the reply bytes. Raises CommTimeoutError or "
        "CommError naming the peer; an error reply raises CommError with the peer's text.");
  c.def("broadcast", &broadcast, py::arg("peers"), py::arg("msg_type"), py::arg("payload"),
        py::arg("timeout"), "Request every peer in parallel: [(peer, reply bytes or None, error text)].");
  c.def("fileno", &Communicator::fileno, "eventfd readable while incoming requests are queued.");
  c.def("poll_requests", &pollRequests, py::arg("max") = 64,
        "Dequeue up to max incoming requests as (request_id, peer, msg_type, payload).");
  c.def("reply", &reply, py::arg("request_id"), py::arg("payload"), py::arg("error") = "",
        "Answer a polled request (a non-empty error makes the requester raise CommError with it). "
        "False when the requester is gone.");
  c.def("allreduce", &allreduceArray<float>, py::arg("group"), py::arg("rank"), py::arg("data").noconvert(),
        py::arg("tag"), py::arg("timeout"), py::arg("segment_bytes") = comm::kDefaultSegmentBytes,
        "In-place sum of a C-contiguous float32 array over the group (GIL released).");
  c.def("allreduce_f64", &allreduceArray<double>, py::arg("group"), py::arg("rank"),
        py::arg("data").noconvert(), py::arg("tag"), py::arg("timeout"),
        py::arg("segment_bytes") = comm::kDefaultSegmentBytes, "allreduce for float64 arrays.");
  c.def(
      "cancel_collective",
      [](Communicator& self, uint64_t tag, const std::string& reason) { self.mailbox().cancel(tag, reason); },
      py::arg("tag"), py::arg("reason"),
      "Make a running (or later) allreduce with this tag fail at once with CommError(reason).");
  c.def("__repr__", [](const Communicator& self) { return "<Communicator " + self.address() + ">"; });
}

}  // namespace fl::py_bind
