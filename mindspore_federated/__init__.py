"""MindSpore Federated compatible cloud cluster: Scheduler, Server and Worker over Redis and a C++ core."""
import importlib

__version__ = "0.2.0"

# Public name -> defining module. Resolved lazily so `import mindspore_federated` stays cheap and
# fork-safe: no threads, sockets, event loops, Redis clients or MindSpore at import time.
_EXPORTS = {
    "FLServerJob": "mindspore_federated.startup.federated_local",
    "FlSchedulerJob": "mindspore_federated.startup.federated_local",
    "Callback": "mindspore_federated.startup.callback",
    "CallbackContext": "mindspore_federated.startup.callback",
    "FeatureMap": "mindspore_federated.startup.feature_map",
    "FeatureItem": "mindspore_federated.startup.feature_map",
    "SSLConfig": "mindspore_federated.startup.ssl_config",
    "FederatedLearningManager": "mindspore_federated.trainer.fl_manager",
    "PushMetrics": "mindspore_federated.trainer.fl_manager",
}

__all__ = sorted([*_EXPORTS, "log"])


def __getattr__(name):
    if name == "log":
        return importlib.import_module("mindspore_federated.log")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mindspore_federated' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
