// Little-endian load/store helpers for the wire formats (framing.h, mailbox.h).
#pragma once

#include <cstddef>
#include <cstdint>

namespace fl::comm {

template <typename T>
inline void putLe(unsigned char* p, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) {
    p[i] = static_cast<unsigned char>(static_cast<uint64_t>(v) >> (8 * i));
  }
}

template <typename T>
inline T getLe(const unsigned char* p) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return static_cast<T>(v);
}

}  // namespace fl::comm
