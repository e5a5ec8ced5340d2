"""Prometheus metrics of every role (prometheus-client): one registry per process, rendered at `/metrics`."""
from mindspore_federated.metrics.registry import CONTENT_TYPE, REGISTRY, render

__all__ = ["CONTENT_TYPE", "REGISTRY", "render"]
