"""The ClusterState contract: every verb, run against the in-memory backend and a real redis-server."""
import asyncio
import json

import numpy as np
import pytest

from mindspore_federated import errors
from mindspore_federated.server.model import ModelSpec
from mindspore_federated.startup.feature_map import FeatureMap
from mindspore_federated.state.base import ClusterState, NodeInfo, Outcome
from mindspore_federated.state.clients import make_client, make_pipelined
from mindspore_federated.state.keys import HEARTBEAT_TTL_S, InstanceState, Keys
from mindspore_federated.state.memory_state import MemoryClusterState
from mindspore_federated.state.memory_store import MemoryStore
from mindspore_federated.state.naming import new_instance_name
from mindspore_federated.state.redis_state import RedisClusterState

WINDOW_MS = 60000
HP = {"start_fl_job_threshold": 2, "update_model_ratio": 1.0, "fl_iteration_num": 3, "enable_ssl": False,
      "global_iteration_time_window": WINDOW_MS}


class FakeClock:
    """A clock the memory backend's expiry runs on; tests move it forward."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class MemoryBackend:
    """Several states over one MemoryStore (like servers over one Redis), on a clock the test moves."""

    def __init__(self):
        self.clock = FakeClock()
        self.store = MemoryStore(self.clock)

    async def state(self, fl_name):
        return MemoryClusterState(fl_name, WINDOW_MS, store=self.store)

    async def expire_heartbeat(self, state, inst, node_id):
        key = state.keys.server_heartbeat(inst, node_id)
        assert 0 < self.store.ttl(key) <= HEARTBEAT_TTL_S
        self.store.expire(key, 0)

    async def lose_everything(self, state):
        self.store = state.store = MemoryStore(self.clock)

    async def close(self):
        pass


class RedisBackend:
    """States over a real redis-server, the round scripts on the pipelined client when hiredis is there."""

    def __init__(self, address):
        self.address = address
        self.states = []

    async def state(self, fl_name):
        state = RedisClusterState(make_client(self.address), fl_name, WINDOW_MS,
                                  fast=make_pipelined(self.address))
        self.states.append(state)
        return state

    async def expire_heartbeat(self, state, inst, node_id):
        key = state.keys.server_heartbeat(inst, node_id)
        assert 0 < await state.r.ttl(key) <= HEARTBEAT_TTL_S
        await state.r.pexpire(key, 1)
        await asyncio.sleep(0.01)

    async def lose_everything(self, state):
        keys = [k async for k in state.r.scan_iter(match=state.keys.base + "*")]
        if keys:
            await state.r.delete(*keys)

    async def close(self):
        for state in self.states:
            await state.aclose()


@pytest.fixture(params=["memory", "redis"])
def backend(request):
    if request.param == "memory":
        return MemoryBackend()
    return RedisBackend(request.getfixturevalue("redis_server").address)


def run(backend, scenario, timeout=20.0):
    async def main():
        try:
            await asyncio.wait_for(scenario(), timeout)
        finally:
            await backend.close()
    asyncio.run(main())


def spec_of(*features):
    fm = FeatureMap()
    for name, size, aggr in features:
        fm.add_feature(name, np.zeros(size, np.float32), aggr)
    return ModelSpec.from_feature_map(fm)


async def started(backend, fl_name, threshold=2):
    """A state with its instance, hyper-parameters and (with `threshold`) startFLJob admitted devices."""
    state = await backend.state(fl_name)
    inst = await state.ensure_instance()
    await state.sync_hyper_params(inst, HP)
    return state, inst


# ---- instance and status ---------------------------------------------------------------------------
def test_backends_implement_the_whole_contract():
    abstract = ClusterState.__abstractmethods__
    assert abstract and not (MemoryClusterState.__abstractmethods__ or RedisClusterState.__abstractmethods__)


def test_instance_is_created_once_and_adopted(backend, fl_name):
    async def scenario():
        a, b = await backend.state(fl_name), await backend.state(fl_name)
        assert await a.instance() is None and await a.running_state("i_none") is None
        inst = await a.ensure_instance()
        assert inst.startswith("i_") and await b.ensure_instance() == inst == await b.instance()
        assert await b.adopt_instance("i_other") == inst
        status = await a.status(inst)
        assert status == {"iterationNum": "1", "lastIterationSuccess": "1", "lastIterationResult": "",
                          "runningState": "0"}
        assert not await a.ensure_status(inst, 5)
    run(backend, scenario)


def test_running_state_set_and_switched(backend, fl_name):
    async def scenario():
        state, inst = await started(backend, fl_name)
        assert await state.switch_running_state(inst, InstanceState.DISABLE, InstanceState.RUNNING) == 0
        assert await state.switch_running_state(inst, InstanceState.RUNNING, InstanceState.DISABLE) == 0
        assert await state.running_state(inst) == InstanceState.DISABLE
        await state.set_running_state(inst, InstanceState.FINISH)
        assert await state.running_state(inst) == InstanceState.FINISH
        assert await state.switch_running_state("i_missing", 0, 1) is None
    run(backend, scenario)


def test_status_recreated_after_loss(backend, fl_name):
    async def scenario():
        state, inst = await started(backend, fl_name)
        await backend.lose_everything(state)
        assert await state.status(inst) == {} and await state.instance() is None
        assert await state.adopt_instance(inst) == inst
        assert await state.create_status_after_loss(inst, 4, "lost")
        assert await state.status(inst) == {"iterationNum": "4", "lastIterationSuccess": "0",
                                            "lastIterationResult": "lost", "runningState": "0"}
        assert not await state.create_status_after_loss(inst, 9, "again")
    run(backend, scenario)


def test_hyper_params_declared_once_and_checked(backend, fl_name):
    async def scenario():
        state, inst = await started(backend, fl_name)
        assert await state.sync_hyper_params(inst, {**HP, "fl_iteration_num": 9}) == HP
        assert await state.hyper_params(inst) == HP and await state.hyper_params("i_none") is None
        with pytest.raises(errors.FederatedError, match=errors.START_HYPER_PARAMS):
            await state.sync_hyper_params(inst, {**HP, "enable_ssl": True})
    run(backend, scenario)


def test_new_instance(backend, fl_name):
    async def scenario():
        state = await backend.state(fl_name)
        assert await state.start_new_instance({"fl_iteration_num": 7}, new_instance_name) is None
        inst = await state.ensure_instance()
        await state.sync_hyper_params(inst, HP)
        await state.set_running_state(inst, InstanceState.FINISH)
        name = await state.start_new_instance({"fl_iteration_num": 7}, new_instance_name)
        assert name != inst and await state.instance() == name
        assert await state.hyper_params(name) == {**HP, "fl_iteration_num": 7}
        assert (await state.status(name))["iterationNum"] == "1" and await state.running_state(name) == 0
    run(backend, scenario)


def test_model_declaration(backend, fl_name):
    async def scenario():
        state = await backend.state(fl_name)
        assert await state.declared_model() is None
        spec = spec_of(("w", 4, True), ("b", 2, False))
        await state.declare_model(spec)
        await state.declare_model(spec)
        assert json.loads(await state.declared_model())["order"] == ["w", "b"]
        with pytest.raises(errors.FederatedError, match="number 1 of local features"):
            await state.declare_model(spec_of(("w", 4, True)))
    run(backend, scenario)


# ---- registry ----------------------------------------------------------------------------------------
def test_registration_lock(backend, fl_name):
    async def scenario():
        state, inst = await started(backend, fl_name)
        assert await state.acquire_reg_lock(inst, "first", 1.0)
        assert not await state.acquire_reg_lock(inst, "second", 0.1)
        await state.release_reg_lock(inst, "second")   # not the owner: no effect
        assert not await state.acquire_reg_lock(inst, "second", 0.1)
        await state.release_reg_lock(inst, "first")
        assert await state.acquire_reg_lock(inst, "second", 0.1)
    run(backend, scenario)


def test_heartbeats_live_servers_and_ranks(backend, fl_name):
    async def scenario():
        state, inst = await started(backend, fl_name)
        for node, port in (("n1", 1), ("n2", 2)):
            await state.heartbeat(inst, node, f"127.0.0.1:{port}", json.dumps({"rank": port - 1}))
        assert await state.live_servers(inst) == {"n1": "127.0.0.1:1", "n2": "127.0.0.1:2"}
        assert await state.assign_rank(inst, "n1") == 0 and await state.assign_rank(inst, "n2") == 1
        assert await state.assign_rank(inst, "n1") == 0   # a node keeps its rank
        await backend.expire_heartbeat(state, inst, "n2")
        assert await state.server_nodes(inst) == [NodeInfo("n1", "SERVER", True, "127.0.0.1:1", 0),
                                                  NodeInfo("n2", "SERVER", False, "127.0.0.1:2", 1)]
        assert await state.live_servers(inst) == {"n1": "127.0.0.1:1"}
        assert [n.node_id for n in await state.server_nodes(inst)] == ["n1"]  # the dead entry is gone
        assert await state.assign_rank(inst, "n3") == 1   # the dead node's rank is free again
        await state.heartbeat(inst, "n3", "127.0.0.1:3", "{}")
        await state.drop_server(inst, "n3")
        assert await state.live_servers(inst) == {"n1": "127.0.0.1:1"}
        assert await state.worker_nodes(inst) == []
    run(backend, scenario)


def test_process_table(backend, fl_name):
    async def scenario():
        state, inst = await started(backend, fl_name)
        await state.register_process("n1", {"pid": 1})
        await state.register_process("sched", '{"pid": 2}')
        assert {n: json.loads(v) for n, v in (await state.processes()).items()} == {"n1": {"pid": 1},
                                                                                    "sched": {"pid": 2}}
        await state.heartbeat(inst, "n1", "127.0.0.1:1", "{}")
        await state.deregister(inst, "n1")
        await state.forget_process("sched")
        assert await state.processes() == {} and await state.live_servers(inst) == {}
    run(backend, scenario)


# ---- rounds ------------------------------------------------------------------------------------------
def meta(n):
    return json.dumps({"data_size": n, "now_time": 5, "eval_data_size": 0})


def test_start_fl_job(backend, fl_name):
    async def scenario():
        state, inst = await started(backend, fl_name)
        first = await state.start_fl_job(inst, 1, 2, "d1", meta(1), 1000)
        assert (first.outcome, first.count, first.window_start_ms) == (Outcome.ACCEPTED, 1, 1000)
        assert (await state.start_fl_job(inst, 1, 2, "d1", meta(1), 1001)).outcome is Outcome.DUPLICATE
        assert (await state.start_fl_job(inst, 1, 2, "d9", meta(1), 1001, 2)).outcome is Outcome.LOCAL_ERROR
        second = await state.start_fl_job(inst, 1, 2, "d2", meta(2), 1500)
        assert (second.outcome, second.count, second.window_start_ms) == (Outcome.ACCEPTED, 2, 1000)
        full = await state.start_fl_job(inst, 1, 2, "d3", meta(3), 1600)
        assert (full.outcome, full.count) == (Outcome.THRESHOLD_REACHED, 2)
        assert (await state.start_fl_job(inst, 2, 2, "d4", meta(4), 1)).outcome is Outcome.ITERATION_CHANGED
        assert (await state.start_fl_job("i_gone", 1, 2, "d4", meta(4), 1)).outcome is Outcome.STATUS_LOST
        await state.set_running_state(inst, InstanceState.DISABLE)
        refused = await state.start_fl_job(inst, 1, 5, "d5", meta(5), 1)
        assert refused.outcome is Outcome.NOT_RUNNING and refused.outcome.stale
        snap = await state.snapshot(inst, 1)
        assert snap.instance == inst and snap.timers == {"startFLJob": 1000, "global": 1000}
    run(backend, scenario)


def test_update_model_and_aggregation_count(backend, fl_name):
    async def scenario():
        state, inst = await started(backend, fl_name)
        for dev in ("d1", "d2", "d3"):
            await state.start_fl_job(inst, 1, 5, dev, meta(7), 1000)
        assert (await state.update_model(inst, 1, 2, "dx", "n1", 1, 0, 1)).outcome is Outcome.NO_DEVICE_META
        assert (await state.update_model(inst, 1, 2, "d1", "n1", 2, 0, 1)).outcome is Outcome.WRONG_ITERATION
        assert (await state.update_model(inst, 1, 2, "d1", "n1", 1, 1, 1)).outcome is Outcome.LOCAL_ERROR
        first = await state.update_model(inst, 1, 2, "d1", "n1", 1, 0, 2000)
        assert (first.outcome, first.meta, first.total, first.aggregated) == (
            Outcome.ACCEPTED, json.loads(meta(7)), 1, None)
        assert (await state.update_model(inst, 1, 2, "d1", "n2", 1, 0, 1)).outcome is Outcome.DUPLICATE
        counted = await state.count_for_aggregation(inst, 1, "n1")
        assert (counted.outcome, counted.total) == (Outcome.ACCEPTED, 1)
        second = await state.update_model(inst, 1, 2, "d2", "n2", 1, 0, 2500, count_now=True)
        assert (second.outcome, second.total, second.aggregated) == (Outcome.ACCEPTED, 2, 2)
        late = await state.update_model(inst, 1, 2, "d3", "n2", 1, 0, 1)
        assert late.outcome is Outcome.THRESHOLD_REACHED
        assert await state.update_counts(inst, 1) == {"n1": 1, "n2": 1}
        assert (await state.count_for_aggregation(inst, 2, "n1")).outcome is Outcome.ITERATION_CHANGED
        snap = await state.snapshot(inst, 1)
        assert (snap.update_counts, snap.aggregated) == ({"n1": 1, "n2": 1}, 2)
        assert snap.timers["updateModel"] == 2000
        assert snap.status["iterationNum"] == "1"
    run(backend, scenario)


def test_finish_iteration_guards_and_events(backend, fl_name):
    async def scenario():
        state, inst = await started(backend, fl_name)
        events = await state.subscribe()
        await state.start_fl_job(inst, 1, 5, "d1", meta(1), 1)
        await state.update_model(inst, 1, 5, "d1", "n1", 1, 0, 1)
        assert not await state.finish_iteration(inst, 1, False, "late", 3, "sum", 1)
        assert not await state.finish_iteration(inst, 1, False, "late", 3, "field:startFLJob", 1)
        assert not await state.finish_iteration(inst, 2, True, "", 3)
        assert await state.finish_iteration(inst, 1, True, "done", 3, "sum", 2)
        assert not await state.finish_iteration(inst, 1, True, "done", 3)   # only one caller wins
        assert await state.status(inst) == {"iterationNum": "2", "lastIterationSuccess": "1",
                                            "lastIterationResult": "done", "runningState": "0"}
        assert await events.get(5.0) == {"event": "iteration", "instance": inst, "iteration": 2}
        assert await state.finish_iteration(inst, 2, False, "x", 3)
        assert await state.finish_iteration(inst, 3, True, "last", 3)
        assert await state.running_state(inst) == InstanceState.FINISH
        await events.aclose()
    run(backend, scenario)


def test_publish_and_subscribe(backend, fl_name):
    async def scenario():
        a, b = await backend.state(fl_name), await backend.state(fl_name)
        sub = await b.subscribe()
        assert await sub.get(0.05) is None
        await a.publish({"event": "round", "round": "startFLJob"})
        assert await sub.get(5.0) == {"event": "round", "round": "startFLJob"}
        await sub.aclose()
    run(backend, scenario)


# ---- summaries and scaling ---------------------------------------------------------------------------
def test_summaries_and_their_lock(backend, fl_name):
    async def scenario():
        state, inst = await started(backend, fl_name)
        await state.put_summary(inst, 1, "n1", {"accepted": 3})
        await state.put_summary(inst, 1, "n2", {"accepted": 1})
        assert await state.summaries(inst, 1) == {"n1": {"accepted": 3}, "n2": {"accepted": 1}}
        assert await state.take_summary_lock(inst, 1, "n1")
        assert not await state.take_summary_lock(inst, 1, "n2")
        await state.release_summary_lock(inst, 1)
        assert not await state.take_summary_lock(inst, 1, "n2")   # written: nobody writes it again
    run(backend, scenario)


def test_scaling(backend, fl_name):
    async def scenario():
        state, inst = await started(backend, fl_name)
        events = await state.subscribe()
        assert await state.scaling() == {}
        assert await state.create_scaling({"state": "SCALE_IN", "expected_servers": 1})
        assert not await state.create_scaling({"state": "SCALE_OUT", "expected_servers": 3})
        assert await state.scaling() == {"state": "SCALE_IN", "expected_servers": "1"}
        await state.mark_scale_in(["n1", "n2"])
        assert await events.get(5.0) == {"event": "scale_in", "node_ids": ["n1", "n2"]}
        assert await state.scale_in_ids() == {"n1", "n2"} and await state.scale_in_requested("n1")
        await state.leave_scale_in("n1")
        assert not await state.scale_in_requested("n1") and await state.scale_in_ids() == {"n2"}
        await state.clear_scaling()
        assert await state.scaling() == {} and await state.scale_in_ids() == set()
        await events.aclose()
    run(backend, scenario)


def test_memory_heartbeat_lives_exactly_its_ttl(fl_name):
    backend = MemoryBackend()

    async def scenario():
        state, inst = await started(backend, fl_name)
        await state.heartbeat(inst, "n1", "127.0.0.1:1", "{}")
        backend.clock.now += HEARTBEAT_TTL_S - 0.001
        assert await state.live_servers(inst) == {"n1": "127.0.0.1:1"}
        backend.clock.now += 0.001
        assert await state.live_servers(inst) == {}
        assert not backend.store.exists(Keys(fl_name).server_heartbeat(inst, "n1"))
    run(backend, scenario)


# ---- workers and claims (issue 16) -------------------------------------------------------------------
async def _expire_worker(backend, state, inst, fl_id):
    key = state.keys.worker_heartbeat(inst, fl_id)
    if isinstance(backend, MemoryBackend):
        assert 0 < backend.store.ttl(key) <= HEARTBEAT_TTL_S
        backend.store.expire(key, 0)
    else:
        assert 0 < await state.r.ttl(key) <= HEARTBEAT_TTL_S
        await state.r.pexpire(key, 1)
        await asyncio.sleep(0.01)


def test_worker_registry_drops_dead_workers(backend, fl_name):
    async def scenario():
        state, inst = await started(backend, fl_name)
        for fl_id in ("w1", "w2"):
            await state.register_process(fl_id, {"pid": 1, "role": "WORKER"})
            await state.worker_heartbeat(inst, fl_id)
        assert await state.worker_nodes(inst) == [NodeInfo("w1", "WORKER", True), NodeInfo("w2", "WORKER", True)]
        await _expire_worker(backend, state, inst, "w2")
        assert await state.worker_nodes(inst) == [NodeInfo("w1", "WORKER", True), NodeInfo("w2", "WORKER", False)]
        await state.worker_heartbeat(inst, "w1")   # a beat sweeps the dead entry out
        assert await state.worker_nodes(inst) == [NodeInfo("w1", "WORKER", True)]
        await state.drop_worker(inst, "w1")
        assert await state.worker_nodes(inst) == [] and "w1" not in await state.processes()
    run(backend, scenario)


def test_claim_is_won_once_per_iteration(backend, fl_name):
    async def scenario():
        state, inst = await started(backend, fl_name)
        assert await state.claim(inst, 1, "pushWeight", "a") == "a"
        assert await state.claim(inst, 1, "pushWeight", "b") == "a"
        assert await state.claim(inst, 2, "pushWeight", "b") == "b"
    run(backend, scenario)
