"""DIFF_SPARSE_QUANT written out from the rule (spec §6) for tests: the keep-mask in pure Python with Java int
arithmetic, and the server's decode in numpy float32. Independent of the package's C++ implementation."""
import struct

import numpy as np


def java_int(x):
    """x wrapped to a 32-bit signed int, as Java int arithmetic does."""
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x & 0x80000000 else x


def java_rem(a, b):
    """Java's % on ints: the remainder has the sign of the dividend."""
    r = abs(a) % b
    return -r if a < 0 else r


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def rule_mask(seed, rate, param_num):
    """The spec §6 shuffle, written out from the rule: floor(float(n) * rate) ones first, then for each i a
    Park-Miller step (seed * 48271 % (2^31 - 1) in Java int arithmetic) picks j in [i, n) to swap with."""
    retain = int(f32(f32(float(param_num)) * f32(rate)))
    mask = [1] * retain + [0] * (param_num - retain)
    state = java_rem(java_int(java_int(seed + 2147483647) * 48271), 2147483647)
    for i in range(param_num):
        rand = state / 4294967294.0 + 0.5
        state = java_rem(java_int(state * 48271), 2147483647)
        j = int(rand * (param_num - i)) + i
        mask[i], mask[j] = mask[j], mask[i]
    return mask


def numpy_decode(mask, codes, lo, hi, latest, data_size):
    """Reference of the server decode in numpy float32: dequantize, scatter, + data_size * latest."""
    scale = np.float32(np.float32(np.float32(hi) - np.float32(lo)) / np.float32(255.0)) + np.float32(1e-10)
    values = (codes.astype(np.float32) + np.float32(128.0)) * scale + np.float32(lo)
    full = np.zeros(latest.size, np.float32)
    full[mask.astype(bool)] = values
    return full + np.float32(data_size) * latest
