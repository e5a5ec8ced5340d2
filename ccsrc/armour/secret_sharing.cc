// Polynomial evaluation and Lagrange interpolation with OpenSSL BIGNUM (constant modulus, BN_CTX scratch).
#include "armour/secret_sharing.h"

#include <set>
#include <string>

namespace fl::armour {
namespace {

BnPtr CheckedPrime(const Bytes& prime) {
  BnPtr p = BnFromBytes(prime);
  if (BN_cmp(p.get(), BN_value_one()) <= 0 || !BN_is_odd(p.get())) {
    ThrowBadArgument("shamir: prime must be an odd number > 1");
  }
  return p;
}

BnPtr BnFromWord(uint32_t w) {
  BnPtr bn = NewBn();
  CheckOpenSsl(BN_set_word(bn.get(), w), "BN_set_word");
  return bn;
}

Bytes ToPadded(const BIGNUM* v, size_t length, const char* what) {
  Bytes out(length);
  if (static_cast<size_t>(BN_num_bytes(v)) > length ||
      BN_bn2binpad(v, out.data(), static_cast<int>(length)) < 0) {
    ThrowBadArgument(std::string("shamir: ") + what + " does not fit in " + std::to_string(length) +
                     " bytes");
  }
  return out;
}

}  // namespace

std::vector<Share> ShamirSplit(const Bytes& secret, int threshold, int count, const Bytes& prime) {
  if (threshold < 1 || count < threshold) {
    ThrowBadArgument("shamir: need 1 <= threshold <= count, got threshold " + std::to_string(threshold) +
                     ", count " + std::to_string(count));
  }
  BnPtr p = CheckedPrime(prime);
  BnPtr s = BnFromBytes(secret);
  if (BN_cmp(s.get(), p.get()) >= 0) ThrowBadArgument("shamir: secret must be smaller than the prime");
  BnCtxPtr ctx(BN_CTX_secure_new());
  if (!ctx) ThrowOpenSsl("BN_CTX_new");
  // coeffs[0] = secret, coeffs[1..t-1] uniform in [0, p) from the CSPRNG.
  std::vector<BnPtr> coeffs;
  coeffs.push_back(std::move(s));
  for (int k = 1; k < threshold; ++k) {
    BnPtr c = NewBn();
    CheckOpenSsl(BN_priv_rand_range(c.get(), p.get()), "BN_priv_rand_range");
    coeffs.push_back(std::move(c));
  }
  std::vector<Share> shares;
  BnPtr y = NewBn();
  for (int i = 1; i <= count; ++i) {
    BnPtr x = BnFromWord(static_cast<uint32_t>(i));
    // Horner: y = (((c_{t-1} x + c_{t-2}) x + ...) x + c_0) mod p
    CheckOpenSsl(BN_copy(y.get(), coeffs.back().get()) != nullptr, "BN_copy");
    for (size_t k = coeffs.size() - 1; k-- > 0;) {
      CheckOpenSsl(BN_mod_mul(y.get(), y.get(), x.get(), p.get(), ctx.get()), "BN_mod_mul");
      CheckOpenSsl(BN_mod_add(y.get(), y.get(), coeffs[k].get(), p.get(), ctx.get()), "BN_mod_add");
    }
    shares.emplace_back(static_cast<uint32_t>(i), ToPadded(y.get(), prime.size(), "share"));
  }
  return shares;
}

Bytes ShamirCombine(const std::vector<Share>& shares, const Bytes& prime, size_t length) {
  if (shares.empty()) ThrowBadArgument("shamir: no shares to combine");
  if (length < 1) ThrowBadArgument("shamir: length must be >= 1");
  BnPtr p = CheckedPrime(prime);
  std::set<uint32_t> seen;
  std::vector<BnPtr> xs, ys;
  for (const auto& [index, y] : shares) {
    if (index == 0) ThrowBadArgument("shamir: share index 0 is not allowed");
    if (!seen.insert(index).second)
      ThrowBadArgument("shamir: duplicate share index " + std::to_string(index));
    BnPtr yb = BnFromBytes(y);
    if (BN_cmp(yb.get(), p.get()) >= 0) {
      ThrowBadArgument("shamir: share " + std::to_string(index) + " is not smaller than the prime");
    }
    xs.push_back(BnFromWord(index));
    ys.push_back(std::move(yb));
  }
  BnCtxPtr ctx(BN_CTX_secure_new());
  if (!ctx) ThrowOpenSsl("BN_CTX_new");
  BnPtr sum = NewBn(), num = NewBn(), den = NewBn(), diff = NewBn(), term = NewBn();
  BN_zero(sum.get());
  for (size_t j = 0; j < xs.size(); ++j) {
    // l_j(0) = prod_{m != j} x_m / (x_m - x_j)
    CheckOpenSsl(BN_one(num.get()), "BN_one");
    CheckOpenSsl(BN_one(den.get()), "BN_one");
    for (size_t m = 0; m < xs.size(); ++m) {
      if (m == j) continue;
      CheckOpenSsl(BN_mod_mul(num.get(), num.get(), xs[m].get(), p.get(), ctx.get()), "BN_mod_mul");
      CheckOpenSsl(BN_mod_sub(diff.get(), xs[m].get(), xs[j].get(), p.get(), ctx.get()), "BN_mod_sub");
      CheckOpenSsl(BN_mod_mul(den.get(), den.get(), diff.get(), p.get(), ctx.get()), "BN_mod_mul");
    }
    if (BN_mod_inverse(den.get(), den.get(), p.get(), ctx.get()) == nullptr) {
      ThrowBadArgument("shamir: share indices are not invertible modulo the prime");
    }
    CheckOpenSsl(BN_mod_mul(term.get(), num.get(), den.get(), p.get(), ctx.get()), "BN_mod_mul");
    CheckOpenSsl(BN_mod_mul(term.get(), term.get(), ys[j].get(), p.get(), ctx.get()), "BN_mod_mul");
    CheckOpenSsl(BN_mod_add(sum.get(), sum.get(), term.get(), p.get(), ctx.get()), "BN_mod_add");
  }
  return ToPadded(sum.get(), length, "combined secret");
}

}  // namespace fl::armour
