"""The sync loop: heartbeats, and this server's view reconciled with the cluster state (1 s or on demand)."""
import asyncio
import json
import time

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from mindspore_federated import errors
from mindspore_federated.log import get_logger
from mindspore_federated.server.engine.looplag import LoopLag
from mindspore_federated.state.keys import InstanceState

logger = get_logger(__name__)
SYNC_INTERVAL_S = 1.0
SERVER_CHECK_INTERVAL_S = 1.0
CACHE_ERROR_LOG_INTERVAL_S = 15.0
OVERLOAD_GRACE_S = 30.0  # Redis timeouts while this loop lags are retried this long (not safe mode)
LAG_WINDOW_S = 3.0       # "the loop ran late" means: within this many seconds
FAILED_SYNC_PAUSE_S = 0.25  # after a failed sync: a dead Redis is retried 4x a second, not in a busy loop


class SyncLoop:
    """Reads one snapshot of the cluster state per sync and applies it: instance, running state, iteration,
    window start times, the aggregation count and the servers that left."""

    def __init__(self, ctx, windows, lifecycle):
        self.ctx = ctx
        self.windows = windows
        self.lifecycle = lifecycle
        self.on_scale_in = None            # () -> None: the scheduler asked this server to leave
        self._lock = asyncio.Lock()
        self._last_heartbeat = 0.0
        self._last_server_check = 0.0
        self._cache_error_logged = 0.0
        self._lag = LoopLag()     # how late this loop runs (measured while run() runs)
        self._sync_ok_at = 0.0    # monotonic time of the last successful sync

    async def register(self, info):
        """Registers this server (its info is sent with every heartbeat from now on)."""
        ctx = self.ctx
        ctx.info = json.dumps(info)
        await ctx.state.heartbeat(ctx.inst, ctx.node_id, ctx.tcp_address, ctx.info)
        self._last_heartbeat = time.monotonic()

    def cache_failed(self, exc):
        """A Redis command failed: safe mode until the next successful sync (requested now); a lost connection
        also drops the idle pooled ones, which a restarted Redis would refuse one by one."""
        ctx = self.ctx
        ctx.cache_ok = False
        ctx.request_sync()
        if isinstance(exc, RedisConnectionError) and not ctx.stopping:
            ctx.spawn(self._reset_connections())

    async def _reset_connections(self):
        try:
            await self.ctx.state.reset_idle_connections()
        except (RedisError, OSError) as exc:
            logger.debug("resetting the Redis pool failed: %s", exc)

    async def run(self):
        ctx = self.ctx
        self._lag.start()
        try:
            while not ctx.stopping:
                try:
                    await asyncio.wait_for(ctx.sync_wanted.wait(), SYNC_INTERVAL_S)
                except asyncio.TimeoutError:
                    pass
                ctx.sync_wanted.clear()
                if not ctx.stopping and not await self.once():
                    await asyncio.sleep(FAILED_SYNC_PAUSE_S)
        finally:
            self._lag.stop()

    async def once(self):
        """One sync; False when the cluster state could not be read (the caller pauses before the next)."""
        ctx = self.ctx
        async with self._lock:
            try:
                await self._sync()
                if not ctx.cache_ok:
                    logger.info("distributed cache reachable again")
                ctx.cache_ok = True
                self._sync_ok_at = time.monotonic()
                return True
            except RedisError as exc:
                if self._overloaded(exc):  # this loop is late, not Redis: sync again, no safe mode
                    ctx.request_sync()
                    return False
                self.cache_failed(exc)
                if time.monotonic() - self._cache_error_logged > CACHE_ERROR_LOG_INTERVAL_S:
                    logger.error("distributed cache unavailable: %s", exc)
                    self._cache_error_logged = time.monotonic()
                return False

    def _overloaded(self, exc):
        """A timeout while this event loop ran late, within OVERLOAD_GRACE_S of the last good sync."""
        return (isinstance(exc, RedisTimeoutError) and self._lag.lagged_within(LAG_WINDOW_S)
                and time.monotonic() - self._sync_ok_at < OVERLOAD_GRACE_S)

    async def _sync(self):
        ctx = self.ctx
        now = time.monotonic()
        if now - self._last_heartbeat >= SYNC_INTERVAL_S / 2:
            await ctx.state.heartbeat(ctx.inst, ctx.node_id, ctx.tcp_address, ctx.info)
            self._last_heartbeat = now
        name, status, counts, timers, aggregated = await ctx.state.snapshot(ctx.inst, ctx.iteration)
        if name is None or not status:
            await self._recover_lost_cache()
            return
        if name != ctx.inst:
            await self.lifecycle.switch_instance(name)
            return
        self.lifecycle.apply_running_state(int(status.get("runningState", 0)))
        iteration = int(status["iterationNum"])
        if iteration > ctx.iteration:
            await self.lifecycle.switch_iteration(iteration, status)
            return
        for round_name, start in timers.items():
            self.windows.open(round_name, start)
        if aggregated >= ctx.threshold_update and ctx.iteration not in ctx.aggregating:
            ctx.spawn(self.lifecycle.aggregate(ctx.iteration))
        if now - self._last_server_check >= SERVER_CHECK_INTERVAL_S:
            self._last_server_check = now
            await self._check_servers(counts)

    async def _check_servers(self, counts):
        """Fails the iteration when a server that accepted updates of it is gone; honours a scale-in."""
        ctx = self.ctx
        live = await ctx.state.live_servers(ctx.inst)
        gone = [node for node in counts if node not in live and node != ctx.node_id]
        if ctx.node_id not in live:  # its own heartbeat lapsed in a long stall: this server is alive, renew it
            await ctx.state.heartbeat(ctx.inst, ctx.node_id, ctx.tcp_address, ctx.info)
            self._last_heartbeat = time.monotonic()
        for node in counts:
            if node in live and node != ctx.node_id and await ctx.peers.ping(live[node]) == "refused":
                logger.warning("server %s does not answer on its TCP port: treating it as exited", node)
                await ctx.state.drop_server(ctx.inst, node)
                gone.append(node)
        if gone and ctx.running_state == InstanceState.RUNNING:
            logger.warning("servers %s that processed updateModel requests exited", gone)
            ctx.spawn(self.lifecycle.finish(ctx.iteration, False, errors.ITER_SERVER_EXITED))
        if self.on_scale_in is not None and await ctx.state.scale_in_requested(ctx.node_id):
            self.on_scale_in()

    async def _recover_lost_cache(self):
        """Redis lost the instance: fail the current iteration, keep the model, re-declare everything."""
        ctx = self.ctx
        logger.warning("instance status in the distributed cache is empty: failing iteration %s",
                       ctx.iteration)
        name = await ctx.state.adopt_instance(ctx.inst)
        if name != ctx.inst:
            await self.lifecycle.switch_instance(name)
            return
        await ctx.state.create_status_after_loss(ctx.inst, ctx.iteration + 1, errors.ITER_CACHE_EMPTY)
        await ctx.state.sync_hyper_params(ctx.inst, ctx.hp)
        await ctx.state.declare_model(ctx.spec)
        await ctx.state.heartbeat(ctx.inst, ctx.node_id, ctx.tcp_address, ctx.info)
        status = await ctx.state.status(ctx.inst)
        if int(status["iterationNum"]) > ctx.iteration:
            await self.lifecycle.switch_iteration(int(status["iterationNum"]), status)
