"""Python device SDK: wire messages, an async simulated Device and a load-generating simulator CLI."""
import importlib

_EXPORTS = {
    "Device": "device", "IterationOutcome": "device", "RequestRecord": "device", "RetryPolicy": "device",
    "DeviceError": "device", "https_context": "device", "RequestFailed": "device", "UnexpectedReply": "device",
    "HttpStatusError": "device", "TransportError": "device", "DeadlineExceeded": "device",
    "ResponseCode": "messages", "CompressType": "messages", "PlainTextReply": "messages",
    "FLPlanInfo": "messages", "QuantFeature": "messages",
    "quant_decode": "messages", "quant_encode": "messages", "DeviceIdentity": "identity",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mindspore_federated.client' has no attribute '{name}'")
    value = getattr(importlib.import_module(f"mindspore_federated.client.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
