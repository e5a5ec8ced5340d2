"""Secure-aggregation kernels: add_mask MB/s (next to cryptography + numpy), ms per pairwise_key / Shamir op.

Usage: .venv/bin/python bench/armour.py [--seconds 0.5]
MB/s counts the float32 bytes of the accumulator per add_mask call (one AES-256-CTR mask expanded into it).
"""
import argparse
import os
import time

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mindspore_federated import armour

SIZES = (61_706, 617_060, 10_000_000)  # LeNet, 10x LeNet, 10 M floats
SHAMIR = ((3, 5), (10, 20), (50, 100))


def _per_call(fn, seconds):
    """Best of 3 runs of seconds/3 each, in seconds per call."""
    fn()
    best = float("inf")
    for _ in range(3):
        calls, start = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds / 3:
                break
        best = min(best, elapsed / calls)
    return best


def _numpy_mask(acc, key, iv):
    stream = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor().update(bytes(4 * acc.size))
    acc += np.frombuffer(stream, "<i4").astype(np.float32) / np.float32(2**31)


def bench_masks(seconds):
    key, iv = os.urandom(32), os.urandom(16)
    for n in SIZES:
        acc = np.zeros(n, dtype=np.float32)
        mb = acc.nbytes / 1e6
        ours = _per_call(lambda acc=acc: armour.add_mask(acc, key, iv), seconds)
        ref = _per_call(lambda acc=acc: _numpy_mask(acc, key, iv), seconds)
        jobs = [(os.urandom(32), os.urandom(16), 1.0) for _ in range(10)]
        one = _per_call(lambda acc=acc, jobs=jobs: armour.add_masks(acc, jobs, 1), seconds) / len(jobs)
        many = _per_call(lambda acc=acc, jobs=jobs: armour.add_masks(acc, jobs), seconds) / len(jobs)
        print(f"add_mask {n:>10,} floats: {mb / ours:6.0f} MB/s ({ours * 1e3:6.2f} ms); add_masks x10: "
              f"{mb / one:6.0f} MB/s per mask on 1 thread, {mb / many:6.0f} on all cores; "
              f"cryptography+numpy: {mb / ref:6.0f} MB/s", flush=True)


def bench_keys(seconds):
    a_priv, _ = armour.x25519_keypair()
    _, b_pub = armour.x25519_keypair()
    salt = os.urandom(32)
    agree = _per_call(lambda: armour.x25519_agree(a_priv, b_pub), seconds)
    pair = _per_call(lambda: armour.pairwise_key(a_priv, b_pub, salt), seconds)
    peers = [(armour.x25519_keypair()[1], salt) for _ in range(32)]
    batch = _per_call(lambda: armour.pairwise_keys(a_priv, peers), seconds) / len(peers)
    print(f"x25519_agree: {agree * 1e3:.3f} ms; pairwise_key (x25519 + PBKDF2 10,000 it.): {pair * 1e3:.2f} ms; "
          f"pairwise_keys x32 on {os.cpu_count()} cores: {batch * 1e3:.2f} ms per key")


def bench_shamir(seconds):
    prime = armour.generate_prime()
    for t, n in SHAMIR:
        secret = os.urandom(32)
        shares = armour.shamir_split(secret, t, n, prime)
        split = _per_call(lambda t=t, n=n, s=secret: armour.shamir_split(s, t, n, prime), seconds)
        combine = _per_call(lambda t=t, s=shares: armour.shamir_combine(s[:t], prime), seconds)
        print(f"shamir t={t:>3} of n={n:>3}: split {split * 1e3:.3f} ms, combine {combine * 1e3:.3f} ms")


def bench_prime(count=20):
    times = []
    for _ in range(count):
        start = time.perf_counter()
        armour.generate_prime()
        times.append(time.perf_counter() - start)
    times.sort()
    print(f"generate_prime x{count}: min {times[0] * 1e3:.0f} ms, median {times[count // 2] * 1e3:.0f} ms, "
          f"max {times[-1] * 1e3:.0f} ms")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=0.5, help="measuring time per figure")
    args = p.parse_args()
    bench_masks(args.seconds)
    bench_keys(args.seconds)
    bench_shamir(args.seconds)
    bench_prime()


if __name__ == "__main__":
    main()
