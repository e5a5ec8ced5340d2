"""Iteration lifecycle: accumulate → aggregate → finish → switch to the next iteration (or instance)."""
import asyncio

from redis.exceptions import RedisError

from mindspore_federated import errors
from mindspore_federated.clock import now_ms
from mindspore_federated.log import get_logger
from mindspore_federated.server.model import Model
from mindspore_federated.server.peers import allreduce_tag
from mindspore_federated.server.secagg.prime import load_prime
from mindspore_federated.server.summary import IterationStats
from mindspore_federated.state.base import Outcome
from mindspore_federated.state.keys import InstanceState

logger = get_logger(__name__)
AGGREGATION_WAIT_S = 30.0


class IterationLifecycle:
    """Moves this server through the iterations; `pipeline` (an AggregationPipeline) aggregates one."""

    def __init__(self, ctx, windows):
        self.ctx = ctx
        self.windows = windows
        self.pipeline = None
        self._fetching_devices = False

    # ---- accumulate ---------------------------------------------------------------------------
    async def accumulate(self, iteration, arrays, meta, loss, accuracy):
        """Adds an accepted update (name -> float32 view) of `iteration` and records it in the statistics."""
        ctx = self.ctx
        if iteration != ctx.iteration:
            return
        data_size = int(meta["data_size"])
        await ctx.acc.add(arrays, data_size)
        ctx.stats.record_update(data_size, int(meta.get("eval_data_size", 0)), loss, accuracy,
                                now_ms() - int(meta["now_time"]), ctx.levels_ms)

    async def count_for_aggregation(self, iteration):
        ctx = self.ctx
        result = await ctx.state.count_for_aggregation(ctx.inst, iteration, ctx.node_id)
        if result.outcome is Outcome.ACCEPTED:
            await self.on_aggregation_count(iteration, result.total)

    async def on_aggregation_count(self, iteration, total):
        """The update that brings the cluster's accumulated count to the threshold starts the aggregation."""
        ctx = self.ctx
        if total == ctx.threshold_update:
            ctx.spawn(self.aggregate(iteration))
            await ctx.state.publish({"event": "aggregate", "instance": ctx.inst, "iteration": iteration})

    def push_model(self, iteration, weights):
        """Hybrid pushWeight: the pushed weights replace the iteration's model (weights not pushed keep the
        devices' aggregate, else the starting value). False if the model of `iteration` is final already."""
        ctx = self.ctx
        if iteration in ctx.aggregated:
            return False
        base = ctx.aggregated.get(("devices", iteration)) or ctx.model_for(iteration - 1)
        merged = dict(base.weights)
        merged.update({n: w.copy() for n, w in weights.items()})
        ctx.aggregated[iteration] = Model(merged)
        return True

    def device_model_here(self, iteration):
        """The devices' aggregate of `iteration` if this server has it; else None, and a fetch from the
        peers starts in the background (at most one at a time)."""
        ctx = self.ctx
        model = ctx.aggregated.get(("devices", iteration))
        if model is None and not self._fetching_devices:
            self._fetching_devices = True
            ctx.spawn(self._fetch_devices(iteration))
        return model

    async def _fetch_devices(self, iteration):
        try:
            await self.device_model(iteration)
        finally:
            self._fetching_devices = False

    async def device_model(self, iteration):
        """Hybrid pullWeight: the devices' aggregate of `iteration`, from this server or a peer that
        aggregated it; None while there is none."""
        ctx = self.ctx
        key = ("devices", iteration)
        model = ctx.aggregated.get(key)
        if model is None:
            model = await self.fetch_model(iteration, stage="devices")
            if model is not None and ctx.iteration == iteration:
                ctx.aggregated.setdefault(key, model)
        return model

    async def push_metrics(self, loss, accuracy):
        """Hybrid pushMetrics: records them and ends the iteration valid. Its model: the worker's pushed
        weights (here or on a peer), else the devices' aggregate, else the starting model."""
        ctx = self.ctx
        ctx.stats.pushed_loss, ctx.stats.pushed_accuracy = float(loss), float(accuracy)
        if ctx.hybrid:
            iteration = ctx.iteration
            if iteration not in ctx.aggregated:
                model = (await self.fetch_model(iteration, stage="pushed") or await self.device_model(iteration)
                         or ctx.model_for(iteration - 1))
                if ctx.iteration == iteration:
                    ctx.aggregated.setdefault(iteration, model)
            await self.finish(iteration, True, errors.ITER_METRICS)

    # ---- aggregate and finish -------------------------------------------------------------------
    async def aggregate(self, iteration):
        """Runs the aggregation pipeline once per iteration; any failure fails the iteration."""
        ctx = self.ctx
        if iteration != ctx.iteration or iteration in ctx.aggregating:
            return
        done = ctx.aggregating[iteration] = asyncio.get_running_loop().create_future()
        try:
            await self.pipeline.run(iteration)
        except Exception as exc:  # noqa: BLE001 - any failure fails the iteration, never the server
            logger.warning("aggregation of iteration %s failed: %s", iteration, exc)
            await self.finish(iteration, False, errors.ITER_AGG_FAILED.format(reason=exc))
        finally:
            done.set_result(None)

    async def finish(self, iteration, success, reason, guard="none", guard_threshold=0):
        """Ends `iteration` in the cluster state (CAS) and syncs at once; True when this call won."""
        ctx = self.ctx
        try:
            won = await ctx.state.finish_iteration(ctx.inst, iteration, success, reason, ctx.fl_iteration_num,
                                                   guard, guard_threshold)
        except RedisError as exc:
            logger.warning("finishing iteration %s failed: %s", iteration, exc)
            won = False
        if won:
            logger.info("iteration %s finished: %s", iteration, reason)
        ctx.request_sync()
        return won

    async def fail_lost_updates(self, iteration):
        """A restart within an iteration this node accepted updates for: they died with the old process."""
        ctx = self.ctx
        logger.warning("node %s accepted updates of iteration %s before it restarted: failing the iteration",
                       ctx.node_id, iteration)
        await ctx.state.finish_iteration(ctx.inst, iteration, False, errors.ITER_SERVER_EXITED,
                                         ctx.fl_iteration_num, "none", 0)
        # what this process saw of it is nothing: the summary writer need not wait for this node's report
        await ctx.state.put_summary(ctx.inst, iteration, ctx.node_id, IterationStats().to_dict())

    def apply_running_state(self, new_state):
        ctx = self.ctx
        old, ctx.running_state = ctx.running_state, new_state
        if old == InstanceState.RUNNING and new_state == InstanceState.DISABLE:
            logger.info("instance disabled: failing iteration %s", ctx.iteration)
            ctx.spawn(self.finish(ctx.iteration, False, errors.ITER_DISABLED))

    # ---- switch ---------------------------------------------------------------------------------
    async def switch_iteration(self, new_iteration, status):
        """The cluster moved on to `new_iteration`: store the ended iteration's model, report, reset."""
        ctx = self.ctx
        ctx.safemode = True
        try:
            await ctx.acc.drain()
            old = ctx.iteration
            success = status.get("lastIterationSuccess") == "1"
            await self._wait_aggregation(old, new_iteration, success)
            await self._store_models(old, new_iteration, success)
            stats = ctx.stats
            self.reset_iteration(new_iteration)
            ok = success and old == new_iteration - 1
            ctx.last_switch = (old, ok)
            reason = status.get("lastIterationResult", "")
            ctx.spawn(ctx.hooks.iteration_finished(ctx, old, stats, ok, reason), hook=True)
        finally:
            ctx.safemode = False

    async def _wait_aggregation(self, old, new_iteration, success):
        ctx = self.ctx
        pending = ctx.aggregating.get(old)
        if pending is None:
            return
        if not success or new_iteration > old + 1:  # it ended without this aggregation: stop waiting
            ctx.peers.cancel_allreduce(allreduce_tag(ctx.inst, old), f"iteration {old} ended")
        await asyncio.wait_for(asyncio.shield(pending), AGGREGATION_WAIT_S)

    async def _store_models(self, old, new_iteration, success):
        """Stores a model for every ended iteration: the aggregated (or fetched) one for the last, if it
        succeeded, else the previous model."""
        ctx = self.ctx
        previous = ctx.model_for(old - 1)
        for it in range(old, new_iteration):
            final = success and it == new_iteration - 1
            model = ctx.aggregated.pop(it, None) if final else None
            if model is None and final:
                model = await self.fetch_model(it)
                if model is None:  # never serve a stale model as this iteration's result
                    ctx.spawn(self._refetch_model(it))
                    continue
            previous = model or previous
            ctx.store.put(it, previous)
        ctx.aggregated = {k: v for k, v in ctx.aggregated.items()
                          if (k if isinstance(k, int) else k[1]) >= new_iteration}

    async def fetch_model(self, iteration, stage=None):
        """The model of `iteration` from a peer (`stage` "devices": the hybrid devices' aggregate, "pushed":
        only a worker's pushed model), or None."""
        ctx = self.ctx
        live = await ctx.state.live_servers(ctx.inst)
        peers = [live[n] for n in sorted(live) if n != ctx.node_id]
        model = await ctx.peers.fetch_model(peers, iteration, ctx.inst, stage)
        if model is None and stage is None:
            logger.error("no peer could provide the model of iteration %s: keeping the previous model",
                         iteration)
        return model

    async def _refetch_model(self, iteration):
        """Retries fetching the aggregated model of `iteration` while it is the newest one this server needs;
        meanwhile startFLJob answers safe mode and getModel "not ready"."""
        ctx = self.ctx
        while ctx.iteration == iteration + 1 and ctx.store.get(iteration) is None and not ctx.stopping:
            await asyncio.sleep(0.5)
            model = await self.fetch_model(iteration)
            if model is not None:
                ctx.store.put(iteration, model)
                ctx.replies.clear()
                logger.info("fetched the model of iteration %s", iteration)

    def reset_iteration(self, iteration):
        ctx = self.ctx
        ctx.iteration = iteration
        ctx.acc.reset()
        ctx.stats = IterationStats()
        self.windows.reset()
        ctx.replies.clear()
        ctx.aggregating.clear()

    async def switch_instance(self, name):
        """The cluster started a new instance: adopt its hyper-parameters and iteration, keep the model."""
        ctx = self.ctx
        ctx.safemode = True
        try:
            logger.info("new instance %s (was %s)", name, ctx.inst)
            newest = ctx.store.newest()
            hp = await ctx.state.hyper_params(name)
            if hp:
                ctx.apply_hyper_params(hp)
                await load_prime(ctx)
            await ctx.state.ensure_status(name, 1)
            status = await ctx.state.status(name)
            ctx.store.reset(0, newest)
            ctx.aggregated.clear()
            self.reset_iteration(int(status.get("iterationNum", 1)))
            ctx.running_state = int(status.get("runningState", 0))
            await ctx.state.heartbeat(name, ctx.node_id, ctx.tcp_address, ctx.info)
            # last: /healthz shows the new instance only once it is fully adopted (out of safe mode next)
            ctx.inst = name
        finally:
            ctx.safemode = False
