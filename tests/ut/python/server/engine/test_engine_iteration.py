"""The iteration lifecycle on a real cluster state: accept updates, aggregate through the pipeline, finish
(CAS), switch and report. Runs on each backend of the cluster state."""
import asyncio
import json

import numpy as np
import pytest

from mindspore_federated import errors
from mindspore_federated.clock import now_ms
from mindspore_federated.server.aggregation.pipeline import Stage
from mindspore_federated.server.node import ServerNode
from mindspore_federated.state.base import Outcome
from tests.utils.engine import (
    RecordingHooks,
    engine_config,
    memory_state,
    peers_for,
    redis_state,
    small_model,
    small_spec,
)


@pytest.fixture(params=["memory", "redis"])
def state_factory(request, redis_server, fl_name):
    """Builds the cluster state of a test on each backend (Redis: a real redis-server)."""
    if request.param == "memory":
        return lambda: memory_state(fl_name)
    return lambda: redis_state(redis_server.address, fl_name)


def run(state_factory, fl_name, scenario, **round_cfg):
    async def main():
        spec = small_spec()
        round_cfg.setdefault("start_fl_job_threshold", 2)
        cfg = engine_config(fl_name, round=round_cfg)
        async with state_factory() as state, peers_for(spec) as peers:
            hooks = RecordingHooks()
            node = ServerNode(cfg, state, spec, small_model(0.0), "127.0.0.1:1", peers, hooks)
            try:
                await node.join(cfg.hyper_params())
                await node.register({"role": "SERVER"})
                await scenario(node, state, hooks)
            finally:
                await node.close()

    asyncio.run(asyncio.wait_for(main(), 30))


async def accept_update(node, state, fl_id, value, data_size):
    """A device's startFLJob and updateModel through the state verbs, then the lifecycle's accumulate."""
    ctx = node.ctx
    meta = json.dumps({"data_size": data_size, "now_time": now_ms(), "eval_data_size": 0})
    started = await state.start_fl_job(ctx.inst, ctx.iteration, ctx.threshold_start, fl_id, meta, now_ms())
    assert started.outcome is Outcome.ACCEPTED
    result = await state.update_model(ctx.inst, ctx.iteration, ctx.threshold_update, fl_id, ctx.node_id,
                                      ctx.iteration, 0, now_ms())
    assert result.outcome is Outcome.ACCEPTED
    arrays = {n: np.full(w.size, value * data_size, np.float32) for n, w in small_model().weights.items()}
    await node.lifecycle.accumulate(ctx.iteration, arrays, result.meta, 0.5, 0.0)
    await node.lifecycle.count_for_aggregation(ctx.iteration)


async def until(predicate, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def test_join_starts_at_iteration_one_with_the_initial_model(state_factory, fl_name):
    async def scenario(node, state, hooks):
        assert node.iteration == 1 and node.inst
        assert node.ctx.has_current_model()
        assert (await state.status(node.inst))["iterationNum"] == "1"

    run(state_factory, fl_name, scenario)


def test_finish_is_won_once_and_the_sync_switches_and_reports(state_factory, fl_name):
    async def scenario(node, state, hooks):
        assert await node.lifecycle.finish(1, False, "why not") is True
        assert await node.lifecycle.finish(1, True, "again") is False
        await node.sync.once()
        assert node.iteration == 2
        await until(lambda: hooks.finished)
        assert hooks.finished == [(1, False, "why not")]
        assert node.ctx.store.get(1) is not None   # a failed iteration keeps the previous model

    run(state_factory, fl_name, scenario)


def test_updates_are_aggregated_by_the_pipeline_and_the_iteration_ends(state_factory, fl_name):
    async def scenario(node, state, hooks):
        await accept_update(node, state, "d1", 1.0, 10)
        await accept_update(node, state, "d2", 4.0, 30)   # the threshold: the aggregation starts
        await until(lambda: (1 in node.ctx.aggregating and node.ctx.aggregating[1].done()))
        await node.sync.once()
        assert node.iteration == 2
        await until(lambda: hooks.finished)
        assert hooks.finished == [(1, True, errors.ITER_AGGREGATED)]
        expected = (1.0 * 10 + 4.0 * 30) / 40
        np.testing.assert_allclose(node.ctx.store.get(1).weights["w1"], np.full(6, expected, np.float32))

    run(state_factory, fl_name, scenario)


def test_a_stage_joined_between_all_reduce_and_average_sees_the_summed_updates(state_factory, fl_name):
    async def scenario(node, state, hooks):
        seen = []

        async def unmask(run):
            seen.append((run.group, float(node.ctx.acc.sums["b1"][0])))
            node.ctx.acc.flat *= 2.0   # what an unmask stage would change, the average then uses
            return True

        node.lifecycle.pipeline.insert_after("all-reduce", Stage("unmask", unmask))
        await accept_update(node, state, "d1", 1.0, 5)
        await until(lambda: 1 in node.ctx.aggregating and node.ctx.aggregating[1].done())
        await node.sync.once()
        assert seen == [([node.ctx.node_id], 5.0)]
        np.testing.assert_allclose(node.ctx.store.get(1).weights["b1"], np.full(3, 2.0, np.float32))

    run(state_factory, fl_name, scenario, start_fl_job_threshold=1)


def test_an_aggregation_that_yields_no_finite_model_fails_the_iteration(state_factory, fl_name):
    async def scenario(node, state, hooks):
        await accept_update(node, state, "d1", float("inf"), 5)
        await until(lambda: 1 in node.ctx.aggregating and node.ctx.aggregating[1].done())
        await node.sync.once()
        await until(lambda: hooks.finished)
        assert hooks.finished == [(1, False, errors.ITER_AGG_FAILED.format(reason="weights are not finite"))]

    run(state_factory, fl_name, scenario, start_fl_job_threshold=1)
