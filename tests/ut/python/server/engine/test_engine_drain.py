"""Drain: which handed-over models a staying server takes, and what a leaving server without updates does."""
import asyncio

import numpy as np

from mindspore_federated.server.model import Model
from mindspore_federated.server.node import ServerNode
from tests.utils.engine import RecordingHooks, engine_config, peers_for, small_model, small_spec


def with_node(check, state=None):
    async def scenario():
        spec = small_spec()
        async with peers_for(spec) as peers:
            node = ServerNode(engine_config("drain"), state, spec, small_model(0.0), "127.0.0.1:1", peers,
                              RecordingHooks())
            node.ctx.inst, node.ctx.iteration = "i_1", 5
            node.ctx.store.put(3, small_model(3.0))
            try:
                await check(node)
            finally:
                await node.close()

    asyncio.run(asyncio.wait_for(scenario(), 20))


def test_the_ending_iteration_s_model_is_taken_once():
    async def check(node):
        assert node.offer_model("i_1", 5, small_model(1.0)) is True
        assert node.offer_model("i_1", 5, small_model(2.0)) is False          # it has one already
        np.testing.assert_array_equal(node.model_of(5).weights["w1"], np.full(6, 1.0, np.float32))

    with_node(check)


def test_the_just_ended_iteration_s_model_is_taken_only_when_missing():
    async def check(node):
        assert node.offer_model("i_1", 4, small_model(4.0)) is True
        assert node.offer_model("i_1", 4, small_model(5.0)) is False
        assert node.offer_model("i_1", 3, small_model(6.0)) is False          # older: never
        np.testing.assert_array_equal(node.model_of(4).weights["b1"], np.full(3, 4.0, np.float32))

    with_node(check)


def test_models_of_another_instance_or_shape_are_refused():
    async def check(node):
        assert node.offer_model("i_other", 5, small_model(1.0)) is False
        partial = Model({"w1": np.ones(6, np.float32)})
        assert node.offer_model("i_1", 5, partial) is False
        assert node.model_of(5) is None

    with_node(check)


def test_without_the_distributed_cache_a_drain_reports_updates_possibly_lost():
    async def check(node):
        node.ctx.cache_ok = False
        assert await node.drain(1.0) is False

    with_node(check)
