"""Server metrics: per-round latency and bytes, rejected updates, aggregation stages (fed by the device API,
the rounds and the aggregation pipeline), and the engine's own counters (iteration, state, thresholds,
IterationStats) read at scrape time."""
import asyncio
import math

from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from redis.exceptions import RedisError

from mindspore_federated.metrics.registry import LOOP, REGISTRY

LIVE_REFRESH_S = 5.0
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STAGE_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STATE_NAMES = {0: "running", 1: "disable", 2: "finish", 3: "stop"}  # InstanceState -> metrics.json names
# (IterationStats total field, accepted field) of the rounds whose replies the engine counts
COUNTED_ROUNDS = {"startFLJob": ("start_total", "start_accept"), "updateModel": ("update_total", "update_accept"),
                  "getModel": ("get_total", "get_accept")}
LOCAL_ERRORS = {1: "bad_features", 2: "missing_weight", 3: "empty_model", 4: "bad_compression"}

UPDATES_REJECTED = Counter("msfl_server_update_rejected_total", "updateModel requests answered with a "
                           "rejection, by reason", ["reason"], registry=REGISTRY)
STAGE_SECONDS = Histogram("msfl_server_aggregation_stage_seconds", "Duration of each aggregation stage "
                          "(collect, all-reduce, average, finish)", ["stage"], buckets=STAGE_BUCKETS,
                          registry=REGISTRY)
ITERATIONS = Counter("msfl_server_iterations_total", "Iterations this server saw end, by result",
                     ["result"], registry=REGISTRY)


class RoundMetrics:
    """The accumulators of one round (metrics/fast.py): the hot path only adds and observes, without locks."""

    __slots__ = ("latency", "received", "sent")

    def __init__(self, name):
        self.latency = LOOP.histogram("msfl_server_request_duration_seconds", "Time from a complete device "
                                      "request body to its reply, per round", ["round"], [name], LATENCY_BUCKETS)
        self.received = LOOP.counter("msfl_server_received_bytes", "Device request bodies received (uploads "
                                     "included), per round", ["round"], [name])
        self.sent = LOOP.counter("msfl_server_sent_bytes", "Reply bodies sent to devices, per round", ["round"],
                                 [name])


def count_rejected_update(outcome, local_error=0):
    """One more updateModel rejection: the state's Outcome (lower-case name), local errors by kind."""
    reason = LOCAL_ERRORS.get(local_error, "local_error") if outcome.name == "LOCAL_ERROR" else outcome.name
    UPDATES_REJECTED.labels(reason.lower()).inc()


def count_unverified_update():
    """An updateModel whose fields failed verification."""
    UPDATES_REJECTED.labels("verify_failed").inc()


class EngineCollector:
    """Reads the engine context at scrape time: nothing is counted twice, nothing costs on the hot path."""

    def __init__(self):
        self.ctx = None
        self.finished = {name: 0 for name in ("start_total", "start_accept", "update_total", "update_accept",
                                              "get_total", "get_accept")}
        self.live_servers = float("nan")
        self._last = {}   # the counters never go backwards, even between a stats swap and its hook

    def describe(self):
        return []

    def iteration_finished(self, stats, success):
        for name in self.finished:
            self.finished[name] += getattr(stats, name, 0)
        ITERATIONS.labels("success" if success else "fail").inc()

    def collect(self):
        ctx = self.ctx
        if ctx is None:
            return
        yield _gauge("msfl_server_iteration", "Current iteration number", ctx.iteration)
        yield _gauge("msfl_server_fl_iteration_num", "Iterations of the instance (fl_iteration_num)",
                     getattr(ctx, "fl_iteration_num", 0))
        state = GaugeMetricFamily("msfl_server_instance_state", "1 for the instance's running state",
                                  labels=["state"])
        for code, name in STATE_NAMES.items():
            state.add_metric([name], 1.0 if ctx.running_state == code else 0.0)
        yield state
        thresholds = GaugeMetricFamily("msfl_server_round_threshold", "Requests a round needs per iteration",
                                       labels=["round"])
        thresholds.add_metric(["startFLJob"], getattr(ctx, "threshold_start", 0))
        thresholds.add_metric(["updateModel"], getattr(ctx, "threshold_update", 0))
        yield thresholds
        yield from self._requests(ctx.stats)
        yield _gauge("msfl_server_model_bytes", "Size of the model's float32 weights", ctx.spec.total_bytes())
        yield _gauge("msfl_server_live_servers", "Servers with a live heartbeat in the cluster (refreshed every "
                     f"{LIVE_REFRESH_S:g} s)", self.live_servers)
        yield _gauge("msfl_server_inflight_requests", "Device requests being served", ctx.inflight)
        yield _gauge("msfl_server_cache_ok", "1 while the distributed cache answers", 1 if ctx.cache_ok else 0)

    def _requests(self, stats):
        current = GaugeMetricFamily("msfl_server_iteration_accepted", "Requests accepted this iteration by "
                                    "this server, per round", labels=["round"])
        total = CounterMetricFamily("msfl_server_requests", "Device requests answered, per round and result "
                                    "(the counts of metrics.json)", labels=["round", "result"])
        for name, (total_field, accept_field) in COUNTED_ROUNDS.items():
            seen = self._monotonic(total_field, self.finished[total_field] + getattr(stats, total_field))
            accepted = self._monotonic(accept_field, self.finished[accept_field] + getattr(stats, accept_field))
            current.add_metric([name], getattr(stats, accept_field))
            total.add_metric([name, "accepted"], accepted)
            total.add_metric([name, "rejected"], max(0, seen - accepted))
        return current, total

    def _monotonic(self, key, value):
        value = max(value, self._last.get(key, 0))
        self._last[key] = value
        return value

    async def refresh_loop(self, ctx):
        """Keeps msfl_server_live_servers current (one Redis read every LIVE_REFRESH_S)."""
        while not ctx.stopping:
            try:
                if ctx.inst is not None:
                    self.live_servers = len(await ctx.state.live_servers(ctx.inst))
            except (RedisError, OSError):
                self.live_servers = float("nan")
            await asyncio.sleep(LIVE_REFRESH_S)


def _gauge(name, doc, value):
    family = GaugeMetricFamily(name, doc)
    family.add_metric([], float(value) if value is not None else math.nan)
    return family


ENGINE = EngineCollector()
REGISTRY.register(ENGINE)


def bind(ctx):
    """Serves the engine counters of `ctx` (the process's server)."""
    ENGINE.ctx = ctx
