// Shamir secret sharing over a prime field: split with CSPRNG coefficients, combine by Lagrange at 0.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "armour/ossl.h"

namespace fl::armour {

// One share: x = index (>= 1), y = f(index) mod prime as big-endian bytes.
using Share = std::pair<uint32_t, Bytes>;

// `count` shares (indices 1..count) of `secret` (big-endian, < prime) any `threshold` of which recover it;
// each y is left-padded to the prime's byte length.
std::vector<Share> ShamirSplit(const Bytes& secret, int threshold, int count, const Bytes& prime);

// f(0) mod prime from the given shares (distinct indices, y < prime), left-padded to `length` bytes.
// Throws EnforceError if the result needs more than `length` bytes (wrong or too few shares).
Bytes ShamirCombine(const std::vector<Share>& shares, const Bytes& prime, size_t length);

}  // namespace fl::armour
