"""Model compression codecs shared by the server and the device SDK (spec §6): QUANT today."""
from mindspore_federated.compression.quant import QuantFeature, quant_decode, quant_encode, quant_scale

__all__ = ["QuantFeature", "quant_decode", "quant_encode", "quant_scale"]
