"""Model compression codecs shared by the server and the device SDK (spec §6): QUANT and the device side of
DIFF_SPARSE_QUANT (the server decodes those in C++)."""
from mindspore_federated.compression.quant import (
    QuantFeature,
    quant_codes,
    quant_decode,
    quant_encode,
    quant_scale,
    quant_scale_device,
)
from mindspore_federated.compression.sparse import diff_sparse_quant_encode, sparse_mask

__all__ = ["QuantFeature", "quant_codes", "quant_decode", "quant_encode", "quant_scale", "quant_scale_device",
           "diff_sparse_quant_encode", "sparse_mask"]
