"""The Worker role's metrics hook: the few calls a worker makes (iteration, pull, push, train, failures) and
its own /metrics endpoint (prometheus-client's HTTP server in a thread, on 127.0.0.1 unless told otherwise)."""
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.exposition import start_http_server

from mindspore_federated.metrics.registry import REGISTRY

STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

ITERATION = Gauge("msfl_worker_iteration", "Iteration the worker is training for", registry=REGISTRY)
STEP_SECONDS = Histogram("msfl_worker_step_duration_seconds", "Duration of a worker step (pull: pullWeight, "
                         "push: pushWeight/pushMetrics, train: local training)", ["step"], buckets=STEP_BUCKETS,
                         registry=REGISTRY)
BYTES = Counter("msfl_worker_transferred_bytes_total", "Model bytes exchanged with the servers, by direction",
                ["direction"], registry=REGISTRY)
FAILURES = Counter("msfl_worker_failures_total", "Worker steps that failed, per step", ["step"],
                   registry=REGISTRY)


class WorkerMetrics:
    """What a Worker calls; each method only sets a gauge, observes a histogram or increments a counter."""

    def iteration(self, number):
        ITERATION.set(number)

    def pulled(self, seconds, nbytes):
        """One pullWeight that took `seconds` and brought `nbytes` of model."""
        STEP_SECONDS.labels("pull").observe(seconds)
        BYTES.labels("received").inc(nbytes)

    def pushed(self, seconds, nbytes):
        """One pushWeight/pushMetrics that took `seconds` and sent `nbytes`."""
        STEP_SECONDS.labels("push").observe(seconds)
        BYTES.labels("sent").inc(nbytes)

    def trained(self, seconds):
        STEP_SECONDS.labels("train").observe(seconds)

    def failed(self, step):
        """A step ('pull', 'push', 'train') that failed."""
        FAILURES.labels(step).inc()

    @staticmethod
    def serve(port=0, host="127.0.0.1"):
        """Serves /metrics (every path answers the same text) on host:port in a daemon thread; returns the
        wsgiref server (`server.server_port` is the port; `server.shutdown()` stops it)."""
        server, _thread = start_http_server(port, addr=host, registry=REGISTRY)
        return server
