"""EventLoop.on_event: what each cluster event makes this server do."""
import asyncio

from mindspore_federated.server.node import ServerNode
from tests.utils.engine import RecordingHooks, engine_config, peers_for, small_model, small_spec


def with_node(check):
    async def scenario():
        spec = small_spec()
        async with peers_for(spec) as peers:
            node = ServerNode(engine_config("events"), None, spec, small_model(), "127.0.0.1:1", peers,
                              RecordingHooks())
            node.ctx.inst, node.ctx.iteration = "i_1", 2
            try:
                await check(node)
            finally:
                await node.close()

    asyncio.run(asyncio.wait_for(scenario(), 20))


def test_a_round_event_of_a_window_not_known_here_asks_for_a_sync():
    async def check(node):
        node.events.on_event({"event": "round", "instance": "i_1", "iteration": 2,
                                         "round": "startFLJob"})
        assert node.ctx.sync_wanted.is_set()

    with_node(check)


def test_a_round_event_of_a_known_window_or_another_iteration_is_ignored():
    async def check(node):
        node.windows.starts["startFLJob"] = 1
        node.events.on_event({"event": "round", "instance": "i_1", "iteration": 2,
                                         "round": "startFLJob"})
        node.events.on_event({"event": "round", "instance": "i_1", "iteration": 1,
                                         "round": "updateModel"})
        assert not node.ctx.sync_wanted.is_set()

    with_node(check)


def test_other_and_unreadable_events_ask_for_a_sync():
    async def check(node):
        for data in ({"event": "iteration"}, {}):   # {}: an unreadable event
            node.ctx.sync_wanted.clear()
            node.events.on_event(data)
            assert node.ctx.sync_wanted.is_set()

    with_node(check)


def test_an_aggregation_event_of_another_iteration_starts_nothing():
    async def check(node):
        node.events.on_event({"event": "aggregate", "instance": "i_1", "iteration": 1})
        await asyncio.sleep(0)
        assert node.ctx.aggregating == {}

    with_node(check)
