"""Cryptographic kernels of secure aggregation (X25519, PBKDF2, AES-CTR masks, Shamir), validated over _core."""
import numpy as np

from mindspore_federated import _core

PRIME_BYTES = 33
KEY_BYTES = 32
IV_BYTES = 16
PAIRWISE_ITERATIONS = 10000
_MAX_KDF_LENGTH = 1 << 20
_MAX_SHARE_INDEX = (1 << 32) - 1

__all__ = ["PRIME_BYTES", "KEY_BYTES", "IV_BYTES", "PAIRWISE_ITERATIONS", "x25519_keypair", "x25519_agree",
           "pbkdf2_sha256", "pairwise_key", "pairwise_keys", "add_mask", "add_masks", "shamir_split", "shamir_combine",
           "generate_prime"]


def _bytes(value, name, size=None):
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise ValueError(f"{name} must be bytes, got {type(value).__name__}")
    value = bytes(value)
    if size is not None and len(value) != size:
        raise ValueError(f"{name} must be {size} bytes, got {len(value)}")
    return value


def _int(value, name, low, high=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {type(value).__name__}")
    value = int(value)
    if value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def _threads(threads):
    return _int(threads, "threads", 0, 1024)


def _accumulator(acc):
    if not isinstance(acc, np.ndarray):
        raise ValueError(f"acc must be a numpy array, got {type(acc).__name__}")
    if acc.dtype != np.float32 or acc.ndim != 1:
        raise ValueError(f"acc must be a 1-D float32 array, got {acc.ndim}-D {acc.dtype}")
    if not acc.flags.c_contiguous or not acc.flags.writeable:
        raise ValueError("acc must be C-contiguous and writeable (the mask is added in place)")
    return acc


def _prime(prime):
    prime = _bytes(prime, "prime", PRIME_BYTES)
    if prime[0] == 0 or prime[-1] % 2 == 0:
        raise ValueError("prime must be an odd 264-bit number (first byte non-zero)")
    return prime


def x25519_keypair():
    """A fresh X25519 key pair from the OpenSSL CSPRNG: (raw private 32 bytes, raw public 32 bytes)."""
    return _core.armour_x25519_keypair()


def x25519_agree(private32, peer_public32):
    """The raw 32-byte X25519 shared secret; ValueError for a low-order peer key."""
    return _core.armour_x25519_agree(_bytes(private32, "private key", KEY_BYTES),
                                     _bytes(peer_public32, "peer public key", KEY_BYTES))


def pbkdf2_sha256(password, salt, iterations=PAIRWISE_ITERATIONS, length=KEY_BYTES):
    """PBKDF2-HMAC-SHA256(password, salt, iterations), `length` bytes of output."""
    return _core.armour_pbkdf2_sha256(_bytes(password, "password"), _bytes(salt, "salt"),
                                      _int(iterations, "iterations", 1, (1 << 31) - 1),
                                      _int(length, "length", 1, _MAX_KDF_LENGTH))


def pairwise_key(private32, peer_public32, salt):
    """PBKDF2-HMAC-SHA256(X25519 shared secret, salt, 10000 iterations, 32 bytes): a PW_ENCRYPT pair's mask key."""
    return _core.armour_pairwise_key(_bytes(private32, "private key", KEY_BYTES),
                                     _bytes(peer_public32, "peer public key", KEY_BYTES), _bytes(salt, "salt"))


def pairwise_keys(private32, peers, threads=0):
    """[pairwise_key(private32, peer_public32, salt) for (peer_public32, salt) in peers], one GIL release.

    Each key costs ~9 ms (10,000 PBKDF2 iterations), so the batch runs on `threads` threads (0: all cores);
    this is what recovering a dropped device's masks with every peer wants.
    """
    private32 = _bytes(private32, "private key", KEY_BYTES)
    checked = []
    for n, peer in enumerate(peers):
        if not isinstance(peer, (tuple, list)) or len(peer) != 2:
            raise ValueError(f"peers[{n}] must be a (peer_public32, salt) tuple")
        checked.append((_bytes(peer[0], f"peers[{n}] public key", KEY_BYTES), _bytes(peer[1], f"peers[{n}] salt")))
    return _core.armour_pairwise_keys(private32, checked, _threads(threads))


def add_mask(acc, key32, iv16, scale=1.0, offset=0):
    """Add scale * mask in place: acc[i] += scale * m[offset + i] for every i < len(acc).

    The mask of (key, iv) is m[k] = float32(v[k]) / float32(INT32_MAX), where v[k] is the k-th little-endian
    int32 of AES-256-CTR(key, iv) encrypting zero bytes (the 16-byte IV is the initial 128-bit big-endian
    counter block). float32(INT32_MAX) is 2**31, so m[k] = float32(v[k]) * 2**-31 exactly, in [-1, 1).
    Arithmetic is float32 with two roundings: acc[i] = float32(acc[i] + float32(float32(scale) * m[offset+i]))
    (no fused multiply-add), so numpy reproduces it bit for bit:
    ``m = np.frombuffer(stream, "<i4").astype(np.float32) / np.float32(2**31); acc += np.float32(scale) * m``.
    `offset` (in elements) masks a slice of a concatenation. The keystream is produced in 4 KB blocks straight
    into acc (no model-sized temporary); the GIL is released.
    """
    acc = _accumulator(acc)
    key, iv = _bytes(key32, "key", KEY_BYTES), _bytes(iv16, "iv", IV_BYTES)
    _core.armour_add_mask(acc, key, iv, float(scale), _int(offset, "offset", 0, (1 << 61) - 1))


def add_masks(acc, jobs, threads=0):
    """add_mask(acc, key, iv, scale, offset=0) for every (key32, iv16, scale) in jobs, under one GIL release.

    Large batches (len(acc) * len(jobs) >= 2**21) are split into slices of acc on `threads` threads (0: all
    cores, 1: the calling thread only); every slice adds the jobs in order, so the result is bit-identical to
    calling add_mask job after job.
    """
    acc = _accumulator(acc)
    checked = []
    for n, job in enumerate(jobs):
        if not isinstance(job, (tuple, list)) or len(job) != 3:
            raise ValueError(f"jobs[{n}] must be a (key32, iv16, scale) tuple")
        key, iv, scale = job
        checked.append((_bytes(key, f"jobs[{n}] key", KEY_BYTES), _bytes(iv, f"jobs[{n}] iv", IV_BYTES),
                        float(scale)))
    _core.armour_add_masks(acc, checked, _threads(threads))


def shamir_split(secret, threshold, count, prime):
    """Shamir shares [(index, y)] for index 1..count of `secret` (big-endian, < prime), any `threshold` recover it.

    Coefficients are uniform modulo the prime from the OpenSSL CSPRNG; each y is big-endian, PRIME_BYTES long.
    """
    secret = _bytes(secret, "secret")
    if not 1 <= len(secret) <= PRIME_BYTES:
        raise ValueError(f"secret must be 1..{PRIME_BYTES} bytes, got {len(secret)}")
    count = _int(count, "count", 1, _MAX_SHARE_INDEX)
    threshold = _int(threshold, "threshold", 1, count)
    prime = _prime(prime)
    if int.from_bytes(secret, "big") >= int.from_bytes(prime, "big"):
        raise ValueError("secret must be smaller than the prime")
    return _core.armour_shamir_split(secret, threshold, count, prime)


def shamir_combine(shares, prime, length=KEY_BYTES):
    """The secret f(0) mod prime from shares [(index, y)] by Lagrange interpolation, left-padded to `length` bytes.

    A secret whose first byte(s) are 0x00 comes back with its leading zeros (the reference shifted it left).
    ValueError on duplicate or zero indices, a y not smaller than the prime, or a result longer than `length`
    (which wrong shares usually give). Passing at least the threshold number of shares is the caller's business.
    """
    prime = _prime(prime)
    p = int.from_bytes(prime, "big")
    length = _int(length, "length", 1, PRIME_BYTES)
    checked, seen = [], set()
    for n, share in enumerate(shares):
        if not isinstance(share, (tuple, list)) or len(share) != 2:
            raise ValueError(f"shares[{n}] must be an (index, y) tuple")
        index = _int(share[0], f"shares[{n}] index", 1, _MAX_SHARE_INDEX)
        if index in seen:
            raise ValueError(f"duplicate share index {index}")
        seen.add(index)
        y = _bytes(share[1], f"shares[{n}] y")
        if not y or int.from_bytes(y, "big") >= p:
            raise ValueError(f"shares[{n}] y must be non-empty and smaller than the prime")
        checked.append((index, y))
    if not checked:
        raise ValueError("no shares to combine")
    return _core.armour_shamir_combine(checked, prime, length)


def generate_prime():
    """A fresh 264-bit safe prime (p and (p-1)/2 prime), PRIME_BYTES big-endian bytes.

    Random search: measured 8 ms..170 ms (median 40 ms) over 20 runs on one core here, the tail can reach a
    second. The GIL is released; still, generate it once per cluster, not per request.
    """
    return _core.armour_generate_prime()
