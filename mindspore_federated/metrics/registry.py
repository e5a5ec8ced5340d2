"""The process's metrics registry: process CPU/RSS (the library's process collector), Redis round trips and
errors, and the text exposition every role serves."""
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import generate_latest

from mindspore_federated.metrics.fast import LoopFamilies

# the classic text format generate_latest writes, which every Prometheus version reads
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CONTENT_TYPE_BYTES = CONTENT_TYPE.encode()
DEFAULT_PATH = "/metrics"

# One registry per process (not the library's global one, whose platform/gc collectors we do not want twice)
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)

# the Redis clients count on their event loop's thread, without locks (metrics/fast.py)
LOOP = LoopFamilies()
REGISTRY.register(LOOP)
_TRIPS = ("msfl_redis_round_trips", "Writes of one or more commands to Redis (a pipeline or an auto-pipelined "
          "batch is one)", ["client"])
_ERRORS = ("msfl_redis_errors", "Redis calls that failed: connection refused or lost, timeout, protocol error "
           "(error replies are answers, not counted)", ["client"])
HOT_TRIPS = LOOP.counter(*_TRIPS, ["pipelined"])
HOT_COMMANDS = LOOP.counter("msfl_redis_commands", "Commands sent by the hot-path auto-pipelining client",
                            ["client"], ["pipelined"])
HOT_ERRORS = LOOP.counter(*_ERRORS, ["pipelined"])
PY_TRIPS = LOOP.counter(*_TRIPS, ["redis_py"])
PY_ERRORS = LOOP.counter(*_ERRORS, ["redis_py"])


def render(registry=REGISTRY) -> bytes:
    """The registry in the Prometheus text format (version 0.0.4)."""
    return generate_latest(registry)


def metrics_path(cfg) -> str:
    """The `metrics.path` of a config ('' switches the endpoint off); the default when the key is absent."""
    try:
        value = cfg["metrics.path"]
    except (KeyError, LookupError, AttributeError, TypeError):
        return DEFAULT_PATH
    return value if value is not None else DEFAULT_PATH
