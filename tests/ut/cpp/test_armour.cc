// Armour kernels against published vectors: RFC 7748 (X25519), PBKDF2-HMAC-SHA256, NIST SP 800-38A F.5.5
// (AES-256-CTR), and Shamir round trips over a 264-bit safe prime.
#include <gtest/gtest.h>

#include <climits>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "armour/key_agreement.h"
#include "armour/masking.h"
#include "armour/prime.h"
#include "armour/secret_sharing.h"
#include "common/error.h"

namespace {

using fl::armour::Bytes;

Bytes Hex(const std::string& hex) {
  Bytes out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16)));
  return out;
}

Bytes Str(const std::string& s) { return Bytes(s.begin(), s.end()); }

// generated once with GeneratePrime(); a safe prime (checked in the Python tests)
const Bytes kPrime = Hex("c23ae0e39e4f67668b6cc94948d34e9f52fb0e4c595069f3572b7d83104dcc9cdb");

TEST(ArmourX25519, Rfc7748Section61) {
  Bytes alice = Hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  Bytes alice_pub = Hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  Bytes bob = Hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
  Bytes bob_pub = Hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
  Bytes shared = Hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
  EXPECT_EQ(fl::armour::X25519Agree(alice, bob_pub), shared);
  EXPECT_EQ(fl::armour::X25519Agree(bob, alice_pub), shared);
}

TEST(ArmourX25519, Rfc7748Section52) {
  Bytes scalar = Hex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4");
  Bytes u = Hex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c");
  EXPECT_EQ(fl::armour::X25519Agree(scalar, u),
            Hex("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"));
}

TEST(ArmourX25519, KeypairAgreesBothWays) {
  auto [a, a_pub] = fl::armour::X25519Keypair();
  auto [b, b_pub] = fl::armour::X25519Keypair();
  EXPECT_EQ(a.size(), 32u);
  EXPECT_EQ(a_pub.size(), 32u);
  EXPECT_NE(a, b);
  EXPECT_EQ(fl::armour::X25519Agree(a, b_pub), fl::armour::X25519Agree(b, a_pub));
  Bytes salt(32, 7);
  EXPECT_EQ(fl::armour::PairwiseKey(a, b_pub, salt), fl::armour::PairwiseKey(b, a_pub, salt));
}

TEST(ArmourX25519, BadSizesAndLowOrderPointAreRefused) {
  EXPECT_THROW(fl::armour::X25519Agree(Bytes(31), Bytes(32)), fl::EnforceError);
  EXPECT_THROW(fl::armour::X25519Agree(Bytes(32, 1), Bytes(33)), fl::EnforceError);
  EXPECT_THROW(fl::armour::X25519Agree(Bytes(32, 1), Bytes(32)), fl::EnforceError);
}

TEST(ArmourPbkdf2, KnownVectors) {
  EXPECT_EQ(fl::armour::Pbkdf2Sha256(Str("password"), Str("salt"), 1, 32),
            Hex("120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"));
  EXPECT_EQ(fl::armour::Pbkdf2Sha256(Str("password"), Str("salt"), 2, 32),
            Hex("ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43"));
  EXPECT_EQ(fl::armour::Pbkdf2Sha256(Str("password"), Str("salt"), 4096, 32),
            Hex("c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a"));
  EXPECT_EQ(fl::armour::Pbkdf2Sha256(Str("passwordPASSWORDpassword"),
                                     Str("saltSALTsaltSALTsaltSALTsaltSALTsalt"), 4096, 40),
            Hex("348c89dbcbd32b2f32d814b8116e84cf2b17347ebc1800181c4e2a1fb8dd53e1c635518c7dac47e9"));
  EXPECT_EQ(
      fl::armour::Pbkdf2Sha256(Str(std::string("pass\0word", 9)), Str(std::string("sa\0lt", 5)), 4096, 16),
      Hex("89b69d0516f829893c696226650a8687"));
  EXPECT_THROW(fl::armour::Pbkdf2Sha256(Str("p"), Str("s"), 0, 32), fl::EnforceError);
}

// NIST SP 800-38A F.5.5 (CTR-AES256.Encrypt): keystream = plaintext XOR ciphertext, 4 blocks.
Bytes NistKeystream() {
  Bytes pt =
      Hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
          "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710");
  Bytes ct =
      Hex("601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c5"
          "2b0930daa23de94ce87017ba2d84988ddfc9c58db67aada613c2dd08457941a6");
  for (size_t i = 0; i < pt.size(); ++i) pt[i] ^= ct[i];
  return pt;
}

float MaskOf(const Bytes& stream, size_t k) {
  uint32_t bits = static_cast<uint32_t>(stream[4 * k]) | static_cast<uint32_t>(stream[4 * k + 1]) << 8 |
                  static_cast<uint32_t>(stream[4 * k + 2]) << 16 |
                  static_cast<uint32_t>(stream[4 * k + 3]) << 24;
  int32_t v;
  std::memcpy(&v, &bits, sizeof(v));
  return static_cast<float>(v) / static_cast<float>(INT32_MAX);
}

const Bytes kNistKey = Hex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4");
const Bytes kNistIv = Hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");

TEST(ArmourMask, Aes256CtrKnownAnswer) {
  Bytes stream = NistKeystream();
  std::vector<float> acc(16, 0.0f);
  fl::armour::AddMask(acc.data(), acc.size(), kNistKey, kNistIv, 1.0f, 0);
  for (size_t k = 0; k < acc.size(); ++k) ASSERT_EQ(acc[k], MaskOf(stream, k)) << "element " << k;
}

TEST(ArmourMask, OffsetsNotAlignedToTheBlock) {
  Bytes stream = NistKeystream();
  for (size_t offset = 0; offset < 16; ++offset) {
    std::vector<float> acc(16 - offset, 1.0f);
    fl::armour::AddMask(acc.data(), acc.size(), kNistKey, kNistIv, -2.0f, offset);
    for (size_t i = 0; i < acc.size(); ++i) {
      ASSERT_EQ(acc[i], 1.0f + -2.0f * MaskOf(stream, offset + i)) << "offset " << offset << " element " << i;
    }
  }
}

TEST(ArmourMask, MasksCancelAndAddMasksMatchesAddMask) {
  Bytes key(32, 3), iv(16, 9);
  std::vector<float> acc(5003, 0.0f);  // from zero, m - m is exact
  fl::armour::AddMask(acc.data(), acc.size(), key, iv, 1.0f, 0);
  fl::armour::AddMask(acc.data(), acc.size(), key, iv, -1.0f, 0);
  for (float x : acc) ASSERT_EQ(x, 0.0f);
  std::vector<float> one(acc.size(), 0.25f), many(one);
  std::vector<fl::armour::MaskJob> jobs = {{key, iv, 0.5f}, {Bytes(32, 4), iv, -3.0f}};
  for (const auto& j : jobs) fl::armour::AddMask(one.data(), one.size(), j.key, j.iv, j.scale, 0);
  fl::armour::AddMasks(many.data(), many.size(), jobs);
  EXPECT_EQ(one, many);
}

TEST(ArmourMask, ThreadedAddMasksIsBitIdentical) {
  std::vector<fl::armour::MaskJob> jobs;
  for (uint8_t j = 0; j < 8; ++j)
    jobs.push_back({Bytes(32, j), Bytes(16, static_cast<uint8_t>(j * 3)), 0.5f * j - 1});
  std::vector<float> one(300007, 0.1f), many(one);
  fl::armour::AddMasks(one.data(), one.size(), jobs, 1);
  fl::armour::AddMasks(many.data(), many.size(), jobs, 3);
  EXPECT_EQ(one, many);
}

TEST(ArmourX25519, PairwiseKeysOnThreadsMatchOneByOne) {
  auto [priv, unused] = fl::armour::X25519Keypair();
  std::vector<std::pair<Bytes, Bytes>> peers;
  for (int i = 0; i < 4; ++i)
    peers.emplace_back(fl::armour::X25519Keypair().second, Bytes(32, static_cast<uint8_t>(i)));
  auto keys = fl::armour::PairwiseKeys(priv, peers, 2);
  ASSERT_EQ(keys.size(), peers.size());
  for (size_t i = 0; i < peers.size(); ++i)
    EXPECT_EQ(keys[i], fl::armour::PairwiseKey(priv, peers[i].first, peers[i].second));
  peers[2].first = Bytes(32, 0);  // low-order point: the worker's error reaches the caller
  EXPECT_THROW(fl::armour::PairwiseKeys(priv, peers, 2), fl::EnforceError);
}

TEST(ArmourMask, BadSizesAreRefused) {
  float acc[4] = {};
  EXPECT_THROW(fl::armour::AddMask(acc, 4, Bytes(16), Bytes(16), 1.0f, 0), fl::EnforceError);
  EXPECT_THROW(fl::armour::AddMask(acc, 4, Bytes(32), Bytes(12), 1.0f, 0), fl::EnforceError);
}

TEST(ArmourShamir, SmallPrimeKnownAnswer) {
  // f(x) = 5 + 3x + 2x^2 mod 23: f(1) = 10, f(2) = 19, f(3) = 9
  std::vector<fl::armour::Share> shares = {{1, {10}}, {2, {19}}, {3, {9}}};
  EXPECT_EQ(fl::armour::ShamirCombine(shares, {23}, 2), Bytes({0, 5}));
  std::vector<fl::armour::Share> reordered = {{3, {9}}, {1, {10}}, {2, {19}}};
  EXPECT_EQ(fl::armour::ShamirCombine(reordered, {23}, 1), Bytes({5}));
}

TEST(ArmourShamir, AnyThresholdSubsetRecovers) {
  auto [secret, unused] = fl::armour::X25519Keypair();
  auto shares = fl::armour::ShamirSplit(secret, 3, 5, kPrime);
  ASSERT_EQ(shares.size(), 5u);
  for (const auto& [index, y] : shares) ASSERT_EQ(y.size(), kPrime.size()) << "share " << index;
  for (size_t a = 0; a < 5; ++a) {
    for (size_t b = a + 1; b < 5; ++b) {
      for (size_t c = b + 1; c < 5; ++c) {
        std::vector<fl::armour::Share> subset = {shares[a], shares[b], shares[c]};
        ASSERT_EQ(fl::armour::ShamirCombine(subset, kPrime, 32), secret) << a << b << c;
      }
    }
  }
}

TEST(ArmourShamir, LeadingZeroSecretIsLeftPadded) {
  Bytes secret(32, 0xab);
  secret[0] = 0x00;
  secret[1] = 0x00;
  auto shares = fl::armour::ShamirSplit(secret, 2, 4, kPrime);
  std::vector<fl::armour::Share> subset = {shares[3], shares[1]};
  Bytes recovered = fl::armour::ShamirCombine(subset, kPrime, 32);
  EXPECT_EQ(recovered, secret);
  Bytes zero(32, 0);
  auto zero_shares = fl::armour::ShamirSplit(zero, 2, 2, kPrime);
  EXPECT_EQ(fl::armour::ShamirCombine(zero_shares, kPrime, 32), zero);
}

TEST(ArmourShamir, BadSharesAreRefused) {
  std::vector<fl::armour::Share> dup = {{1, {1}}, {1, {2}}};
  EXPECT_THROW(fl::armour::ShamirCombine(dup, kPrime, 32), fl::EnforceError);
  std::vector<fl::armour::Share> zero = {{0, {1}}};
  EXPECT_THROW(fl::armour::ShamirCombine(zero, kPrime, 32), fl::EnforceError);
  std::vector<fl::armour::Share> big = {{1, Bytes(33, 0xff)}};
  EXPECT_THROW(fl::armour::ShamirCombine(big, kPrime, 32), fl::EnforceError);
  EXPECT_THROW(fl::armour::ShamirSplit(Bytes(32, 1), 3, 2, kPrime), fl::EnforceError);
  EXPECT_THROW(fl::armour::ShamirSplit(Bytes(33, 0xff), 2, 3, kPrime), fl::EnforceError);
}

TEST(ArmourPrime, Is264BitsAndSafe) {
  Bytes p = fl::armour::GeneratePrime();
  ASSERT_EQ(p.size(), fl::armour::kPrimeBytes);
  EXPECT_GE(p[0], 0x80);  // exactly 264 bits
  EXPECT_EQ(p.back() & 1, 1);
  // it works as a Shamir field for 32-byte secrets
  Bytes secret(32, 0xff);
  auto shares = fl::armour::ShamirSplit(secret, 2, 3, p);
  std::vector<fl::armour::Share> subset = {shares[0], shares[2]};
  EXPECT_EQ(fl::armour::ShamirCombine(subset, p, 32), secret);
}

}  // namespace
