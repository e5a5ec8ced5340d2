"""Server process application: start-up sequence, HTTP site, signals, graceful stop, summaries and checkpoints."""
import asyncio
import gc
import os
import signal
import threading
import time

from redis.exceptions import RedisError

from mindspore_federated import errors
from mindspore_federated.address import split_host_port
from mindspore_federated.log import apply_config, get_logger, set_node
from mindspore_federated.metrics import server as server_metrics
from mindspore_federated.server.capabilities import check_hyper_params
from mindspore_federated.server.device_api import DeviceApi, max_body_bytes
from mindspore_federated.server.http_app import AiohttpDeviceServer
from mindspore_federated.server.http_fast import FastDeviceServer
from mindspore_federated.server.http_limits import HttpLimits
from mindspore_federated.server.model import Model, ModelSpec
from mindspore_federated.server.node import ServerNode
from mindspore_federated.server.peers import Peers, max_frame_bytes
from mindspore_federated.server.summary import (
    IterationStats,
    append_failure_event,
    append_json_line,
    ensure_file,
    metrics_line,
)
from mindspore_federated.state.clients import RedisSettings, make_client, make_pipelined, startup_failure
from mindspore_federated.state.keys import METRICS_STATE_NAMES
from mindspore_federated.state.redis_state import RedisClusterState

logger = get_logger(__name__)
CONNECT_DEADLINE_S = 10.0
REG_LOCK_DEADLINE_S = 60.0
DRAIN_DEADLINE_S = 5.0
AGGREGATION_DRAIN_MIN_S = 1.0  # a stopping server finishes the all-reduce it is part of, if it can
HOOK_DRAIN_S = 3.0             # and the summary of an iteration it is writing
SUMMARY_WAIT_S = 3.0
PEER_WAIT_S = 20.0


def new_event_loop():
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


class ServerApp:
    """Runs one server until SIGTERM/SIGINT (or a scale-in request)."""

    def __init__(self, cfg, http_address, tcp_ip, checkpoint_dir, feature_map, callback=None, node_id=None,
                 recovery_file=None, device_tls=None, peer_tls=None):
        from mindspore_federated.recovery import RecoveryFile

        self.recovery = RecoveryFile(recovery_file) if recovery_file else None
        remembered = self.recovery.load().get("node_id") if self.recovery else None
        self.node_id = node_id or os.environ.get("MS_NODE_ID") or remembered or None
        self._peer_tls = peer_tls  # tls.peer_link_options(...) or None, handed to the communicator once
        self.cfg = cfg
        self.http_address = http_address
        self.tcp_ip = tcp_ip
        self.checkpoint_dir = checkpoint_dir
        self.feature_map = feature_map
        self.callback = callback
        self.device_tls = device_tls  # ssl.SSLContext of the device API (enable_ssl), else None: plain HTTP
        self.node = None
        self._stop = None
        self._failures = 0
        self._peers = None
        self._rate = {}

    # ---- blocking entry -------------------------------------------------------------------------
    def run(self):
        apply_config(self.cfg)  # the YAML's log_level, when set, wins over the environment
        loop = new_event_loop()
        asyncio.set_event_loop(loop)
        self._stop = asyncio.Event()
        main_thread = threading.current_thread() is threading.main_thread()
        if main_thread:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop)
        try:
            loop.run_until_complete(self._main())
        finally:
            if main_thread:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            asyncio.set_event_loop(None)

    def request_stop(self):
        if self._stop is not None and not self._stop.is_set():
            logger.info("stop requested")
            self._stop.set()

    # ---- start-up -------------------------------------------------------------------------------
    async def _connect(self, settings, fast):
        """The redis-py client once both it and the pipelined hot-path client (`fast`) answer PING (AUTH,
        SELECT and TLS included); a refused AUTH fails at once, naming Redis auth."""
        client = make_client(settings)
        deadline = time.monotonic() + CONNECT_DEADLINE_S
        while True:
            try:
                await client.ping()
                if fast is not None:
                    await fast.execute("PING")
                return client
            except (RedisError, OSError) as exc:
                fatal, text = startup_failure(settings, exc)
                if fatal or time.monotonic() > deadline:
                    await client.aclose()
                    raise errors.FederatedError(f"{errors.START_INSTANCE}: {text}") from None
                await asyncio.sleep(0.2)

    async def _meet_peers(self, ctx, state):
        """Pings every listed server (waiting out dead ones until their heartbeat expires), then adopts the
        cluster's current model from a live peer."""
        deadline = time.monotonic() + PEER_WAIT_S
        while True:
            listed = await state.live_servers(ctx.inst)
            peers = [n for n in sorted(listed) if n != ctx.node_id]
            results = [await ctx.peers.ping(listed[n]) for n in peers]
            for peer, result in zip(peers, results):
                if result == "refused":  # nothing listens there any more: the server is dead
                    logger.info("listed server %s is gone: removing it", peer)
                    await state.drop_server(ctx.inst, peer)
            live = [listed[n] for n, r in zip(peers, results) if r == "ok"]
            if all(r != "timeout" for r in results):
                break
            if time.monotonic() > deadline:
                raise errors.FederatedError(errors.START_PEERS)
            await asyncio.sleep(0.5)
        if live:
            model = await ctx.peers.fetch_model(live, ctx.iteration - 1, ctx.inst)
            if model is not None and ctx.spec.accepts(model.weights):
                ctx.store.put(ctx.iteration - 1, model)
                logger.info("adopted the model of iteration %s from a peer", ctx.iteration - 1)
        if ctx.store.get(ctx.iteration - 1) is None:  # started without a feature map, no peer had it
            model = await self._recovery_model(ctx.spec)
            if model is None:
                raise errors.FederatedError(errors.START_EMPTY_MODEL)
            ctx.store.put(ctx.iteration - 1, model)

    async def _model_spec(self, state):
        """The model's spec: from the feature map, or (started without one) the cluster's declaration."""
        if self.feature_map is not None and len(self.feature_map) > 0:
            return ModelSpec.from_feature_map(self.feature_map), Model.from_feature_map(self.feature_map)
        info = await state.declared_model()
        if info is None:
            raise errors.FederatedError(errors.START_EMPTY_MODEL)
        # empty, not None: it must match the declaration (the reference's text)
        if self.feature_map is not None:
            problem = ModelSpec.from_feature_map(self.feature_map).check_against(info)
            raise errors.FederatedError(problem or errors.START_EMPTY_MODEL)
        try:
            spec = ModelSpec.from_info(info)
        except (ValueError, KeyError, TypeError) as exc:
            raise errors.FederatedError(
                f"{errors.START_EMPTY_MODEL}: the declared model is unusable: {exc}") from None
        logger.info("no feature map: serving the model declared in the distributed cache (%s features)",
                    len(spec.order))
        return spec, None

    async def _recovery_model(self, spec):
        """The newest recovery checkpoint of this fl_name that matches `spec`, as a Model, or None."""
        if not self.checkpoint_dir or not os.path.isdir(self.checkpoint_dir):
            return None
        from mindspore_federated.checkpoint import RecoveryCheckpoints

        saver = RecoveryCheckpoints(self.checkpoint_dir, self.cfg.fl_name)
        loop = asyncio.get_running_loop()
        newest = await loop.run_in_executor(None, lambda: saver.newest(accept=spec.accepts))
        if newest is None:
            return None
        logger.info("loading recovery checkpoint %s", newest[0])
        return Model.from_arrays(spec, newest[1])

    async def _main(self):
        settings = RedisSettings.from_config(self.cfg)
        if settings.topology.kind == "cluster":  # the pipelined client speaks to one node: said, never silent
            logger.info(errors.REDIS_CLUSTER_PIPELINED.format(address=settings.address))
            fast = None
        else:
            fast = make_pipelined(settings)  # the EVALSHA hot path
        try:
            client = await self._connect(settings, fast)
        except BaseException:
            if fast is not None:
                await fast.aclose()
            raise
        state = RedisClusterState(client, self.cfg.fl_name, self.cfg["round.global_iteration_time_window"],
                                  fast=fast)
        http = None
        node = None
        try:
            try:
                spec, initial = await self._model_spec(state)
            except RedisError as exc:
                raise errors.FederatedError(f"{errors.START_INSTANCE}: {exc}") from None
            self._peers = Peers(self.tcp_ip, self.cfg.client.connection_num,
                                max_frame_bytes(spec), tls=self._peer_tls)
            self._peer_tls = None  # the keys now live in the communicator only
            node = self.node = ServerNode(self.cfg, state, spec, initial, self.http_address, self._peers,
                                          self, self.node_id)
            self._peers.serve(node)
            set_node(node.ctx.node_id)
            node.on_scale_in = self.request_stop
            try:
                await node.join(self.cfg.hyper_params())
            except RedisError as exc:
                raise errors.FederatedError(f"{errors.START_INSTANCE}: {exc}") from None
            check_hyper_params(node.ctx.hp, self.cfg.fl_name)  # the cluster's settings win over the YAML's
            if not await state.acquire_reg_lock(node.ctx.inst, node.ctx.node_id, REG_LOCK_DEADLINE_S):
                raise errors.FederatedError(errors.START_REG_LOCK)
            try:
                await self._meet_peers(node.ctx, state)
                http = await self._start_http(node, spec)
                await self._register(node, state)
            finally:
                await state.release_reg_lock(node.ctx.inst, node.ctx.node_id)
            self._ready(node.ctx)
            await self._serve(node)
        finally:
            await self._shutdown(node, http, state)

    async def _start_http(self, node, spec):
        api = DeviceApi(node, self.cfg.client.http_url_prefix, max_body_bytes(spec),
                        self.cfg.client.max_concurrent_uploads)
        engine = self.cfg.client.http_engine
        limits = HttpLimits.from_config(self.cfg)
        server = FastDeviceServer(api, limits) if engine == "fast" else AiohttpDeviceServer(api, limits)
        host, port = split_host_port(self.http_address)
        try:
            await server.start(host, port, ssl_context=self.device_tls)
        except OSError as exc:
            text = errors.START_HTTP.format(address=self.http_address, reason=exc)
            raise errors.FederatedError(text) from None
        return server

    async def _register(self, node, state):
        from mindspore_federated.tools.proc_registry import registration

        ctx = node.ctx
        ctx.rank = await state.assign_rank(ctx.inst, ctx.node_id)
        info = registration("SERVER", http=self.http_address, tcp=ctx.tcp_address, rank=ctx.rank)
        await node.register(info)
        await state.register_process(ctx.node_id, info)
        if self.recovery is not None:
            self.recovery.save({"node_id": ctx.node_id, "rank": ctx.rank, "fl_name": self.cfg.fl_name,
                                "http": self.http_address, "instance": ctx.inst, "iteration": ctx.iteration})

    def _ready(self, ctx):
        ensure_file(self.cfg.summary.failure_event_file)  # the reference creates it (and its folder) at start
        # What start-up allocated (modules, the model, cached replies) lives as long as the server: keep it
        # out of every later garbage collection, which then only scans per-request objects.
        gc.collect()
        gc.freeze()
        print(f"READY server http={self.http_address} tcp={ctx.tcp_address} node={ctx.node_id}", flush=True)
        logger.info("server started: fl_name=%s instance=%s iteration=%s", self.cfg.fl_name, ctx.inst,
                    ctx.iteration)
        if self.callback is not None:
            self.callback.after_started()

    async def _serve(self, node):
        """Serves until a stop is requested, then drains while still a cluster member: devices are turned
        away (safe mode), in-flight requests finish, and an aggregation this server holds updates for is
        completed (the loops keep running, so the aggregation event and the iteration switch arrive)."""
        server_metrics.bind(node.ctx)
        for loop_coro in (node.sync_loop(), node.event_loop(), self._rate_loop(),
                          server_metrics.ENGINE.refresh_loop(node.ctx)):
            node.spawn(loop_coro)
        await self._stop.wait()
        node.ctx.leaving = True
        deadline = time.monotonic() + DRAIN_DEADLINE_S  # in-flight requests and a due aggregation share it
        while node.ctx.inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        try:
            await node.drain(max(AGGREGATION_DRAIN_MIN_S, deadline - time.monotonic()))
        except Exception:  # noqa: BLE001 - the stop goes on whatever happened to the aggregation
            logger.exception("draining the aggregation failed")

    async def _shutdown(self, node, http, state):
        if node is not None:
            node.ctx.leaving = True
            # nothing may re-register this server after this point; summaries in progress may finish
            await node.stop_tasks(HOOK_DRAIN_S if node.ctx.cache_ok else 0.0)
        if node is not None and node.ctx.inst is not None:
            try:
                await asyncio.wait_for(node.ctx.state.deregister(node.ctx.inst, node.ctx.node_id), 2.0)
                await asyncio.wait_for(node.ctx.state.leave_scale_in(node.ctx.node_id), 2.0)
            except (RedisError, OSError, asyncio.TimeoutError) as exc:
                logger.warning("deregistration failed: %s", exc)
        if self.callback is not None and node is not None:
            try:
                self.callback.before_stopped()
            except Exception:  # noqa: BLE001 - user code must not prevent the stop
                logger.exception("before_stopped callback failed")
        if http is not None:
            await http.stop()
        if node is not None:
            await node.close()
        self._flush_rates()
        if self._peers is not None:
            await self._peers.close()
        await state.aclose()

    # ---- hooks called by the engine ----------------------------------------------------------------
    async def iteration_finished(self, ctx, iteration, stats, success, reason):
        server_metrics.ENGINE.iteration_finished(stats, success)
        inst = ctx.inst
        try:
            await ctx.state.put_summary(inst, iteration, ctx.node_id, stats.to_dict())
            # Every server counts every iteration's result, so the counters agree across the cluster; each one
            # resets at the limit, and only the server that writes this iteration's summary writes the event.
            self._failures = 0 if success else self._failures + 1
            limit = self.cfg.summary.continuous_failure_times
            failure_event = self._failures >= limit
            if failure_event:
                self._failures = 0
            if ctx.leaving and set(await ctx.state.live_servers(inst)) - {ctx.node_id}:
                return  # a staying server writes the metrics line (this one may be gone before it is done)
            if not await ctx.state.take_summary_lock(inst, iteration, ctx.node_id):
                return
            summaries = await self._collect_summaries(ctx, inst, iteration)
            total = IterationStats.total(summaries.values())
            line = metrics_line(total, fl_name=self.cfg.fl_name, instance=inst,
                                status_name=METRICS_STATE_NAMES.get(ctx.running_state, "running"),
                                fl_iteration_num=ctx.fl_iteration_num, iteration=iteration, success=success,
                                end_ms=time.time() * 1000, hybrid=self.cfg.server_mode == "HYBRID_TRAINING")
            append_json_line(self.cfg.summary.metrics_file, line)
            if failure_event:
                append_failure_event(self.cfg.summary.failure_event_file, ctx.tcp_address, limit)
            await self._checkpoint_and_callback(ctx, inst, iteration, success, reason)
            await ctx.state.release_summary_lock(inst, iteration)
        except RedisError as exc:
            logger.warning("summary of iteration %s failed: %s", iteration, exc)

    async def _collect_summaries(self, ctx, inst, iteration):
        deadline = time.monotonic() + SUMMARY_WAIT_S
        live = set(await ctx.state.live_servers(inst))
        while True:
            summaries = await ctx.state.summaries(inst, iteration)
            if live <= set(summaries) or time.monotonic() > deadline:
                return summaries
            await asyncio.sleep(0.05)

    async def _checkpoint_and_callback(self, ctx, inst, iteration, success, reason):
        model = ctx.store.get(iteration)
        loop = asyncio.get_running_loop()
        path = ""
        if model is not None and self.checkpoint_dir and os.path.isdir(self.checkpoint_dir):
            from mindspore_federated.checkpoint import RecoveryCheckpoints

            saver = RecoveryCheckpoints(self.checkpoint_dir, self.cfg.fl_name)
            path = await loop.run_in_executor(None, saver.save, iteration, model.shaped(ctx.spec))
        if self.callback is not None:
            from mindspore_federated.startup.callback import CallbackContext
            from mindspore_federated.startup.feature_map import FeatureMap

            fm = FeatureMap()
            if model is not None:
                for name, arr in model.shaped(ctx.spec).items():
                    fm.add_feature(name, arr, ctx.spec.require_aggr[name])
            ctx = CallbackContext(fm, path, self.cfg.fl_name, inst, iteration, success, reason)
            await loop.run_in_executor(None, self._safe_callback, ctx)

    def _safe_callback(self, ctx):
        try:
            self.callback.on_iteration_end(ctx)
        except Exception:  # noqa: BLE001
            logger.exception("on_iteration_end callback failed")

    # ---- data-rate files (spec §8.5) ----------------------------------------------------------------
    def record_traffic(self, received, sent):
        if not self.cfg.summary.data_rate_dir:
            return
        second = int(time.time())
        bucket = self._rate.setdefault(second, [0, 0])
        bucket[0] += received
        bucket[1] += sent

    async def _rate_loop(self):
        while True:
            await asyncio.sleep(60)
            self._flush_rates()

    def _flush_rates(self):
        directory = self.cfg.summary.data_rate_dir
        if not directory or not self._rate or self.node is None:
            return
        rates, self._rate = self._rate, {}
        name = f"{time.strftime('%Y-%m-%d')}_flow_server{self.node.ctx.tcp_address}.json"
        path = name if directory == "." else os.path.join(directory, name)
        for second in sorted(rates):
            received, sent = rates[second]
            append_json_line(path, {"receive": received, "send": sent,
                                    "time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))})
