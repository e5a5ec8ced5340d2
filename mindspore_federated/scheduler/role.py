"""The scheduler role: connects the cluster state, serves the REST app, stays registered until stopped."""
import asyncio
import ipaddress
import os
import signal
import threading
import time

from aiohttp import web
from redis.exceptions import RedisError

from mindspore_federated import log
from mindspore_federated.errors import SCHED_BIND_FAILED as BIND_FAILED
from mindspore_federated.errors import SCHED_CACHE_START as CACHE_START
from mindspore_federated.errors import SCHED_OPEN_BIND as OPEN_BIND
from mindspore_federated.errors import ConfigError, StateError
from mindspore_federated.scheduler.access import manage_token
from mindspore_federated.scheduler.app import build_app
from mindspore_federated.scheduler.handlers import Context
from mindspore_federated.scheduler.validation import MAX_BODY, validate_manage_address
from mindspore_federated.scheduler.watch import ClusterWatch
from mindspore_federated.state.clients import RedisSettings, make_client, startup_failure
from mindspore_federated.state.keys import Keys
from mindspore_federated.state.redis_state import RedisClusterState
from mindspore_federated.tls import https_server_context as server_ssl_context
from mindspore_federated.tools.proc_registry import registration_json

LOG = log.get_logger("mindspore_federated.scheduler")

DEFAULT_MANAGE_ADDRESS = "127.0.0.1:11202"
REGISTRATION_REFRESH_S = 1.0
DEFAULT_GLOBAL_WINDOW_MS = 3600000


def is_loopback(ip) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return ip == "localhost"


def redis_client(cfg):
    """The scheduler's Redis client for the config's distributed_cache (one hidden retry: a request after a
    Redis restart reconnects instead of failing once)."""
    return make_client(RedisSettings.from_config(cfg), timeout=3.0, connect_timeout=2.0, retries=1)


def load_scheduler_config(path):
    """The scheduler's FlConfig from the YAML file."""
    from mindspore_federated.config import load_config
    return load_config(path, role="scheduler")


def run_scheduler(yaml_config, manage_address=DEFAULT_MANAGE_ADDRESS, ssl_config=None):
    """FlSchedulerJob.run(): validates, builds HTTPS when enable_ssl, serves until SIGTERM/SIGINT."""
    validate_manage_address(manage_address)
    config = load_scheduler_config(yaml_config) if isinstance(yaml_config, (str, os.PathLike)) else yaml_config
    ssl_context = server_ssl_context(config, ssl_config) if config.enable_ssl else None
    Scheduler(config, manage_address, ssl_context).run()


class Scheduler:
    """REST management plane over the cluster state; registers itself in the process table."""

    def __init__(self, config, manage_address=DEFAULT_MANAGE_ADDRESS, ssl_context=None, scheduler_port=None):
        self.ip, self.port = validate_manage_address(manage_address)
        # the seed-001 `--scheduler_port` (the cluster's name for finish_cloud.py --scheduler_port); without
        # one, the manage port stands for it
        self.scheduler_port = int(scheduler_port) if scheduler_port is not None else self.port
        self.address = f"{self.ip}:{self.port}"
        self.config = load_scheduler_config(config) if isinstance(config, (str, os.PathLike)) else config
        self.keys = Keys(self.config.fl_name)
        self.node_id = f"scheduler:{self.address}"
        self.ssl_context = ssl_context
        self.max_body = MAX_BODY
        self.startup_timeout = 10.0
        self.redis = None     # the Redis client, when the state is in Redis
        self.state = None
        self.context = None
        self._runner = None
        self._refresh = None
        self.token = manage_token(self.config)   # '' : the management plane is open (bound to loopback)
        self.watch = None                         # the cluster watch of the dashboard and the metrics
        self.yaml_path = os.fspath(config) if isinstance(config, (str, os.PathLike)) else None
        self._autoscaler = self._autoscale_task = None
        self.autoscale_ready()

    # ---- app ------------------------------------------------------------------------------------
    def build_app(self) -> web.Application:
        """The aiohttp app: every route for GET and POST (the method is not checked)."""
        return build_app(self)

    def attach_redis(self, client):
        """Serves from the cluster state in Redis through `client` (a redis.asyncio.Redis)."""
        self.redis = client
        self.attach_state(RedisClusterState(client, self.keys.fl_name, self._global_window_ms()))

    def attach_state(self, state):
        """Serves from `state` (any ClusterState backend)."""
        self.state = state
        self.context = Context(state, self.node_id)
        self.watch = ClusterWatch(state)

    def _global_window_ms(self):
        try:
            value = self.config["round.global_iteration_time_window"]
        except (KeyError, LookupError, AttributeError):
            value = None
        return value if isinstance(value, int) and value > 0 else DEFAULT_GLOBAL_WINDOW_MS

    # ---- lifecycle --------------------------------------------------------------------------------
    async def start(self):
        """Connects Redis (bounded) unless a state is attached, listens, registers in `processes`, prints
        `READY scheduler <addr>`."""
        client = None
        if self.state is None:
            client = redis_client(self.config)
        try:
            if client is not None:
                await self._wait_for_redis(client)
                self.attach_redis(client)
            await self._listen()
        except BaseException:
            if client is not None:
                await client.aclose()
            raise
        await self._register()
        self._refresh = asyncio.create_task(self._refresh_registration())
        self.watch.start()
        if not self.token and not is_loopback(self.ip):
            LOG.warning(OPEN_BIND.format(address=self.address))
        self._start_autoscaler()
        LOG.info("scheduler of %s listening on %s", self.keys.fl_name, self.address)
        print(f"READY scheduler {self.address}", flush=True)

    async def _wait_for_redis(self, client):
        deadline = time.monotonic() + self.startup_timeout
        while True:
            try:
                await client.ping()
                return
            except (RedisError, OSError) as exc:
                fatal, reason = startup_failure(self.config, exc)
                if fatal or time.monotonic() >= deadline:
                    raise StateError(CACHE_START.format(address=self.config.redis_address,
                                                        reason=reason)) from None
                await asyncio.sleep(0.2)

    async def _listen(self):
        self._runner = web.AppRunner(self.build_app(), shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.ip, self.port, ssl_context=self.ssl_context)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise ConfigError(BIND_FAILED.format(address=self.address, reason=exc.strerror or exc)) from None

    def _registration(self) -> str:
        return registration_json("SCHEDULER", address=self.address, fl_name=self.keys.fl_name,
                                 scheduler_port=self.scheduler_port)

    async def _register(self):
        await self.state.register_process(self.node_id, self._registration())

    async def _refresh_registration(self):
        """Re-asserts the registration (it survives a Redis restart); errors are retried silently."""
        while True:
            await asyncio.sleep(REGISTRATION_REFRESH_S)
            try:
                await self._register()
            except (RedisError, OSError):
                pass

    def autoscale_ready(self, yaml_path=None):
        """Builds the autoscaler the config asks for (refusing a bad autoscale section or a missing launcher
        now, before serving); `yaml_path` is the file the local launcher starts servers with."""
        from mindspore_federated.autoscale.setup import build_autoscaler
        self.yaml_path = yaml_path or self.yaml_path
        section = self.config.autoscale
        if self._autoscaler is None and section.enable_autoscale and (self.yaml_path or section.launcher != "local"):
            self._autoscaler = build_autoscaler(self.config, self.yaml_path)

    def _start_autoscaler(self):
        from mindspore_federated.autoscale.setup import build_autoscaler
        from mindspore_federated.autoscale.signals import ClusterStateSignals
        if self.config.autoscale.enable_autoscale and self._autoscaler is None:
            self._autoscaler = build_autoscaler(self.config, self.yaml_path)   # local without a YAML path: refused
        if self._autoscaler is not None:
            self._autoscaler.source = ClusterStateSignals(self.state)
            interval = self.config.autoscale.check_interval
            self._autoscale_task = asyncio.create_task(self._autoscaler.run(interval))

    async def _stop_autoscaler(self):
        if self._autoscale_task is not None:
            self._autoscale_task.cancel()
            await asyncio.gather(self._autoscale_task, return_exceptions=True)
            await asyncio.to_thread(self._autoscaler.close)
            self._autoscaler = self._autoscale_task = None

    async def stop(self):
        """Stops serving, deregisters (best effort, bounded) and closes the state."""
        if self.watch is not None:
            await self.watch.stop()
        await self._stop_autoscaler()
        if self._refresh:
            self._refresh.cancel()
            await asyncio.gather(self._refresh, return_exceptions=True)
            self._refresh = None
        if self._runner:
            await self._runner.cleanup()
            self._runner = None
        if self.state is not None:
            try:
                await asyncio.wait_for(self.state.forget_process(self.node_id), 2.0)
            except (TimeoutError, RedisError, OSError):
                LOG.warning("could not deregister %s from Redis", self.node_id)
            await self.state.aclose()
            self.state = self.context = self.redis = self.watch = None

    async def serve(self, stop_event=None, install_signals=True):
        """Serves until `stop_event` is set or SIGTERM/SIGINT arrives."""
        stop_event = stop_event or asyncio.Event()
        loop = asyncio.get_running_loop()
        main_thread = threading.current_thread() is threading.main_thread()
        signals = (signal.SIGTERM, signal.SIGINT) if install_signals and main_thread else ()
        for sig in signals:
            loop.add_signal_handler(sig, stop_event.set)
        try:
            await self.start()
            await stop_event.wait()
            LOG.info("scheduler stopping")
        finally:
            await self.stop()
            for sig in signals:
                loop.remove_signal_handler(sig)

    def run(self):
        """Blocks until SIGTERM/SIGINT (uvloop when available)."""
        log.apply_config(self.config)  # the YAML's log_level, when set, wins over the environment
        try:
            import uvloop
            factory = uvloop.new_event_loop
        except ImportError:
            factory = None
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(self.serve())
