// Armour kernels for Python (secure aggregation): arguments copied out of Python objects, then the GIL is
// released around every OpenSSL call and mask loop. The public, validating API is mindspore_federated.armour.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <utility>
#include <vector>

#include "armour/key_agreement.h"
#include "armour/masking.h"
#include "armour/prime.h"
#include "armour/secret_sharing.h"
#include "python/bind.h"

namespace py = pybind11;

namespace fl::py_bind {
namespace {

using armour::Bytes;

Bytes ToBytes(const py::bytes& b) {
  std::string_view view = b;
  return Bytes(view.begin(), view.end());
}

py::bytes ToPy(const Bytes& b) { return py::bytes(reinterpret_cast<const char*>(b.data()), b.size()); }

// The float32 buffer of `acc`, refused unless it is 1-D, C-contiguous and writeable (never a silent copy).
std::pair<float*, size_t> Accumulator(py::array& acc) {
  if (!acc.dtype().is(py::dtype::of<float>())) throw py::value_error("acc must be a float32 array");
  if (acc.ndim() != 1) throw py::value_error("acc must be 1-D");
  if (!(acc.flags() & py::array::c_style)) throw py::value_error("acc must be C-contiguous");
  if (!acc.writeable()) throw py::value_error("acc must be writeable");
  return {static_cast<float*>(acc.mutable_data()), static_cast<size_t>(acc.size())};
}

py::tuple X25519Keypair() {
  std::pair<Bytes, Bytes> kp;
  {
    py::gil_scoped_release release;
    kp = armour::X25519Keypair();
  }
  return py::make_tuple(ToPy(kp.first), ToPy(kp.second));
}

template <typename Fn>
py::bytes Released(Fn&& fn) {
  Bytes out;
  {
    py::gil_scoped_release release;
    out = fn();
  }
  return ToPy(out);
}

py::bytes X25519Agree(const py::bytes& priv, const py::bytes& peer) {
  Bytes a = ToBytes(priv), b = ToBytes(peer);
  return Released([&] { return armour::X25519Agree(a, b); });
}

py::bytes Pbkdf2Sha256(const py::bytes& password, const py::bytes& salt, int iterations, size_t length) {
  Bytes pw = ToBytes(password), s = ToBytes(salt);
  return Released([&] { return armour::Pbkdf2Sha256(pw, s, iterations, length); });
}

py::bytes PairwiseKey(const py::bytes& priv, const py::bytes& peer, const py::bytes& salt) {
  Bytes a = ToBytes(priv), b = ToBytes(peer), s = ToBytes(salt);
  return Released([&] { return armour::PairwiseKey(a, b, s); });
}

void AddMask(py::array acc, const py::bytes& key, const py::bytes& iv, float scale, size_t offset) {
  auto [data, n] = Accumulator(acc);
  Bytes k = ToBytes(key), v = ToBytes(iv);
  py::gil_scoped_release release;
  armour::AddMask(data, n, k, v, scale, offset);
}

void AddMasks(py::array acc, const std::vector<std::tuple<py::bytes, py::bytes, float>>& jobs, int threads) {
  auto [data, n] = Accumulator(acc);
  std::vector<armour::MaskJob> copied;
  copied.reserve(jobs.size());
  for (const auto& [key, iv, scale] : jobs) copied.push_back({ToBytes(key), ToBytes(iv), scale});
  py::gil_scoped_release release;
  armour::AddMasks(data, n, copied, threads);
}

py::list PairwiseKeys(const py::bytes& priv, const std::vector<std::pair<py::bytes, py::bytes>>& peers,
                      int threads) {
  Bytes a = ToBytes(priv);
  std::vector<std::pair<Bytes, Bytes>> copied;
  copied.reserve(peers.size());
  for (const auto& [pub, salt] : peers) copied.emplace_back(ToBytes(pub), ToBytes(salt));
  std::vector<Bytes> keys;
  {
    py::gil_scoped_release release;
    keys = armour::PairwiseKeys(a, copied, threads);
  }
  py::list out;
  for (const auto& k : keys) out.append(ToPy(k));
  return out;
}

py::list ShamirSplit(const py::bytes& secret, int threshold, int count, const py::bytes& prime) {
  Bytes s = ToBytes(secret), p = ToBytes(prime);
  std::vector<armour::Share> shares;
  {
    py::gil_scoped_release release;
    shares = armour::ShamirSplit(s, threshold, count, p);
  }
  py::list out;
  for (const auto& [index, y] : shares) out.append(py::make_tuple(index, ToPy(y)));
  return out;
}

py::bytes ShamirCombine(const std::vector<std::pair<uint32_t, py::bytes>>& shares, const py::bytes& prime,
                        size_t length) {
  std::vector<armour::Share> copied;
  copied.reserve(shares.size());
  for (const auto& [index, y] : shares) copied.emplace_back(index, ToBytes(y));
  Bytes p = ToBytes(prime);
  return Released([&] { return armour::ShamirCombine(copied, p, length); });
}

py::bytes GeneratePrime() {
  return Released([] { return armour::GeneratePrime(); });
}

}  // namespace

void BindArmour(py::module_& m) {
  m.def("armour_x25519_keypair", &X25519Keypair);
  m.def("armour_x25519_agree", &X25519Agree, py::arg("private_key"), py::arg("peer_public"));
  m.def("armour_pbkdf2_sha256", &Pbkdf2Sha256, py::arg("password"), py::arg("salt"), py::arg("iterations"),
        py::arg("length"));
  m.def("armour_pairwise_key", &PairwiseKey, py::arg("private_key"), py::arg("peer_public"), py::arg("salt"));
  m.def("armour_add_mask", &AddMask, py::arg("acc"), py::arg("key"), py::arg("iv"), py::arg("scale"),
        py::arg("offset"));
  m.def("armour_pairwise_keys", &PairwiseKeys, py::arg("private_key"), py::arg("peers"), py::arg("threads"));
  m.def("armour_add_masks", &AddMasks, py::arg("acc"), py::arg("jobs"), py::arg("threads"));
  m.def("armour_shamir_split", &ShamirSplit, py::arg("secret"), py::arg("threshold"), py::arg("count"),
        py::arg("prime"));
  m.def("armour_shamir_combine", &ShamirCombine, py::arg("shares"), py::arg("prime"), py::arg("length"));
  m.def("armour_generate_prime", &GeneratePrime);
}

}  // namespace fl::py_bind
