"""One FL server: Redis-backed iteration engine (thresholds, windows, FedAvg, switching) and lifecycle."""
import asyncio
import json
import os
import random
import socket
import time

import numpy as np
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from mindspore_federated import errors
from mindspore_federated.clock import time_string
from mindspore_federated.config.thresholds import update_model_threshold
from mindspore_federated.log import get_logger
from mindspore_federated.server import replies
from mindspore_federated.server.aggregator import FedAvgAccumulator
from mindspore_federated.server.looplag import LoopLag
from mindspore_federated.server.model import ModelStore
from mindspore_federated.server.peers import allreduce_tag
from mindspore_federated.server.rounds import Unavailable, now_ms
from mindspore_federated.server.summary import IterationStats, parse_participation_levels
from mindspore_federated.state.base import Outcome
from mindspore_federated.state.keys import InstanceState

logger = get_logger(__name__)
SYNC_INTERVAL_S = 1.0
OVERLOAD_GRACE_S = 30.0  # Redis timeouts while this loop lags are retried this long (not safe mode)
SERVER_CHECK_INTERVAL_S = 1.0
AGGREGATION_WAIT_S = 30.0
HANDOVER_TIMEOUT_S = 3.0   # a leaving server hands its aggregated model to the others within this


class ServerNode:
    """Holds the server's view of the current instance/iteration and reacts to cluster events."""

    def __init__(self, cfg, state, spec, initial_model, http_address, peers, hooks, node_id=None):
        self.cfg = cfg
        self.peers = peers
        self.state = state
        self.spec = spec
        self.hooks = hooks                 # summary/callback sink (server.app.ServerApp)
        self.http_address = http_address
        self.tcp_address = peers.address
        self.node_id = node_id or f"{self.tcp_address}::{time_string()}::{random.randint(10000, 99999)}"
        self.rank = None
        self.store = ModelStore()
        self.initial_model = initial_model
        self.acc = FedAvgAccumulator(spec)
        self.stats = IterationStats()
        self.levels_ms = parse_participation_levels(cfg.get("summary.participation_time_level", "5,15"))
        self.inst = None
        self.iteration = 0
        self.running_state = InstanceState.RUNNING
        self.hp = {}
        self.cache_ok = True
        self.safemode = False
        self._lag = LoopLag()     # how late this loop runs (started by sync_loop)
        self._sync_ok_at = 0.0    # monotonic time of the last successful sync
        self.leaving = False               # graceful stop in progress: devices are turned away
        self.stopping = False              # the loops and tasks end
        self.round_starts = {}
        self.window_base_ms = now_ms()
        self._timers = {}
        self._reply_cache = {}
        self._aggregated = {}
        self._aggregating = {}
        self._sync_lock = asyncio.Lock()
        self._sync_wanted = asyncio.Event()
        self._last_heartbeat = 0.0
        self._last_server_check = 0.0
        self._tasks = set()
        self._hook_tasks = set()
        self.last_switch = None            # (iteration, success) of the newest iteration this server ended
        self._cache_error_logged = 0.0
        self.inflight = 0
        self.on_scale_in = None

    # ---- hyper-parameters -----------------------------------------------------------------------
    def apply_hyper_params(self, hp):
        self.hp = dict(hp)
        self.threshold_start = int(hp["start_fl_job_threshold"])
        self.threshold_update = update_model_threshold(self.threshold_start, hp["update_model_ratio"])
        self.iteration_window_ms = int(hp["start_fl_job_time_window"]) + int(hp["update_model_time_window"])
        self.fl_iteration_num = int(hp["fl_iteration_num"])
        self.download_quant = hp.get("download_compress_type") == "QUANT"
        plan = dict(hp)
        plan.update(fl_name=self.cfg.fl_name, server_mode=self.cfg.server_mode)
        for key, default in (("reconstruct_secrets_threshold", 1), ("dp_eps", 50.0), ("dp_delta", 0.01),
                             ("dp_norm_clip", 1.0), ("sign_k", 0.01), ("sign_eps", 100.0),
                             ("sign_thr_ratio", 0.6), ("sign_global_lr", 0.1), ("sign_dim_out", 0),
                             ("encrypt_type", "NOT_ENCRYPT")):
            plan.setdefault(key, default)
        self.plan = plan
        self._reply_cache.clear()

    def next_req_time(self):
        return self.round_starts.get("startFLJob", self.window_base_ms) + self.iteration_window_ms

    # ---- start-up -------------------------------------------------------------------------------
    async def join(self, local_hp):
        """Creates/adopts the instance, hyper-params and model declaration; returns after registering."""
        self.inst = await self.state.ensure_instance()
        status = await self.state.status(self.inst)
        if int(status.get("runningState", 0)) == InstanceState.STOP:
            raise errors.FederatedError(errors.START_STOPPING.format(fl_name=self.cfg.fl_name))
        self.apply_hyper_params(await self.state.sync_hyper_params(self.inst, local_hp))
        await self.state.declare_model(self.spec)
        if await self._lost_own_updates(status):
            status = await self.state.status(self.inst)
        self.iteration = int(status["iterationNum"])
        self.running_state = int(status["runningState"])
        if self.initial_model is not None:  # else the model comes from a peer or a checkpoint (app.py)
            self.store.put(self.iteration - 1, self.initial_model)

    async def _lost_own_updates(self, status):
        """A restart under the same node id within an iteration this node accepted updates for: those updates
        died with the old process, so the iteration fails now (before peers could aggregate without them)."""
        iteration = int(status["iterationNum"])
        if int(status.get("runningState", 0)) != InstanceState.RUNNING or \
                not (await self.state.update_counts(self.inst, iteration)).get(self.node_id):
            return False
        logger.warning("node %s accepted updates of iteration %s before it restarted: failing the iteration",
                       self.node_id, iteration)
        await self.state.finish_iteration(self.inst, iteration, False, errors.ITER_SERVER_EXITED,
                                          self.fl_iteration_num, "none", 0)
        # what this process saw of it is nothing: the summary writer need not wait for this node's report
        await self.state.put_summary(self.inst, iteration, self.node_id, IterationStats().to_dict())
        return True

    async def register(self, info):
        self._info = json.dumps(info)
        await self.state.heartbeat(self.inst, self.node_id, self.tcp_address, self._info)
        self._last_heartbeat = time.monotonic()

    # ---- request gating ----------------------------------------------------------------------------
    def gate(self, round_name):
        """None when the round may be served now, else the plain-text reply."""
        if self.stopping or self.leaving:
            return errors.SAFEMODE if round_name != "getModel" else None
        if self.running_state == InstanceState.DISABLE:
            return errors.JOB_DISABLED
        if self.running_state != InstanceState.RUNNING and round_name != "getModel":
            return errors.JOB_DISABLED
        if (self.safemode or not self.cache_ok) and round_name != "getModel":
            return errors.SAFEMODE
        return None

    def check_state_result(self, result):
        """The outcome of a round verb; when this server's view of the instance is stale it syncs now and the
        request is answered safe mode (status lost, iteration changed) or disabled (not running)."""
        outcome = result.outcome
        if outcome.stale:
            self.request_sync()
            raise Unavailable(errors.JOB_DISABLED if outcome is Outcome.NOT_RUNNING else errors.SAFEMODE)
        return outcome

    # ---- cached replies -----------------------------------------------------------------------------
    def _cached(self, key, build):
        reply = self._reply_cache.get(key)
        if reply is None:
            if len(self._reply_cache) > 16:
                self._reply_cache.clear()
            reply = self._reply_cache[key] = build()
        return reply

    def _model_for(self, iteration):
        return self.store.get(iteration) or self.store.newest()

    def model_of(self, iteration, instance=None):
        """The model of `iteration` if this server has it (aggregated or stored), else None."""
        if instance is not None and instance != self.inst:
            return None
        model = self._aggregated.get(iteration)
        return model if model is not None else self.store.get(iteration)

    def cached_fl_job_reply(self, compress):
        it, nxt = self.iteration, self.next_req_time()
        return self._cached(("fl", it, nxt, compress), lambda: replies.fl_job(
            replies.SUCCEED, errors.FLJOB_SUCCESS, it, nxt, self.plan, self._model_for(it - 1),
            self.spec.reply_order, compress))

    def cached_update_reply(self):
        nxt = self.next_req_time()
        return self._cached(("um", nxt), lambda: replies.update_model(replies.SUCCEED, errors.UPDATE_SUCCESS, nxt))

    def cached_get_model_reply(self, model_iteration, compress):
        it = self.iteration
        return self._cached(("gm", it, model_iteration, compress), lambda: replies.get_model(
            replies.SUCCEED, errors.GETMODEL_SUCCESS.format(iteration=it), it, "", self._model_for(model_iteration),
            self.spec.reply_order, compress))

    # ---- rounds' hooks ------------------------------------------------------------------------------
    def on_round_started(self, name, start_ms):
        """A request of this server opened round `name`'s window (its first count this iteration here):
        tell every server at once, so their round and global timers start together instead of at their
        next 1 s sync (they read the exact start time from Redis)."""
        if self._round_known(name, start_ms):
            self.spawn(self._announce_round(name, self.iteration))

    async def _announce_round(self, name, iteration):
        try:
            await self.state.publish({"event": "round", "instance": self.inst, "iteration": iteration,
                                      "round": name})
        except RedisError as exc:
            logger.debug("round event not published: %s", exc)

    def _round_known(self, name, start_ms):
        """Records the start of round `name`'s window and arms its timers; False when it was known."""
        if name in self.round_starts:
            return False
        start = start_ms if start_ms is not None else now_ms()
        self.round_starts[name] = start
        if name == "startFLJob":
            self.round_starts.setdefault("global", start)
            self.stats.start_ms = self.stats.start_ms or start
            self._reply_cache.clear()
        self._arm_timers()
        return True

    def on_round_complete(self, name):
        handle = self._timers.pop(name, None)
        if handle is not None:
            handle.cancel()

    async def accumulate(self, iteration, arrays, meta, loss, accuracy):
        if iteration != self.iteration:
            return
        data_size = int(meta["data_size"])
        await self.acc.add(arrays, data_size)
        self.stats.record_update(data_size, int(meta.get("eval_data_size", 0)), loss, accuracy,
                                 now_ms() - int(meta["now_time"]), self.levels_ms)

    async def count_for_aggregation(self, iteration):
        result = await self.state.count_for_aggregation(self.inst, iteration, self.node_id)
        if result.outcome is Outcome.ACCEPTED:
            await self.on_aggregation_count(iteration, result.total)

    async def on_aggregation_count(self, iteration, total):
        """The update that brings the cluster's accumulated count to the threshold starts the aggregation."""
        if total == self.threshold_update:
            self.spawn(self.aggregate(iteration))
            await self.state.publish({"event": "aggregate", "instance": self.inst, "iteration": iteration})

    async def push_model(self, iteration, weights):
        """Hybrid pushWeight: the pushed weights replace the iteration's model. False if already final."""
        if iteration in self._aggregated:
            return False
        base = self._model_for(iteration - 1)
        merged = dict(base.weights)
        merged.update({n: w.copy() for n, w in weights.items()})
        from mindspore_federated.server.model import Model

        self._aggregated[iteration] = Model(merged)
        return True

    async def on_push_metrics(self, loss, accuracy):
        self.stats.pushed_loss, self.stats.pushed_accuracy = float(loss), float(accuracy)
        if self.cfg.server_mode == "HYBRID_TRAINING":
            iteration = self.iteration
            # No pushWeight this iteration: its model is the one it started from (what peers fetch, too).
            self._aggregated.setdefault(iteration, self._model_for(iteration - 1))
            await self.finish(iteration, True, errors.ITER_METRICS)

    # ---- aggregation and iteration end --------------------------------------------------------------
    async def aggregate(self, iteration):
        """Every update of the iteration is accumulated somewhere: all-reduce over the servers that accepted
        updates (ordered by node id), average, and let the lowest of them advance the iteration."""
        if iteration != self.iteration or iteration in self._aggregating:
            return
        done = self._aggregating[iteration] = asyncio.get_running_loop().create_future()
        try:
            await self._aggregate(iteration)
        except Exception as exc:  # noqa: BLE001 - any failure fails the iteration, never the server
            logger.warning("aggregation of iteration %s failed: %s", iteration, exc)
            await self.finish(iteration, False, errors.ITER_AGG_FAILED.format(reason=exc))
        finally:
            done.set_result(None)

    async def _aggregate(self, iteration):
        await self.acc.drain()
        counts = await self.state.update_counts(self.inst, iteration)
        group = sorted(node for node, count in counts.items() if count > 0)
        if self.node_id not in group:
            return  # this server accepted no update: it gets the model from a group member at the switch
        rank = group.index(self.node_id)
        total_n = None
        if len(group) > 1:
            live = await self.state.live_servers(self.inst)
            if any(node not in live for node in group):
                await self.finish(iteration, False, errors.ITER_SERVER_EXITED)
                return
            extras = np.array([self.acc.data_size], np.float64)
            await self.peers.allreduce([live[n] for n in group], rank, self.acc.flat, extras,
                                       allreduce_tag(self.inst, iteration))
            total_n = float(extras[0])
        model = self.acc.average(self._model_for(iteration - 1), total_n)
        if model is None:
            await self.finish(iteration, False, errors.ITER_AGG_FAILED.format(reason="weights are not finite"))
            return
        if self.cfg.server_mode == "HYBRID_TRAINING":
            self._aggregated.setdefault(("devices", iteration), model)
            return
        self._aggregated[iteration] = model
        if rank == 0:
            await self.finish(iteration, True, errors.ITER_AGGREGATED)

    async def finish(self, iteration, success, reason, guard="none", guard_threshold=0):
        """Ends `iteration` in Redis (CAS) and switches locally at once when this call won."""
        try:
            won = await self.state.finish_iteration(self.inst, iteration, success, reason, self.fl_iteration_num,
                                                    guard, guard_threshold)
        except RedisError as exc:
            logger.warning("finishing iteration %s failed: %s", iteration, exc)
            won = False
        if won:
            logger.info("iteration %s finished: %s", iteration, reason)
        self.request_sync()
        return won

    # ---- timers ---------------------------------------------------------------------------------
    def _arm_timers(self):
        hp = self.hp
        plan = (("startFLJob", int(hp["start_fl_job_time_window"]), "field:startFLJob", self.threshold_start),
                ("updateModel", int(hp["update_model_time_window"]), "sum", self.threshold_update),
                ("global", int(hp["global_iteration_time_window"]), "none", 0))
        loop = asyncio.get_running_loop()
        for name, window, guard, threshold in plan:
            start = self.round_starts.get(name)
            if start is None or name in self._timers:
                continue
            delay = max(0.0, (start + window - now_ms()) / 1000.0)
            reason = (errors.ITER_GLOBAL_TIMEOUT if name == "global"
                      else errors.ITER_ROUND_TIMEOUT.format(name=name))
            it = self.iteration
            self._timers[name] = loop.call_later(
                delay, lambda it=it, g=guard, t=threshold, r=reason: self.spawn(self.finish(it, False, r, g, t)))

    def _cancel_timers(self):
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    # ---- sync with Redis ------------------------------------------------------------------------
    def spawn(self, coro, hook=False):
        """Runs `coro` as a task of this node; `hook` tasks (summaries, checkpoints, callbacks) are given
        time to finish at a graceful stop, the others are cancelled."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        if hook:
            self._hook_tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task):
        self._tasks.discard(task)
        self._hook_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("background task failed: %r", task.exception())

    def request_sync(self):
        self._sync_wanted.set()

    def cache_failed(self, exc):
        """A Redis command failed: safe mode until the next successful sync (requested now); a lost connection
        also drops the idle pooled ones, which a restarted Redis would refuse one by one."""
        self.cache_ok = False
        self.request_sync()
        if isinstance(exc, RedisConnectionError) and not self.stopping:
            self.spawn(self._reset_connections())

    async def _reset_connections(self):
        try:
            await self.state.reset_idle_connections()
        except (RedisError, OSError) as exc:
            logger.debug("resetting the Redis pool failed: %s", exc)

    async def sync_loop(self):
        self._lag.start()
        while not self.stopping:
            try:
                await asyncio.wait_for(self._sync_wanted.wait(), SYNC_INTERVAL_S)
            except asyncio.TimeoutError:
                pass
            self._sync_wanted.clear()
            if not self.stopping:
                await self.sync_once()
        self._lag.stop()

    async def sync_once(self):
        async with self._sync_lock:
            try:
                await self._sync_inner()
                if not self.cache_ok:
                    logger.info("distributed cache reachable again")
                self.cache_ok = True
                self._sync_ok_at = time.monotonic()
            except RedisError as exc:
                if self._overloaded(exc):  # this loop is late, not Redis: sync again, no safe mode
                    self.request_sync()
                    return
                self.cache_failed(exc)
                if time.monotonic() - self._cache_error_logged > 15:
                    logger.error("distributed cache unavailable: %s", exc)
                    self._cache_error_logged = time.monotonic()

    def _overloaded(self, exc):
        """A timeout while this event loop ran late, within OVERLOAD_GRACE_S of the last good sync."""
        return (isinstance(exc, RedisTimeoutError) and self._lag.lagged_within(3.0)
                and time.monotonic() - self._sync_ok_at < OVERLOAD_GRACE_S)

    async def _sync_inner(self):
        now = time.monotonic()
        if now - self._last_heartbeat >= SYNC_INTERVAL_S / 2:
            await self.state.heartbeat(self.inst, self.node_id, self.tcp_address, self._info)
            self._last_heartbeat = now
        name, status, counts, timers, aggregated = await self.state.snapshot(self.inst, self.iteration)
        if name is None or not status:
            await self._recover_lost_cache()
            return
        if name != self.inst:
            await self._switch_instance(name)
            return
        self._apply_running_state(int(status.get("runningState", 0)))
        iteration = int(status["iterationNum"])
        if iteration > self.iteration:
            await self._switch_iteration(iteration, status)
            return
        for round_name, start in timers.items():
            self._round_known(round_name, start)
        if aggregated >= self.threshold_update and self.iteration not in self._aggregating:
            self.spawn(self.aggregate(self.iteration))
        if now - self._last_server_check >= SERVER_CHECK_INTERVAL_S:
            self._last_server_check = now
            await self._check_servers(counts)

    async def _check_servers(self, counts):
        live = await self.state.live_servers(self.inst)
        gone = [node for node in counts if node not in live and node != self.node_id]
        if self.node_id not in live:  # its own heartbeat lapsed in a long stall: this server is alive, renew it
            await self.state.heartbeat(self.inst, self.node_id, self.tcp_address, self._info)
            self._last_heartbeat = time.monotonic()
        for node in counts:
            if node in live and node != self.node_id and await self.peers.ping(live[node]) == "refused":
                logger.warning("server %s does not answer on its TCP port: treating it as exited", node)
                await self.state.drop_server(self.inst, node)
                gone.append(node)
        if gone and self.running_state == InstanceState.RUNNING:
            logger.warning("servers %s that processed updateModel requests exited", gone)
            self.spawn(self.finish(self.iteration, False, errors.ITER_SERVER_EXITED))
        if self.on_scale_in is not None and await self.state.scale_in_requested(self.node_id):
            self.on_scale_in()

    def _apply_running_state(self, new_state):
        old, self.running_state = self.running_state, new_state
        if old == InstanceState.RUNNING and new_state == InstanceState.DISABLE:
            logger.info("instance disabled: failing iteration %s", self.iteration)
            self.spawn(self.finish(self.iteration, False, errors.ITER_DISABLED))

    async def _switch_iteration(self, new_iteration, status):
        self.safemode = True
        try:
            await self.acc.drain()
            old = self.iteration
            success = status.get("lastIterationSuccess") == "1"
            pending = self._aggregating.get(old)
            if pending is not None:
                if not success or new_iteration > old + 1:  # it ended without this aggregation: stop waiting
                    self.peers.cancel_allreduce(allreduce_tag(self.inst, old), f"iteration {old} ended")
                await asyncio.wait_for(asyncio.shield(pending), AGGREGATION_WAIT_S)
            reason = status.get("lastIterationResult", "")
            previous = self._model_for(old - 1)
            for it in range(old, new_iteration):
                model = self._aggregated.pop(it, None) if success and it == new_iteration - 1 else None
                if model is None and success and it == new_iteration - 1:
                    model = await self._fetch_model(it)
                    if model is None:  # never serve a stale model as this iteration's result
                        self.spawn(self._refetch_model(it))
                        continue
                previous = model or previous
                self.store.put(it, previous)
            self._aggregated = {k: v for k, v in self._aggregated.items()
                                if not isinstance(k, int) or k >= new_iteration}
            stats = self.stats
            self._reset_iteration(new_iteration)
            ok = success and old == new_iteration - 1
            self.last_switch = (old, ok)
            self.spawn(self.hooks.iteration_finished(self, old, stats, ok, reason), hook=True)
        finally:
            self.safemode = False

    async def _fetch_model(self, iteration):
        live = await self.state.live_servers(self.inst)
        peers = [live[n] for n in sorted(live) if n != self.node_id]
        model = await self.peers.fetch_model(peers, iteration, self.inst)
        if model is None:
            logger.error("no peer could provide the model of iteration %s: keeping the previous model", iteration)
        return model

    async def _refetch_model(self, iteration):
        """Retries fetching the aggregated model of `iteration` while it is the newest one this server needs;
        meanwhile startFLJob answers safe mode and getModel "not ready"."""
        while self.iteration == iteration + 1 and self.store.get(iteration) is None and not self.stopping:
            await asyncio.sleep(0.5)
            model = await self._fetch_model(iteration)
            if model is not None:
                self.store.put(iteration, model)
                self._reply_cache.clear()
                logger.info("fetched the model of iteration %s", iteration)

    def has_current_model(self):
        """True when the model devices should start this iteration from is here."""
        return self.store.get(self.iteration - 1) is not None

    def _reset_iteration(self, iteration):
        self.iteration = iteration
        self.acc.reset()
        self.stats = IterationStats()
        self.round_starts.clear()
        self._cancel_timers()
        self._reply_cache.clear()
        self._aggregating.clear()
        self.window_base_ms = now_ms()

    async def _switch_instance(self, name):
        self.safemode = True
        try:
            logger.info("new instance %s (was %s)", name, self.inst)
            newest = self.store.newest()
            self.inst = name
            hp = await self.state.hyper_params(name)
            if hp:
                self.apply_hyper_params(hp)
            await self.state.ensure_status(name, 1)
            status = await self.state.status(name)
            self.store.reset(0, newest)
            self._aggregated.clear()
            self._reset_iteration(int(status.get("iterationNum", 1)))
            self.running_state = int(status.get("runningState", 0))
            await self.state.heartbeat(self.inst, self.node_id, self.tcp_address, self._info)
        finally:
            self.safemode = False

    async def _recover_lost_cache(self):
        """Redis lost the instance: fail the current iteration, keep the model, re-declare everything."""
        logger.warning("instance status in the distributed cache is empty: failing iteration %s", self.iteration)
        name = await self.state.adopt_instance(self.inst)
        if name != self.inst:
            await self._switch_instance(name)
            return
        await self.state.create_status_after_loss(self.inst, self.iteration + 1, errors.ITER_CACHE_EMPTY)
        await self.state.sync_hyper_params(self.inst, self.hp)
        await self.state.declare_model(self.spec)
        await self.state.heartbeat(self.inst, self.node_id, self.tcp_address, self._info)
        status = await self.state.status(self.inst)
        if int(status["iterationNum"]) > self.iteration:
            await self._switch_iteration(int(status["iterationNum"]), status)

    # ---- events ---------------------------------------------------------------------------------
    async def event_loop(self):
        """Subscribes to the cluster's event channel; every event triggers an immediate sync."""
        while not self.stopping:
            subscription = None
            try:
                subscription = await self.state.subscribe()
                while not self.stopping:
                    event = await subscription.get(timeout=1.0)
                    if event is not None:
                        self._on_event(event)
            except (RedisError, OSError) as exc:
                logger.debug("event subscription lost: %s", exc)
                await asyncio.sleep(0.5)
            finally:
                try:
                    if subscription is not None:
                        await subscription.aclose()
                except (RedisError, OSError):
                    pass

    def _on_event(self, event):
        kind = event.get("event")
        if kind == "aggregate" and event.get("instance") == self.inst:
            self.spawn(self.aggregate(int(event["iteration"])))
        elif kind == "round" and event.get("instance") == self.inst:
            if event.get("iteration") == self.iteration and event.get("round") not in self.round_starts:
                self.request_sync()  # the start time is read from Redis's timer hash
        else:
            self.request_sync()

    # ---- graceful stop ------------------------------------------------------------------------------
    async def drain(self, timeout):
        """Graceful stop, after in-flight requests and before deregistering.

        When this server holds updates of the current iteration and the cluster has accepted enough of
        them to aggregate (the last update may have just been accepted here or elsewhere), it takes part
        in the aggregation and waits for the iteration to end (at most `timeout` s), then hands the model
        to the live servers that did not aggregate, since they could otherwise only fetch it from here.
        Returns True when no update of this server was left un-aggregated.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        iteration = self.iteration
        if not self.cache_ok:
            return False  # no group can be formed without the distributed cache
        try:
            counts = await asyncio.wait_for(self.state.update_counts(self.inst, iteration), 1.0)
        except (RedisError, asyncio.TimeoutError) as exc:
            logger.warning("stop: cannot read the update counts of iteration %s: %r", iteration, exc)
            return False
        if counts.get(self.node_id, 0) == 0 or self.iteration != iteration:
            return True
        if sum(counts.values()) < self.threshold_update:
            logger.warning("stop: leaving with %s un-aggregated updates of iteration %s",
                           counts[self.node_id], iteration)
            return False
        logger.info("stop: taking part in the aggregation of iteration %s before leaving", iteration)
        if iteration not in self._aggregating:
            self.spawn(self.aggregate(iteration))  # the group is fixed once the threshold is reached
        while self.iteration == iteration and loop.time() < deadline:
            await asyncio.sleep(0.01)
        if self.iteration == iteration:
            logger.warning("stop: iteration %s did not end within %.1f s", iteration, timeout)
            return False
        model = self.store.get(iteration)
        if self.last_switch == (iteration, True) and model is not None and \
                self.cfg.server_mode != "HYBRID_TRAINING":
            try:
                live = await self.state.live_servers(self.inst)
            except RedisError as exc:
                logger.warning("stop: cannot list the live servers: %s", exc)
                return True
            outside = [live[n] for n in sorted(live) if n != self.node_id and counts.get(n, 0) == 0]
            if outside:
                await self.peers.offer_model(outside, iteration, self.inst, model,
                                             min(HANDOVER_TIMEOUT_S, max(0.5, deadline - loop.time())))
        return True

    def offer_model(self, instance, iteration, model):
        """A leaving peer hands over the final model of `iteration`; True when this server took it."""
        if instance != self.inst or not self.spec.accepts(model.weights):
            return False
        if iteration == self.iteration and iteration not in self._aggregated:
            self._aggregated[iteration] = model   # the switch to the next iteration stores it
        elif iteration == self.iteration - 1 and self.store.get(iteration) is None:
            self.store.put(iteration, model)
            self._reply_cache.clear()
        else:
            return False
        logger.info("took the model of iteration %s from a leaving server", iteration)
        return True

    async def stop_tasks(self, hook_timeout=0.0):
        """Ends the loops and timers; waits up to `hook_timeout` s for summary/callback tasks, then
        cancels every remaining task and waits for them to unwind."""
        self.stopping = True
        self._cancel_timers()
        if self._hook_tasks and hook_timeout > 0:
            await asyncio.wait(list(self._hook_tasks), timeout=hook_timeout)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)

    async def close(self):
        await self.stop_tasks()
        self.acc.close()


def host_name():
    return socket.gethostname()


def pid():
    return os.getpid()
