"""DIFF_SPARSE_QUANT encoding on the device (spec §6), as the Java client does it: the difference to the
data_size-weighted starting model, the elements the keep-mask selects (seeded by the iteration, mask
positions running through the weights in name_vec order), 8-bit min/max codes rounded like `Math.round`.
The server decodes in C++ (ccsrc/compression/)."""
import numpy as np

from mindspore_federated import _core
from mindspore_federated.compression.quant import QuantFeature, quant_codes

__all__ = ["sparse_mask", "diff_sparse_quant_encode"]


def sparse_mask(seed, rate, param_num):
    """The keep-mask: uint8 array of `param_num` 0/1 values (the C++ generator, Java int arithmetic)."""
    return _core.sparse_mask(int(np.int32(seed)), float(np.float32(rate)), int(param_num))


def _encode_kept(kept):
    if not kept.size:  # the Java client would send min=FLT_MAX, max=-FLT_MAX here; both are ignored
        return QuantFeature(np.zeros(0, np.int8), 0.0, 0.0)
    lo, hi = float(kept.min()), float(kept.max())
    return QuantFeature(quant_codes(kept, lo, hi, half_up=True), lo, hi)


def diff_sparse_quant_encode(uploads, base, data_size, seed, rate):
    """(name_vec, {name: QuantFeature}) for `uploads` (name -> float32 array, the weights as they would be
    uploaded, i.e. w * data_size) trained from `base` (name -> float32 array, the model received)."""
    names = list(uploads)
    sizes = [int(np.asarray(uploads[n]).size) for n in names]
    mask = sparse_mask(seed, rate, sum(sizes)).view(bool)
    scale = np.float32(data_size)
    out = {}
    offset = 0
    for name, size in zip(names, sizes):
        upload = np.ascontiguousarray(uploads[name], dtype=np.float32).reshape(-1)
        start = np.ascontiguousarray(base[name], dtype=np.float32).reshape(-1)
        if start.size != size:
            raise ValueError(f"weight {name}: {size} elements trained, {start.size} received")
        diff = upload - start * scale
        out[name] = _encode_kept(diff[mask[offset:offset + size]])
        offset += size
    return names, out
