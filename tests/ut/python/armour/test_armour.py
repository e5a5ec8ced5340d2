"""mindspore_federated.armour against the `cryptography` package, numpy and a pure-Python Lagrange combine."""
import os
import random

import numpy as np
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mindspore_federated import armour

SIZES = [1, 3, 4, 5, 1023, 1024, 1025, 4097, 100_003]
OFFSETS = [0, 1, 2, 3, 4, 5, 1021, 4099]
# a fixed 264-bit safe prime made by armour.generate_prime(), checked below against Python big-ints
PRIME = bytes.fromhex("c23ae0e39e4f67668b6cc94948d34e9f52fb0e4c595069f3572b7d83104dcc9cdb")


def _raw_public(private):
    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _expected_mask(key, iv, offset, n):
    """The mask elements offset..offset+n-1 computed with cryptography's AES-CTR and numpy."""
    encryptor = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    stream = encryptor.update(bytes(4 * (offset + n)))[4 * offset:]
    return np.frombuffer(stream, dtype="<i4").astype(np.float32) / np.float32(2**31)


def _lagrange_at_zero(shares, p):
    total = 0
    for j, (xj, yj) in enumerate(shares):
        num, den = 1, 1
        for m, (xm, _) in enumerate(shares):
            if m != j:
                num = num * xm % p
                den = den * (xm - xj) % p
        total = (total + int.from_bytes(yj, "big") * num * pow(den, -1, p)) % p
    return total


def _is_probable_prime(n):
    if n % 2 == 0:
        return n == 2
    d, r = n - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    rng = random.Random(7)
    for _ in range(32):
        x = pow(rng.randrange(2, n - 1), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def test_x25519_matches_cryptography():
    # Prepare
    ours_priv, ours_pub = armour.x25519_keypair()
    other = X25519PrivateKey.generate()
    other_pub = other.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    # Execute
    secret = armour.x25519_agree(ours_priv, other_pub)
    # Assert
    assert ours_pub == _raw_public(ours_priv)
    assert secret == other.exchange(X25519PublicKey.from_public_bytes(ours_pub))
    assert len(secret) == armour.KEY_BYTES


def test_x25519_low_order_peer_is_refused():
    priv, _ = armour.x25519_keypair()
    with pytest.raises(ValueError, match="low-order"):
        armour.x25519_agree(priv, bytes(32))


@pytest.mark.parametrize("password,salt,iterations,length", [
    (b"password", b"salt", 1, 32), (b"password", b"salt", 4096, 20), (b"", b"", 3, 64),
    (os.urandom(32), os.urandom(32), 10000, 32), (b"pass\0word", b"sa\0lt", 7, 100),
])
def test_pbkdf2_matches_cryptography(password, salt, iterations, length):
    expect = PBKDF2HMAC(hashes.SHA256(), length, salt, iterations).derive(password)
    assert armour.pbkdf2_sha256(password, salt, iterations, length) == expect


def test_pbkdf2_known_vector():
    # PBKDF2-HMAC-SHA256("password", "salt", 1, 32), RFC 7914 section 11 style vector
    expect = bytes.fromhex("120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b")
    assert armour.pbkdf2_sha256(b"password", b"salt", 1, 32) == expect


def test_pairwise_key_is_symmetric_and_matches_cryptography():
    a_priv, a_pub = armour.x25519_keypair()
    b_priv, b_pub = armour.x25519_keypair()
    salt = os.urandom(32)
    shared = X25519PrivateKey.from_private_bytes(a_priv).exchange(X25519PublicKey.from_public_bytes(b_pub))
    expect = PBKDF2HMAC(hashes.SHA256(), 32, salt, 10000).derive(shared)
    assert armour.pairwise_key(a_priv, b_pub, salt) == expect
    assert armour.pairwise_key(b_priv, a_pub, salt) == expect


@pytest.mark.parametrize("threads", [0, 1, 2])
def test_pairwise_keys_equal_pairwise_key(threads):
    priv, _ = armour.x25519_keypair()
    peers = [(armour.x25519_keypair()[1], os.urandom(32)) for _ in range(5)]
    keys = armour.pairwise_keys(priv, peers, threads)
    assert keys == [armour.pairwise_key(priv, pub, salt) for pub, salt in peers]
    assert armour.pairwise_keys(priv, [], threads) == []


def test_pairwise_keys_error_in_a_worker_is_raised():
    priv, _ = armour.x25519_keypair()
    peers = [(armour.x25519_keypair()[1], b"s"), (bytes(32), b"s"), (armour.x25519_keypair()[1], b"s")]
    with pytest.raises(ValueError, match="low-order"):
        armour.pairwise_keys(priv, peers, 2)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("offset", OFFSETS)
def test_add_mask_matches_cryptography(n, offset):
    # Prepare
    rng = np.random.default_rng(n + offset)
    key, iv = os.urandom(32), os.urandom(16)
    acc = rng.standard_normal(n).astype(np.float32)
    scale = np.float32(-0.37)
    expect = acc + scale * _expected_mask(key, iv, offset, n)
    # Execute
    armour.add_mask(acc, key, iv, float(scale), offset)
    # Assert: bit-identical to the numpy formula of the docstring
    np.testing.assert_array_equal(acc, expect)


def test_add_mask_offset_masks_a_slice_of_the_concatenation():
    key, iv = os.urandom(32), os.urandom(16)
    whole = np.zeros(10_001, dtype=np.float32)
    armour.add_mask(whole, key, iv)
    parts = [np.zeros(k, dtype=np.float32) for k in (7, 4093, 5901)]
    offset = 0
    for part in parts:
        armour.add_mask(part, key, iv, 1.0, offset)
        offset += part.size
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_add_mask_counter_wraps_like_cryptography():
    key, iv = os.urandom(32), b"\xff" * 15 + b"\xfe"
    acc = np.zeros(40, dtype=np.float32)
    armour.add_mask(acc, key, iv, 1.0, 3)
    np.testing.assert_array_equal(acc, _expected_mask(key, iv, 3, 40))


def test_add_mask_into_a_large_array_in_place():
    n = 4_000_001
    key, iv = os.urandom(32), os.urandom(16)
    acc = np.ones(n, dtype=np.float32)
    armour.add_mask(acc, key, iv, 2.0)
    np.testing.assert_array_equal(acc, np.float32(1) + np.float32(2) * _expected_mask(key, iv, 0, n))


@pytest.mark.parametrize("n", [50_021, 300_007])  # the second one is split over threads (n * jobs >= 2**21)
@pytest.mark.parametrize("threads", [0, 1, 3])
def test_add_masks_equals_sequential_add_mask(n, threads):
    jobs = [(os.urandom(32), os.urandom(16), s) for s in (1.0, -1.0, 0.5, -0.125, 3.0, 1.0, -1.0, 0.75)]
    one = np.random.default_rng(3).standard_normal(n).astype(np.float32)
    many = one.copy()
    for key, iv, scale in jobs:
        armour.add_mask(one, key, iv, scale)
    armour.add_masks(many, jobs, threads)
    np.testing.assert_array_equal(many, one)


def test_pairwise_masks_cancel():
    a_priv, a_pub = armour.x25519_keypair()
    b_priv, b_pub = armour.x25519_keypair()
    salt, iv = os.urandom(32), os.urandom(16)
    acc = np.zeros(1000, dtype=np.float32)
    armour.add_mask(acc, armour.pairwise_key(a_priv, b_pub, salt), iv, 1.0)
    armour.add_mask(acc, armour.pairwise_key(b_priv, a_pub, salt), iv, -1.0)
    assert not acc.any()


def test_generate_prime_is_a_safe_264_bit_prime():
    p_bytes = armour.generate_prime()
    p = int.from_bytes(p_bytes, "big")
    assert len(p_bytes) == armour.PRIME_BYTES and p.bit_length() == 264
    assert _is_probable_prime(p) and _is_probable_prime((p - 1) // 2)


def test_fixed_prime_is_a_safe_prime():
    p = int.from_bytes(PRIME, "big")
    assert _is_probable_prime(p) and _is_probable_prime((p - 1) // 2)


@pytest.mark.parametrize("threshold,count", [(1, 1), (2, 3), (3, 5), (7, 10)])
def test_shamir_any_t_of_n_recovers(threshold, count):
    secret = os.urandom(32)
    shares = armour.shamir_split(secret, threshold, count, PRIME)
    assert [i for i, _ in shares] == list(range(1, count + 1))
    assert all(len(y) == armour.PRIME_BYTES for _, y in shares)
    rng = random.Random(threshold * 100 + count)
    for _ in range(5):
        subset = rng.sample(shares, threshold)
        assert armour.shamir_combine(subset, PRIME) == secret
        assert _lagrange_at_zero(subset, int.from_bytes(PRIME, "big")) == int.from_bytes(secret, "big")


@pytest.mark.parametrize("secret", [b"\x00" + os.urandom(31), b"\x00\x00\x00" + os.urandom(29), bytes(32),
                                    b"\x00" * 31 + b"\x01"])
def test_shamir_leading_zero_secret_is_left_padded(secret):
    shares = armour.shamir_split(secret, 3, 5, PRIME)
    recovered = armour.shamir_combine(shares[1:4], PRIME, 32)
    assert recovered == secret and len(recovered) == 32


def test_shamir_combine_matches_python_lagrange_on_foreign_shares():
    p = int.from_bytes(PRIME, "big")
    rng = random.Random(5)
    coeffs = [rng.randrange(p) for _ in range(4)]
    shares = [(x, sum(c * x**k for k, c in enumerate(coeffs)) % p) for x in (2, 9, 11, 40)]
    # share y of any length, e.g. a Java BigInteger with its sign byte or a short one
    encoded = [(x, y.to_bytes((y.bit_length() + 8) // 8, "big")) for x, y in shares]
    combined = armour.shamir_combine(encoded, PRIME, armour.PRIME_BYTES)
    assert int.from_bytes(combined, "big") == coeffs[0]


def test_shamir_split_is_randomised():
    secret = os.urandom(32)
    assert armour.shamir_split(secret, 2, 3, PRIME) != armour.shamir_split(secret, 2, 3, PRIME)


def test_shamir_combine_refuses_an_oversized_result():
    # shares of a polynomial whose f(0) = p - 1 needs 33 bytes: refused at 32, returned at 33
    p = int.from_bytes(PRIME, "big")
    shares = [(x, ((p - 1) + 5 * x + 11 * x * x) % p) for x in (1, 2, 3)]
    encoded = [(x, y.to_bytes(armour.PRIME_BYTES, "big")) for x, y in shares]
    with pytest.raises(ValueError, match="does not fit in 32 bytes"):
        armour.shamir_combine(encoded, PRIME, 32)
    assert armour.shamir_combine(encoded, PRIME, 33) == (p - 1).to_bytes(33, "big")


KEY, IV = bytes(32), bytes(16)


@pytest.mark.parametrize("call,match", [
    (lambda: armour.x25519_agree(bytes(31), bytes(32)), "private key must be 32 bytes"),
    (lambda: armour.x25519_agree(bytes(32), bytes(33)), "peer public key must be 32 bytes"),
    (lambda: armour.x25519_agree("x" * 32, bytes(32)), "must be bytes"),
    (lambda: armour.pairwise_key(bytes(32), bytes(16), b"s"), "peer public key must be 32 bytes"),
    (lambda: armour.pbkdf2_sha256(b"p", b"s", 0), "iterations"),
    (lambda: armour.pbkdf2_sha256(b"p", b"s", 1, 0), "length"),
    (lambda: armour.add_mask(np.zeros(4, np.float32), bytes(16), IV), "key must be 32 bytes"),
    (lambda: armour.add_mask(np.zeros(4, np.float32), KEY, bytes(12)), "iv must be 16 bytes"),
    (lambda: armour.add_mask(np.zeros(4, np.float64), KEY, IV), "float32"),
    (lambda: armour.add_mask(np.zeros((2, 2), np.float32), KEY, IV), "1-D"),
    (lambda: armour.add_mask(np.zeros(8, np.float32)[::2], KEY, IV), "C-contiguous"),
    (lambda: armour.add_mask([0.0], KEY, IV), "numpy array"),
    (lambda: armour.add_mask(np.zeros(4, np.float32), KEY, IV, 1.0, -1), "offset"),
    (lambda: armour.add_masks(np.zeros(4, np.float32), [(KEY, IV)]), "jobs\\[0\\]"),
    (lambda: armour.add_masks(np.zeros(4, np.float32), [(KEY, IV, 1.0), (KEY, IV[:8], 1.0)]), "jobs\\[1\\] iv"),
    (lambda: armour.add_masks(np.zeros(4, np.float32), [], -1), "threads"),
    (lambda: armour.pairwise_keys(bytes(32), [(bytes(31), b"s")]), "peers\\[0\\] public key must be 32 bytes"),
    (lambda: armour.pairwise_keys(bytes(32), [bytes(32)]), "peers\\[0\\] must be"),
    (lambda: armour.shamir_split(bytes(32), 3, 2, PRIME), "threshold"),
    (lambda: armour.shamir_split(bytes(32), 0, 2, PRIME), "threshold"),
    (lambda: armour.shamir_split(b"", 1, 2, PRIME), "secret"),
    (lambda: armour.shamir_split(bytes(32), 2, 3, PRIME[1:]), "prime must be 33 bytes"),
    (lambda: armour.shamir_split(b"\xff" * 33, 2, 3, PRIME), "smaller than the prime"),
    (lambda: armour.shamir_combine([(1, b"\x01"), (1, b"\x02")], PRIME), "duplicate share index 1"),
    (lambda: armour.shamir_combine([(0, b"\x01")], PRIME), "index"),
    (lambda: armour.shamir_combine([(1, b"\xff" * 33)], PRIME), "smaller than the prime"),
    (lambda: armour.shamir_combine([], PRIME), "no shares"),
    (lambda: armour.shamir_combine([(1, b"\x01")], PRIME, 0), "length"),
])
def test_bad_arguments_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_read_only_accumulator_is_refused():
    acc = np.zeros(4, np.float32)
    acc.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        armour.add_mask(acc, KEY, IV)
