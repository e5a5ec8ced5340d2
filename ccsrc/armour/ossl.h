// Shared pieces of the armour kernels: the byte type, RAII owners of OpenSSL objects, error helpers.
#pragma once

#include <openssl/bn.h>
#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace fl::armour {

using Bytes = std::vector<uint8_t>;

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* p) const { EVP_CIPHER_CTX_free(p); }
};
struct BnFree {
  void operator()(BIGNUM* p) const { BN_clear_free(p); }
};
struct BnCtxFree {
  void operator()(BN_CTX* p) const { BN_CTX_free(p); }
};

using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;
using BnCtxPtr = std::unique_ptr<BN_CTX, BnCtxFree>;

// Throws fl::Exception naming `what` and the first queued OpenSSL error (clears the queue).
[[noreturn]] void ThrowOpenSsl(const std::string& what);

// Throws fl::EnforceError (ValueError in Python) with `text` as the whole message.
[[noreturn]] void ThrowBadArgument(const std::string& text);

// ThrowOpenSsl(what) unless `ok` (an OpenSSL return value, 1 on success).
inline void CheckOpenSsl(int ok, const char* what) {
  if (ok != 1) ThrowOpenSsl(what);
}

BnPtr NewBn();
BnPtr BnFromBytes(const Bytes& big_endian);

}  // namespace fl::armour
