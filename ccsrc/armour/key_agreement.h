// X25519 key agreement and PBKDF2-HMAC-SHA256 key derivation (the pairwise-mask key of PW_ENCRYPT).
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

#include "armour/ossl.h"

namespace fl::armour {

constexpr size_t kKeyBytes = 32;
constexpr int kPairwiseIterations = 10000;

// A fresh X25519 key pair from the OpenSSL CSPRNG: (raw private 32 bytes, raw public 32 bytes).
std::pair<Bytes, Bytes> X25519Keypair();

// The raw 32-byte X25519 shared secret. Throws EnforceError if a key has the wrong size or the peer key is
// a low-order point (all-zero secret).
Bytes X25519Agree(const Bytes& private_key, const Bytes& peer_public);

// PBKDF2-HMAC-SHA256(password, salt, iterations) truncated/extended to `length` bytes.
Bytes Pbkdf2Sha256(const Bytes& password, const Bytes& salt, int iterations, size_t length);

// PBKDF2-HMAC-SHA256(X25519Agree(private_key, peer_public), salt, 10000, 32).
Bytes PairwiseKey(const Bytes& private_key, const Bytes& peer_public, const Bytes& salt);

// PairwiseKey(private_key, peer, salt) for every (peer, salt), in order, on `threads` threads (0: all cores).
std::vector<Bytes> PairwiseKeys(const Bytes& private_key, const std::vector<std::pair<Bytes, Bytes>>& peers,
                                int threads);

}  // namespace fl::armour
