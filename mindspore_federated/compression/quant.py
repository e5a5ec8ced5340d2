"""QUANT (spec §6): 8-bit min/max quantisation of one weight, the same code on the server and the device.

The reference computes in float32 throughout: min/max start at ±1e10, scale = (max - min) / 255 + 1e-10
(float32 ops), q = int8(round((w - min) / scale - 128)) with C `round` (halves away from zero). The Java
device rounds its DIFF_SPARSE_QUANT codes with `Math.round` (halves up) instead. Device decoding:
w' = (q + 128) * scale' + min in float32, scale' = float32(float32((max - min) / 255) + 1e-10 in double).
"""
from dataclasses import dataclass

import numpy as np

__all__ = ["QuantFeature", "quant_scale", "quant_scale_device", "quant_encode", "quant_codes",
           "quant_decode"]

_F32 = np.float32
_LEVELS = _F32(255.0)
_HALF_RANGE = _F32(128.0)
_EPS32 = _F32(1e-10)
_START = _F32(1e10)  # the reference's initial min (and -max): a weight never reports beyond ±1e10 inwards


@dataclass(frozen=True)
class QuantFeature:
    """One quantised weight (a CompressFeatureMap entry): int8 codes plus the min/max of the original."""

    data: np.ndarray
    min_val: float
    max_val: float


def quant_scale(min_val, max_val):
    """The encoder's (and the server decoder's) QUANT step: float32 (max - min) / 255 + 1e-10."""
    with np.errstate(over="ignore"):
        return float((_F32(max_val) - _F32(min_val)) / _LEVELS + _EPS32)


def quant_scale_device(min_val, max_val):
    """The Java device decoder's step: the float32 quotient plus 1e-10 in double, back to float32."""
    with np.errstate(over="ignore"):
        return float(_F32(float((_F32(max_val) - _F32(min_val)) / _LEVELS) + 1e-10))


def quant_codes(w, lo, hi, half_up=False):
    """int8 codes of float32 `w` for this min/max: float32 arithmetic, then C `round` (halves away from
    zero) or, with `half_up`, Java `Math.round` (halves towards +inf)."""
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = (w - _F32(lo)) / _F32(quant_scale(lo, hi)) - _HALF_RANGE
    exact = scaled.astype(np.float64)  # every float32 value plus 0.5 is exact in float64
    if half_up:
        rounded = np.floor(exact + 0.5)
    else:
        rounded = np.trunc(exact + np.copysign(0.5, exact))
    # NaN only when max - min overflows float32: the reference's int8 conversion of it yields 0 on x86
    return np.clip(np.nan_to_num(rounded, nan=0.0), -128, 127).astype(np.int8)


def quant_encode(weight):
    """Quantises a weight (flattened to float32; no copy when it already is) into a QuantFeature,
    bit for bit as the reference server's QUANT download encoder."""
    w = np.ascontiguousarray(weight, dtype=np.float32).reshape(-1)
    if not w.size:
        return QuantFeature(np.zeros(0, np.int8), 0.0, 0.0)
    lo = float(min(_START, w.min()))
    hi = float(max(-_START, w.max()))
    return QuantFeature(quant_codes(w, lo, hi), lo, hi)


def quant_decode(data, min_val, max_val):
    """Dequantises int8 codes into a new float32 array (the Java device's rule)."""
    out = np.asarray(data, dtype=np.int8).astype(np.float32)
    out += _HALF_RANGE
    out *= _F32(quant_scale_device(min_val, max_val))
    out += _F32(min_val)
    return out
