// The cluster prime of PW_ENCRYPT secret sharing.
#pragma once

#include <cstddef>

#include "armour/ossl.h"

namespace fl::armour {

constexpr size_t kPrimeBytes = 33;
constexpr int kPrimeBits = 264;

// A fresh 264-bit safe prime (p and (p-1)/2 prime), big-endian, exactly 33 bytes.
Bytes GeneratePrime();

}  // namespace fl::armour
