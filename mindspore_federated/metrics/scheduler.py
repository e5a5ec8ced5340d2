"""Scheduler metrics: REST latency per path, management calls by result, refused tokens, and the cluster as
the scheduler's watch last saw it (iteration, state, round progress, live servers, iteration results)."""
from prometheus_client import Counter, Gauge, Histogram

from mindspore_federated.metrics.registry import REGISTRY

REST_SECONDS = Histogram("msfl_scheduler_request_duration_seconds", "Time to answer a management request, per "
                         "path", ["path"], registry=REGISTRY,
                         buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
MANAGE_CALLS = Counter("msfl_scheduler_management_calls_total", "Mutating management calls (enable, disable, "
                       "new instance, scale), per path and HTTP status", ["path", "status"], registry=REGISTRY)
UNAUTHORIZED = Counter("msfl_scheduler_unauthorized_total", "Requests refused for a missing or wrong bearer "
                       "token", registry=REGISTRY)
ITERATION = Gauge("msfl_cluster_iteration", "Current iteration of the instance", registry=REGISTRY)
ITERATION_NUM = Gauge("msfl_cluster_fl_iteration_num", "Iterations of the instance", registry=REGISTRY)
STATE = Gauge("msfl_cluster_instance_state", "1 for the instance's running state", ["state"], registry=REGISTRY)
LIVE = Gauge("msfl_cluster_live_nodes", "Live nodes, per role", ["role"], registry=REGISTRY)
THRESHOLD = Gauge("msfl_cluster_round_threshold", "Requests a round needs per iteration", ["round"],
                  registry=REGISTRY)
ROUND_COUNT = Gauge("msfl_cluster_round_accepted", "Requests the current iteration has accepted, per round",
                    ["round"], registry=REGISTRY)
ITERATIONS = Counter("msfl_cluster_iterations_total", "Iterations the scheduler saw end, by result (unknown: "
                     "several ended between two reads of the cluster)",
                     ["result"], registry=REGISTRY)
LOSS = Gauge("msfl_cluster_last_loss", "Mean loss reported by the devices of the last ended iteration",
             registry=REGISTRY)
ACCURACY = Gauge("msfl_cluster_last_accuracy", "Mean accuracy reported by the devices of the last ended "
                 "iteration", registry=REGISTRY)
STATE_NAMES = ("running", "disable", "finish", "stop")


def observe_cluster(view):
    """Sets the cluster gauges from one watch view (scheduler/watch.py)."""
    ITERATION.set(view.get("iteration") or 0)
    ITERATION_NUM.set(view.get("fl_iteration_num") or 0)
    for name in STATE_NAMES:
        STATE.labels(name).set(1 if view.get("state") == name else 0)
    LIVE.labels("server").set(view.get("live_servers", 0))
    LIVE.labels("worker").set(view.get("live_workers", 0))
    progress = view.get("progress") or {}
    for name in ("startFLJob", "updateModel"):
        THRESHOLD.labels(name).set(progress.get(name, {}).get("threshold", 0))
        ROUND_COUNT.labels(name).set(progress.get(name, {}).get("count", 0))


def observe_iteration(entry):
    """Counts one ended iteration (a history entry of the watch)."""
    success = entry.get("success")
    ITERATIONS.labels("unknown" if success is None else "success" if success else "fail").inc()


def observe_iteration_metrics(entry):
    """The loss and accuracy of an ended iteration, once its summaries are in."""
    if entry.get("loss") is not None:
        LOSS.set(entry["loss"])
    if entry.get("accuracy") is not None:
        ACCURACY.set(entry["accuracy"])
