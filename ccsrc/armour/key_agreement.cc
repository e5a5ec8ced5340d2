// X25519 through the EVP_PKEY raw-key API, PBKDF2 through PKCS5_PBKDF2_HMAC.
#include "armour/key_agreement.h"

#include <openssl/crypto.h>

#include <string>

#include "armour/parallel.h"

namespace fl::armour {
namespace {

void CheckKeySize(const Bytes& key, const char* name) {
  if (key.size() != kKeyBytes) {
    ThrowBadArgument(std::string("x25519: ") + name + " must be 32 bytes, got " + std::to_string(key.size()));
  }
}

}  // namespace

std::pair<Bytes, Bytes> X25519Keypair() {
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, nullptr));
  if (!ctx) ThrowOpenSsl("EVP_PKEY_CTX_new_id(X25519)");
  CheckOpenSsl(EVP_PKEY_keygen_init(ctx.get()), "EVP_PKEY_keygen_init");
  EVP_PKEY* raw = nullptr;
  CheckOpenSsl(EVP_PKEY_keygen(ctx.get(), &raw), "EVP_PKEY_keygen");
  PkeyPtr key(raw);
  Bytes priv(kKeyBytes), pub(kKeyBytes);
  size_t priv_len = priv.size(), pub_len = pub.size();
  CheckOpenSsl(EVP_PKEY_get_raw_private_key(key.get(), priv.data(), &priv_len), "get_raw_private_key");
  CheckOpenSsl(EVP_PKEY_get_raw_public_key(key.get(), pub.data(), &pub_len), "get_raw_public_key");
  if (priv_len != kKeyBytes || pub_len != kKeyBytes) ThrowOpenSsl("X25519 raw key size");
  return {std::move(priv), std::move(pub)};
}

Bytes X25519Agree(const Bytes& private_key, const Bytes& peer_public) {
  CheckKeySize(private_key, "private key");
  CheckKeySize(peer_public, "peer public key");
  PkeyPtr own(EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, private_key.data(), kKeyBytes));
  if (!own) ThrowOpenSsl("EVP_PKEY_new_raw_private_key");
  PkeyPtr peer(EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, peer_public.data(), kKeyBytes));
  if (!peer) ThrowOpenSsl("EVP_PKEY_new_raw_public_key");
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new(own.get(), nullptr));
  if (!ctx) ThrowOpenSsl("EVP_PKEY_CTX_new");
  CheckOpenSsl(EVP_PKEY_derive_init(ctx.get()), "EVP_PKEY_derive_init");
  CheckOpenSsl(EVP_PKEY_derive_set_peer(ctx.get(), peer.get()), "EVP_PKEY_derive_set_peer");
  Bytes secret(kKeyBytes);
  size_t len = secret.size();
  if (EVP_PKEY_derive(ctx.get(), secret.data(), &len) != 1 || len != kKeyBytes) {
    // OpenSSL refuses an all-zero result, which only a low-order peer point produces.
    ThrowBadArgument("x25519: peer public key is a low-order point (no shared secret)");
  }
  return secret;
}

Bytes Pbkdf2Sha256(const Bytes& password, const Bytes& salt, int iterations, size_t length) {
  if (iterations < 1) ThrowBadArgument("pbkdf2: iterations must be >= 1, got " + std::to_string(iterations));
  if (length < 1) ThrowBadArgument("pbkdf2: length must be >= 1");
  Bytes out(length);
  // An empty vector's data() may be null; hand OpenSSL a valid pointer with a zero length instead.
  static const unsigned char kEmpty[1] = {0};
  const unsigned char* pass = password.empty() ? kEmpty : password.data();
  const unsigned char* salt_data = salt.empty() ? kEmpty : salt.data();
  CheckOpenSsl(PKCS5_PBKDF2_HMAC(reinterpret_cast<const char*>(pass), static_cast<int>(password.size()),
                                 salt_data, static_cast<int>(salt.size()), iterations, EVP_sha256(),
                                 static_cast<int>(length), out.data()),
               "PKCS5_PBKDF2_HMAC");
  return out;
}

Bytes PairwiseKey(const Bytes& private_key, const Bytes& peer_public, const Bytes& salt) {
  Bytes secret = X25519Agree(private_key, peer_public);
  Bytes key = Pbkdf2Sha256(secret, salt, kPairwiseIterations, kKeyBytes);
  OPENSSL_cleanse(secret.data(), secret.size());
  return key;
}

std::vector<Bytes> PairwiseKeys(const Bytes& private_key, const std::vector<std::pair<Bytes, Bytes>>& peers,
                                int threads) {
  CheckKeySize(private_key, "private key");
  for (const auto& peer : peers) CheckKeySize(peer.first, "peer public key");
  std::vector<Bytes> keys(peers.size());
  ParallelFor(peers.size(), WorkerCount(peers.size(), threads),
              [&](size_t i) { keys[i] = PairwiseKey(private_key, peers[i].first, peers[i].second); });
  return keys;
}

}  // namespace fl::armour
