"""QUANT (spec §6): 8-bit min/max quantisation of one weight, the same code on the server and the device.

Encoding: scale = (max - min) / 255 + 1e-10, q = clip(round((w - min) / scale - 128), -128, 127), computed in
float64 from the float32 weight. Decoding: w' = (q + 128) * scale + min, in float32 like the Java SDK.
"""
from dataclasses import dataclass

import numpy as np

__all__ = ["QuantFeature", "quant_scale", "quant_encode", "quant_decode"]


@dataclass(frozen=True)
class QuantFeature:
    """One quantised weight (a CompressFeatureMap entry): int8 codes plus the min/max of the original."""

    data: np.ndarray
    min_val: float
    max_val: float


def quant_scale(min_val, max_val):
    """The QUANT step for a weight with this min/max."""
    return (float(max_val) - float(min_val)) / 255.0 + 1e-10


def quant_encode(weight):
    """Quantises a weight (flattened to float32; no copy when it already is) into a QuantFeature."""
    w = np.ascontiguousarray(weight, dtype=np.float32).reshape(-1)
    lo = float(w.min()) if w.size else 0.0
    hi = float(w.max()) if w.size else 0.0
    scaled = (w.astype(np.float64) - lo) / quant_scale(lo, hi) - 128.0
    codes = np.clip(np.round(scaled), -128, 127).astype(np.int8)
    return QuantFeature(codes, lo, hi)


def quant_decode(data, min_val, max_val):
    """Dequantises int8 codes into a new float32 array."""
    out = np.asarray(data, dtype=np.int8).astype(np.float32)
    out += np.float32(128.0)
    out *= np.float32(quant_scale(min_val, max_val))
    out += np.float32(min_val)
    return out
