// Safe-prime generation with BN_generate_prime_ex2 (OpenSSL CSPRNG, probabilistic primality tests).
#include "armour/prime.h"

namespace fl::armour {

Bytes GeneratePrime() {
  BnPtr p = NewBn();
  BnCtxPtr ctx(BN_CTX_new());
  if (!ctx) ThrowOpenSsl("BN_CTX_new");
  CheckOpenSsl(BN_generate_prime_ex2(p.get(), kPrimeBits, 1, nullptr, nullptr, nullptr, ctx.get()),
               "BN_generate_prime_ex2");
  Bytes out(kPrimeBytes);
  if (BN_bn2binpad(p.get(), out.data(), static_cast<int>(out.size())) < 0) ThrowOpenSsl("BN_bn2binpad");
  return out;
}

}  // namespace fl::armour
