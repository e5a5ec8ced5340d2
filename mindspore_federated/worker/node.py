"""A worker's presence in the cluster: its fl_id, registration and 1 s heartbeats, the instance it follows.

The presence runs on its own thread with its own event loop, so a training job (MindSpore, synchronous)
never waits for Redis, and a worker whose training stalls still shows as alive."""
import asyncio
import random
import threading

from redis.exceptions import RedisError

from mindspore_federated import errors
from mindspore_federated.clock import monotonic, time_string
from mindspore_federated.log import get_logger
from mindspore_federated.state.clients import make_client
from mindspore_federated.state.redis_state import RedisClusterState
from mindspore_federated.tools.proc_registry import registration_json

logger = get_logger(__name__)
BEAT_S = 1.0
REGISTER_WAIT_S = 900.0   # the reference retries registration each second for up to 15 min
DEFAULT_GLOBAL_WINDOW_MS = 3600000


def new_fl_id():
    """`worker_fl_<YYYY-MM-DD-HH:MM:SS.mmm.uuu>::<10000-99999>`, as the reference names its workers."""
    return f"worker_fl_{time_string()}::{random.randint(10000, 99999)}"


class WorkerNode:
    """Registers the worker and keeps it registered (heartbeat, instance changes) until `stop()`.

    `state_factory` (async () -> ClusterState) replaces the Redis state of the config (tests)."""

    def __init__(self, cfg, *, register_wait_s=REGISTER_WAIT_S, state_factory=None):
        self.cfg = cfg
        self.fl_id = new_fl_id()
        self.register_wait_s = float(register_wait_s)
        self.state_factory = state_factory or self._redis_state
        self.inst = None
        self.instance_changes = 0          # how many times the cluster moved to a new instance
        self.state = None
        self._loop = None
        self._thread = None
        self._stopped = None
        self._ready = threading.Event()
        self._error = None
        self._lock = threading.Lock()

    async def _redis_state(self):
        window = int(self.cfg.get("round.global_iteration_time_window", DEFAULT_GLOBAL_WINDOW_MS))
        client = make_client(self.cfg, timeout=3.0, connect_timeout=2.0, retries=1)
        return RedisClusterState(client, self.cfg.fl_name, window)

    # ---- life ---------------------------------------------------------------------------------
    def start(self):
        """Registers (waiting for a cluster instance up to `register_wait_s`); raises RuntimeError on failure."""
        self._thread = threading.Thread(target=self._run, name="worker-node", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise RuntimeError(self._error)
        return self

    def _run(self):
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()
            self._ready.set()

    async def _main(self):
        self._stopped = asyncio.Event()
        try:
            self.state = await self.state_factory()
            await self._register()
        except Exception as exc:  # noqa: BLE001 - reported to start()'s caller
            self._error = str(exc)
            if self.state is not None:
                await self.state.aclose()
            return
        self._ready.set()
        try:
            await self._beat_until_stopped()
        finally:
            await self._leave()

    async def _register(self):
        deadline = monotonic() + self.register_wait_s
        while True:
            try:
                inst = await self.state.instance()
            except (RedisError, OSError) as exc:
                inst, why = None, f"Redis: {exc}"
            else:
                why = f"no instance of {self.cfg.fl_name} yet (no server started)"
            if inst:
                break
            if monotonic() >= deadline:
                raise RuntimeError(errors.WORKER_REGISTER.format(fl_id=self.fl_id, why=why))
            await asyncio.sleep(BEAT_S)
        self.inst = inst
        await self.state.register_process(self.fl_id, registration_json("WORKER", fl_name=self.cfg.fl_name))
        await self.state.worker_heartbeat(inst, self.fl_id)
        logger.info("worker %s registered in instance %s", self.fl_id, inst)

    async def _beat_until_stopped(self):
        while not self._stopped.is_set():
            try:
                await asyncio.wait_for(self._stopped.wait(), BEAT_S)
                break
            except asyncio.TimeoutError:
                pass
            try:
                await self._beat()
            except (RedisError, OSError) as exc:
                logger.warning("worker heartbeat failed: %s", exc)

    async def _beat(self):
        inst = await self.state.instance()
        if inst and inst != self.inst:
            logger.info("new instance %s (was %s): the worker restarts at iteration 1", inst, self.inst)
            old = self.inst
            with self._lock:
                self.inst = inst
                self.instance_changes += 1
            await self.state.drop_worker(old, self.fl_id)
            await self.state.register_process(self.fl_id, registration_json("WORKER", fl_name=self.cfg.fl_name))
        await self.state.worker_heartbeat(self.inst, self.fl_id)

    async def _leave(self):
        try:
            await self.state.drop_worker(self.inst, self.fl_id)
        except (RedisError, OSError) as exc:
            logger.warning("worker %s could not deregister: %s", self.fl_id, exc)
        await self.state.aclose()

    def stop(self, timeout=10.0):
        """Deregisters and ends the presence thread (idempotent)."""
        if self._loop is not None and self._thread.is_alive() and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(timeout)

    # ---- queries from the training thread ------------------------------------------------------
    def call(self, coro_fn, timeout=10.0):
        """Runs `coro_fn(state, inst)` on the presence loop and returns its result."""
        future = asyncio.run_coroutine_threadsafe(coro_fn(self.state, self.inst), self._loop)
        return future.result(timeout)

    def live_servers(self):
        """Device API addresses of the live servers, by rank (reads the cluster state)."""
        async def query(state, inst):
            return [n.http for n in await state.server_nodes(inst) if n.alive and n.http]
        return self.call(query)

    def running_state(self):
        async def query(state, inst):
            return await state.running_state(inst)
        return self.call(query)
