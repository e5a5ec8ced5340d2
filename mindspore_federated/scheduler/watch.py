"""The scheduler's watch over the cluster: polls the state once a second for the dashboard and the metrics
(current iteration and round progress, nodes) and keeps a timeline of the iterations it saw end, with the
servers' summaries of each (participants, duration, loss and accuracy, as metrics.json has them)."""
import asyncio
import collections
import json
import time

from redis.exceptions import RedisError

from mindspore_federated import log
from mindspore_federated.config.thresholds import update_model_threshold
from mindspore_federated.metrics import scheduler as metrics
from mindspore_federated.server.summary import IterationStats, metrics_line

LOG = log.get_logger("mindspore_federated.scheduler")
POLL_S = 1.0
HISTORY = 500                 # iterations kept for the timeline
SUMMARY_WAIT_S = 15.0         # the servers write an iteration's summaries just after it ended
STATE_NAMES = {0: "running", 1: "disable", 2: "finish", 3: "stop"}


class ClusterWatch:
    """`view` (the latest poll) and `history` (ended iterations, oldest first) of one fl_name."""

    def __init__(self, state, poll_s=POLL_S):
        self.state = state
        self.poll_s = poll_s
        self.view = {}
        self.history = collections.deque(maxlen=HISTORY)
        self._pending = []        # history entries still waiting for their summaries
        self._seen = None         # (instance, iteration) of the previous poll
        self._task = None
        self._stopped = False

    def start(self):
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self):
        task, self._task = self._task, None
        self._stopped = True
        while task is not None and not task.done():  # a Redis call may swallow one cancellation
            task.cancel()
            await asyncio.wait([task], timeout=0.1)

    async def _run(self):
        """Polls every poll_s, and at once on every cluster event (an iteration switch among them), so that the
        status read still tells the result of the iteration that just ended."""
        subscription = None
        try:
            while not self._stopped:
                try:
                    if subscription is None:
                        subscription = await self.state.subscribe()
                    await self.poll()
                    await subscription.get(timeout=self.poll_s)
                except (RedisError, OSError, ValueError) as exc:
                    self.view = {**self.view, "error": str(exc) or type(exc).__name__}
                    subscription = await _close(subscription)
                    await asyncio.sleep(self.poll_s)
                except Exception:  # noqa: BLE001 - the watch must outlive any surprise in the state
                    LOG.exception("cluster watch poll failed")
                    await asyncio.sleep(self.poll_s)
        finally:
            await _close(subscription)

    async def poll(self):
        """One read of the cluster: view, metrics, newly ended iterations, summaries still missing."""
        state = self.state
        inst = await state.instance()
        if not inst:
            self.view = {"instance": None, "polled_ms": _now_ms()}
            return
        status = await state.status(inst)
        iteration = int(status.get("iterationNum") or 0)
        snap = await state.snapshot(inst, iteration)
        hp = await state.hyper_params(inst) or {}
        servers, workers = await state.server_nodes(inst), await state.worker_nodes(inst)
        self.view = _view(inst, status, iteration, snap, hp, servers, workers)
        metrics.observe_cluster(self.view)
        self._note_switch(inst, iteration, status)
        await self._fill_summaries(inst)

    def _note_switch(self, inst, iteration, status):
        seen, self._seen = self._seen, (inst, iteration)
        if seen is None or seen[0] != inst or iteration <= seen[1]:
            return
        for ended in range(seen[1], iteration):
            last = ended == iteration - 1   # the status tells the result of the last ended one only
            entry = {"instance": inst, "iteration": ended, "end_ms": _now_ms(), "start_ms": None,
                     "success": status.get("lastIterationSuccess") == "1" if last else None,
                     "result": status.get("lastIterationResult", "") if last else "",
                     "duration_ms": None, "participants": None, "loss": None, "accuracy": None}
            self.history.append(entry)
            self._pending.append((entry, time.monotonic() + SUMMARY_WAIT_S))
            metrics.observe_iteration(entry)

    async def _fill_summaries(self, inst):
        waiting = []
        for entry, deadline in self._pending:
            summaries = await self.state.summaries(entry["instance"], entry["iteration"])
            live = {s.node_id for s in await self.state.server_nodes(inst) if s.alive}
            if summaries and (live <= set(summaries) or time.monotonic() > deadline):
                _apply_summaries(entry, summaries)
                metrics.observe_iteration_metrics(entry)
            elif time.monotonic() <= deadline:
                waiting.append((entry, deadline))
        self._pending = waiting

    def overview(self, limit=200):
        """The dashboard's JSON: the latest view and the newest `limit` iterations."""
        return {"cluster": self.view, "iterations": list(self.history)[-limit:]}


async def _close(subscription):
    if subscription is not None:
        try:
            await subscription.aclose()
        except (RedisError, OSError):
            pass


def _now_ms():
    return int(time.time() * 1000)


def _view(inst, status, iteration, snap, hp, servers, workers):
    threshold_start = int(hp.get("start_fl_job_threshold", 0) or 0)
    ratio = hp.get("update_model_ratio", 1.0)
    threshold_update = update_model_threshold(threshold_start, ratio) if threshold_start else 0
    state_code = int(status.get("runningState", -1)) if str(status.get("runningState", "")).isdigit() else -1
    return {
        "instance": inst, "iteration": iteration, "fl_iteration_num": int(hp.get("fl_iteration_num", 0) or 0),
        "state": STATE_NAMES.get(state_code, "unknown"), "polled_ms": _now_ms(),
        "last_result": status.get("lastIterationResult", ""),
        "progress": {
            "startFLJob": {"threshold": threshold_start, "opened_ms": snap.timers.get("startFLJob")},
            "updateModel": {"threshold": threshold_update, "count": sum(snap.update_counts.values()),
                            "opened_ms": snap.timers.get("updateModel")},
            "aggregated": snap.aggregated},
        "live_servers": sum(1 for s in servers if s.alive), "live_workers": sum(1 for w in workers if w.alive),
        "nodes": [{"node_id": s.node_id, "role": s.role, "alive": s.alive, "tcp": s.tcp, "rank": s.rank}
                  for s in servers] + [{"node_id": w.node_id, "role": "WORKER", "alive": w.alive}
                                       for w in workers],
        "hyper_params": json.loads(json.dumps(hp)),
    }


def _apply_summaries(entry, summaries):
    """Participants, duration, loss and accuracy of an ended iteration, computed as its metrics.json line."""
    total = IterationStats.total(summaries.values())
    line = metrics_line(total, fl_name="", instance=entry["instance"], status_name="", fl_iteration_num=0,
                        iteration=entry["iteration"], success=entry["success"], end_ms=entry["end_ms"],
                        hybrid=False)
    entry.update(start_ms=total.start_ms or None, duration_ms=line["iterationExecutionTime"] if total.start_ms
                 else None, participants=total.update_accept, loss=line["metricsLoss"],
                 accuracy=line["metricsAuc"])
