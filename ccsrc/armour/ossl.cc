// Error helpers and BIGNUM constructors shared by the armour kernels.
#include "armour/ossl.h"

#include <openssl/err.h>

#include "common/error.h"

namespace fl::armour {

void ThrowOpenSsl(const std::string& what) {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  char buf[256] = "no OpenSSL error queued";
  if (code != 0) ERR_error_string_n(code, buf, sizeof(buf));
  throw Exception("armour: " + what + " failed: " + buf);
}

void ThrowBadArgument(const std::string& text) { throw EnforceError(text); }

BnPtr NewBn() {
  BnPtr bn(BN_new());
  if (!bn) ThrowOpenSsl("BN_new");
  return bn;
}

BnPtr BnFromBytes(const Bytes& big_endian) {
  BnPtr bn(BN_bin2bn(big_endian.data(), static_cast<int>(big_endian.size()), nullptr));
  if (!bn) ThrowOpenSsl("BN_bin2bn");
  return bn;
}

}  // namespace fl::armour
