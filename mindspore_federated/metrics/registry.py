"""The process's metrics registry: process CPU/RSS (the library's process collector), Redis round trips and
errors, and the text exposition every role serves."""
from prometheus_client import CollectorRegistry, Counter, ProcessCollector
from prometheus_client.exposition import generate_latest

# the classic text format generate_latest writes, which every Prometheus version reads
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CONTENT_TYPE_BYTES = CONTENT_TYPE.encode()
DEFAULT_PATH = "/metrics"

# One registry per process (not the library's global one, whose platform/gc collectors we do not want twice)
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)

REDIS_ROUND_TRIPS = Counter("msfl_redis_round_trips_total", "Writes of one or more commands to Redis "
                            "(a pipeline or an auto-pipelined batch is one)", ["client"], registry=REGISTRY)
REDIS_COMMANDS = Counter("msfl_redis_commands_total", "Commands sent by the hot-path auto-pipelining client",
                         ["client"], registry=REGISTRY)
REDIS_ERRORS = Counter("msfl_redis_errors_total", "Redis calls that failed (connection, timeout or error "
                       "reply)", ["client"], registry=REGISTRY)

# children bound once: the hot path only increments
HOT_TRIPS = REDIS_ROUND_TRIPS.labels("pipelined")
HOT_COMMANDS = REDIS_COMMANDS.labels("pipelined")
HOT_ERRORS = REDIS_ERRORS.labels("pipelined")
PY_TRIPS = REDIS_ROUND_TRIPS.labels("redis_py")
PY_ERRORS = REDIS_ERRORS.labels("redis_py")


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
