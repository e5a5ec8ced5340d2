"""One FL server's engine, assembled: the context, windows, lifecycle, aggregation, loops and drain."""
from mindspore_federated.server.aggregation.pipeline import Stage
from mindspore_federated.server.aggregation.stages import FedAvgStages
from mindspore_federated.server.engine.context import EngineContext
from mindspore_federated.server.engine.drain import Drain
from mindspore_federated.server.engine.events import EventLoop
from mindspore_federated.server.engine.gate import Gate
from mindspore_federated.server.engine.iteration import IterationLifecycle
from mindspore_federated.server.engine.join import join
from mindspore_federated.server.engine.sync import SyncLoop
from mindspore_federated.server.engine.windows import RoundWindows
from mindspore_federated.server.round_table import WINDOWS, RoundHost
from mindspore_federated.server.secagg.unmask import UnmaskStage


class ServerNode:
    """Wires the engine parts of one server and offers the process (app.py), the peers (peers.py) and the
    device API what they use. Its state lives in `ctx`; the rounds get `host` (a RoundHost)."""

    def __init__(self, cfg, state, spec, initial_model, http_address, peers, hooks, node_id=None):
        self.ctx = ctx = EngineContext(cfg, state, spec, initial_model, http_address, peers, hooks, node_id)
        self.windows = RoundWindows(ctx, WINDOWS)
        self.lifecycle = IterationLifecycle(ctx, self.windows)
        self.lifecycle.pipeline = FedAvgStages(ctx, self.lifecycle.finish).pipeline()
        self.lifecycle.pipeline.insert_after("all-reduce", Stage("unmask", UnmaskStage(ctx, self.lifecycle.finish).run))
        self.windows.on_expired = self.lifecycle.finish
        self.gate = Gate(ctx)
        self.sync = SyncLoop(ctx, self.windows, self.lifecycle)
        self.events = EventLoop(ctx, self.windows, self.lifecycle)
        self.windows.on_opened = self.events.announce_round
        self.drainer = Drain(ctx, self.lifecycle)
        self.host = RoundHost(ctx, state, self.windows, self.lifecycle, self.gate)

    # ---- what the process and tests read --------------------------------------------------------
    @property
    def node_id(self):
        return self.ctx.node_id

    @property
    def inst(self):
        return self.ctx.inst

    @property
    def iteration(self):
        return self.ctx.iteration

    @property
    def on_scale_in(self):
        return self.sync.on_scale_in

    @on_scale_in.setter
    def on_scale_in(self, callback):
        self.sync.on_scale_in = callback

    # ---- start-up and loops -----------------------------------------------------------------------
    async def join(self, local_hp):
        """Creates/adopts the instance, hyper-params and model declaration."""
        await join(self.ctx, self.lifecycle, local_hp)

    async def register(self, info):
        await self.sync.register(info)

    def spawn(self, coro, hook=False):
        return self.ctx.spawn(coro, hook)

    def sync_loop(self):
        return self.sync.run()

    def event_loop(self):
        return self.events.run()

    def cache_failed(self, exc):
        self.sync.cache_failed(exc)

    # ---- peers ------------------------------------------------------------------------------------
    def model_of(self, iteration, instance=None, stage=None):
        return self.ctx.model_of(iteration, instance, stage)

    def offer_model(self, instance, iteration, model):
        """A leaving peer hands over the final model of `iteration`; True when this server took it."""
        return self.drainer.take_model(instance, iteration, model)

    # ---- stop -------------------------------------------------------------------------------------
    async def drain(self, timeout):
        return await self.drainer.drain(timeout)

    async def stop_tasks(self, hook_timeout=0.0):
        """Ends the loops and timers; waits up to `hook_timeout` s for summary/callback tasks, then
        cancels every remaining task and waits for them to unwind."""
        self.ctx.stopping = True
        self.windows.cancel()
        await self.ctx.tasks.stop(hook_timeout)

    async def close(self):
        await self.stop_tasks()
        self.ctx.acc.close()

