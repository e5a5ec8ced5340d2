// AES-256-CTR keystream generated block by block into a small stack buffer and folded into the accumulator.
// Built with -ffp-contract=off so that scale * m + acc is two float32 roundings on every target (the device
// SDK computes the same mask with numpy).
#include "armour/masking.h"

#include <climits>
#include <cstdint>
#include <string>

#include "armour/key_agreement.h"
#include "armour/parallel.h"

namespace fl::armour {
namespace {

// Keystream bytes per EVP call: 1024 int32 values, small enough to stay in L1.
constexpr size_t kChunkInts = 1024;
constexpr size_t kAesBlock = 16;
// AddMasks uses a thread per slice of at least this many elements, and only when there is enough work.
constexpr size_t kMinSlice = 1 << 16;
constexpr size_t kMinParallelWork = 1 << 21;  // elements x jobs
// The stream is read as little-endian int32 values; the loads below are native.
constexpr bool kLittleEndian = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;

void CheckSizes(const Bytes& key, const Bytes& iv) {
  if (key.size() != kKeyBytes)
    ThrowBadArgument("mask: key must be 32 bytes, got " + std::to_string(key.size()));
  if (iv.size() != kIvBytes) ThrowBadArgument("mask: iv must be 16 bytes, got " + std::to_string(iv.size()));
}

// iv + blocks as 128-bit big-endian integers (mod 2^128), the counter block of keystream block `blocks`.
Bytes AdvanceCounter(const Bytes& iv, uint64_t blocks) {
  Bytes ctr = iv;
  unsigned carry = 0;
  for (size_t i = 0; i < kIvBytes; ++i) {
    size_t pos = kIvBytes - 1 - i;
    unsigned add = (i < 8 ? static_cast<unsigned>((blocks >> (8 * i)) & 0xff) : 0u) + carry;
    unsigned sum = ctr[pos] + add;
    ctr[pos] = static_cast<uint8_t>(sum & 0xff);
    carry = sum >> 8;
  }
  return ctr;
}

class KeyStream {
 public:
  // Positioned at int32 number `offset` of the stream of (key, iv).
  KeyStream(const Bytes& key, const Bytes& iv, size_t offset) : ctx_(EVP_CIPHER_CTX_new()) {
    if (!ctx_) ThrowOpenSsl("EVP_CIPHER_CTX_new");
    size_t byte_offset = offset * sizeof(int32_t);
    Bytes ctr = AdvanceCounter(iv, byte_offset / kAesBlock);
    CheckOpenSsl(EVP_EncryptInit_ex(ctx_.get(), EVP_aes_256_ctr(), nullptr, key.data(), ctr.data()),
                 "EVP_EncryptInit_ex(aes-256-ctr)");
    size_t skip = byte_offset % kAesBlock;
    if (skip > 0) {
      uint8_t discard[kAesBlock];
      Fill(discard, skip);
    }
  }

  // The next `bytes` keystream bytes into out.
  void Fill(uint8_t* out, size_t bytes) {
    static const uint8_t kZeros[kChunkInts * sizeof(int32_t)] = {};
    int len = 0;
    CheckOpenSsl(EVP_EncryptUpdate(ctx_.get(), out, &len, kZeros, static_cast<int>(bytes)),
                 "EVP_EncryptUpdate");
    if (static_cast<size_t>(len) != bytes) ThrowOpenSsl("EVP_EncryptUpdate length");
  }

 private:
  CipherCtxPtr ctx_;
};

void AddChecked(float* acc, size_t n, const Bytes& key, const Bytes& iv, float scale, size_t offset) {
  KeyStream stream(key, iv, offset);
  alignas(64) int32_t values[kChunkInts];
  const float int32_max = static_cast<float>(INT32_MAX);  // 2^31 after rounding
  for (size_t done = 0; done < n;) {
    size_t count = n - done < kChunkInts ? n - done : kChunkInts;
    stream.Fill(reinterpret_cast<uint8_t*>(values), count * sizeof(int32_t));
    if constexpr (!kLittleEndian) {
      for (size_t i = 0; i < count; ++i) values[i] = static_cast<int32_t>(__builtin_bswap32(values[i]));
    }
    float* out = acc + done;
    for (size_t i = 0; i < count; ++i) out[i] += scale * (static_cast<float>(values[i]) / int32_max);
    done += count;
  }
}

}  // namespace

void AddMask(float* acc, size_t n, const Bytes& key, const Bytes& iv, float scale, size_t offset) {
  CheckSizes(key, iv);
  AddChecked(acc, n, key, iv, scale, offset);
}

void AddMasks(float* acc, size_t n, const std::vector<MaskJob>& jobs, int threads) {
  for (const auto& job : jobs) CheckSizes(job.key, job.iv);
  size_t slices = n * jobs.size() >= kMinParallelWork ? WorkerCount(n / kMinSlice, threads) : 1;
  size_t per_slice = (n + slices - 1) / slices;
  ParallelFor(slices, slices, [&](size_t s) {
    size_t lo = s * per_slice, hi = lo + per_slice < n ? lo + per_slice : n;
    if (lo >= hi) return;
    for (const auto& job : jobs) AddChecked(acc + lo, hi - lo, job.key, job.iv, job.scale, lo);
  });
}

}  // namespace fl::armour
