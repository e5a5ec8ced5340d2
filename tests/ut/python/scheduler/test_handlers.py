"""Scheduler handlers and REST app on the in-memory cluster state (no Redis): operations, texts, events."""
import asyncio
import json

import pytest
from aiohttp import test_utils

from mindspore_federated import errors
from mindspore_federated.config import load_config_dict
from mindspore_federated.scheduler import handlers
from mindspore_federated.scheduler.role import Scheduler
from mindspore_federated.scheduler.validation import ApiError
from mindspore_federated.state.keys import InstanceState
from mindspore_federated.state.memory_state import MemoryClusterState
from mindspore_federated.tools.fake_cluster import DEFAULT_HYPER_PARAMS
from tests.utils.redis_server import free_port

SCHEDULER_ID = "scheduler:127.0.0.1:11202"


def make_config(fl_name):
    return load_config_dict({
        "fl_name": fl_name, "fl_iteration_num": 5, "server_mode": "FEDERATED_LEARNING", "enable_ssl": False,
        "distributed_cache": {"type": "redis", "address": "127.0.0.1:1"},
        "round": {"start_fl_job_threshold": 1, "start_fl_job_time_window": 3000, "update_model_ratio": 1.0,
                  "update_model_time_window": 3000, "global_iteration_time_window": 6000},
        "summary": {"metrics_file": "metrics.json", "failure_event_file": "event.txt"}}, role="scheduler")


async def cluster(fl_name, servers=2):
    """A memory state with an instance and `servers` live servers (as servers register themselves)."""
    state = MemoryClusterState(fl_name, 6000)
    inst = await state.ensure_instance()
    await state.sync_hyper_params(inst, DEFAULT_HYPER_PARAMS)
    for rank in range(servers):
        await state.heartbeat(inst, f"n{rank}", f"127.0.0.1:{4000 + rank}", json.dumps({"rank": rank}))
    return state, handlers.Context(state, SCHEDULER_ID), inst


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20.0))


def test_state_nodes_and_query(fl_name):
    async def scenario():
        state, ctx, inst = await cluster(fl_name)
        body = await handlers.cluster_state(ctx)
        assert body["message"] == errors.SCHED_STATE_OK and body["cluster_state"] == "CLUSTER_READY"
        assert body["nodes"] == [{"node_id": "n0", "tcp_address": "127.0.0.1:4000", "role": "SERVER"},
                                 {"node_id": "n1", "tcp_address": "127.0.0.1:4001", "role": "SERVER"}]
        nodes = (await handlers.nodes(ctx))["nodeIds"]
        assert [(n["nodeId"], n["rankId"], n["role"]) for n in nodes] == [
            ("n0", "0", "SERVER"), ("n1", "1", "SERVER"), (SCHEDULER_ID, "0", "SCHEDULER")]
        assert (await handlers.query_instance(ctx))["result"] == DEFAULT_HYPER_PARAMS
    run(scenario())


def test_no_cluster(fl_name):
    async def scenario():
        ctx = handlers.Context(MemoryClusterState(fl_name, 6000), SCHEDULER_ID)
        for operation in (handlers.cluster_state, handlers.query_instance):
            with pytest.raises(ApiError, match=errors.SCHED_NO_CLUSTER.format(fl_name=fl_name)):
                await operation(ctx)
        with pytest.raises(ApiError) as exc:
            await handlers.new_instance(ctx, {})
        assert exc.value.text == errors.SCHED_NEW_INSTANCE_FAILED.format(
            reason=errors.SCHED_NO_CLUSTER.format(fl_name=fl_name))
        assert [n["role"] for n in (await handlers.nodes(ctx))["nodeIds"]] == ["SCHEDULER"]
    run(scenario())


def test_disable_enable_publish_and_refuse_twice(fl_name):
    async def scenario():
        state, ctx, inst = await cluster(fl_name)
        events = await state.subscribe()
        assert (await handlers.set_enabled(ctx, False))["message"] == errors.SCHED_DISABLE_OK
        assert await events.get(1.0) == {"event": "state", "state": InstanceState.DISABLE, "instance": inst}
        with pytest.raises(ApiError, match=errors.SCHED_ALREADY_DISABLED):
            await handlers.set_enabled(ctx, False)
        assert (await handlers.cluster_state(ctx))["cluster_state"] == "CLUSTER_DISABLE"
        assert (await handlers.set_enabled(ctx, True))["message"] == errors.SCHED_ENABLE_OK
        await state.set_running_state(inst, InstanceState.FINISH)
        with pytest.raises(ApiError, match=errors.SCHED_ENABLE_FINISHED):
            await handlers.set_enabled(ctx, True)
    run(scenario())


def test_new_instance(fl_name):
    async def scenario():
        state, ctx, inst = await cluster(fl_name)
        events = await state.subscribe()
        body = await handlers.new_instance(ctx, {"fl_iteration_num": 2})
        assert body["message"] == errors.SCHED_NEW_INSTANCE_OK
        name = await state.instance()
        assert name != inst and await events.get(1.0) == {"event": "new_instance", "instance": name}
        assert (await handlers.query_instance(ctx))["result"]["fl_iteration_num"] == 2
        with pytest.raises(ApiError) as exc:
            await handlers.new_instance(ctx, {"update_model_ratio": 2})
        assert exc.value.text == errors.SCHED_NEW_INSTANCE_FAILED.format(reason=errors.SCHED_FIELD_RATIO)
    run(scenario())


def test_scale_in_until_the_node_left(fl_name):
    async def scenario():
        state, ctx, inst = await cluster(fl_name, servers=3)
        with pytest.raises(ApiError, match=errors.SCHED_NODE_ILLEGAL.format(node_id="nx")):
            await handlers.scale_in(ctx, {"node_ids": ["nx"]})
        with pytest.raises(ApiError, match=errors.SCHED_SCALE_IN_ALL):
            await handlers.scale_in(ctx, {"node_ids": ["n0", "n1", "n2"]})
        assert (await handlers.scale_in(ctx, {"node_ids": ["n2"]}))["message"] == errors.SCHED_SCALE_IN_OK
        assert await state.scale_in_requested("n2")
        with pytest.raises(ApiError, match=errors.SCHED_NOT_READY):
            await handlers.scale_out(ctx, {"server_num": 1, "worker_num": 0})
        assert (await handlers.cluster_state(ctx))["cluster_state"] == "CLUSTER_SCALE_IN"
        await state.leave_scale_in("n2")
        await state.deregister(inst, "n2")
        assert (await handlers.cluster_state(ctx))["cluster_state"] == "CLUSTER_READY"
        assert await state.scaling() == {}
    run(scenario())


def test_scale_out_until_the_servers_joined(fl_name):
    async def scenario():
        state, ctx, inst = await cluster(fl_name, servers=1)
        body = await handlers.scale_out(ctx, {"server_num": 1, "worker_num": 0})
        assert body["message"] == errors.SCHED_SCALE_OUT_OK
        assert (await handlers.cluster_state(ctx))["cluster_state"] == "CLUSTER_SCALE_OUT"
        await state.heartbeat(inst, "n9", "127.0.0.1:4009", "{}")
        assert (await handlers.cluster_state(ctx))["cluster_state"] == "CLUSTER_READY"
    run(scenario())


def test_rest_app_and_lifecycle_on_memory_state(fl_name):
    """The whole role on the memory state: start (no Redis), REST envelope and texts, registration, stop."""
    async def scenario():
        state, _, _ = await cluster(fl_name)
        scheduler = Scheduler(make_config(fl_name), f"127.0.0.1:{free_port()}")
        scheduler.attach_state(state)
        await scheduler.start()
        try:
            assert json.loads((await state.processes())[scheduler.node_id])["role"] == "SCHEDULER"
            async with test_utils.TestClient(test_utils.TestServer(scheduler.build_app())) as http:
                resp = await http.get("/state")
                assert resp.status == 200 and (await resp.json())["code"] == "0"
                resp = await http.post("/scaleout", data=b"[1]")
                assert resp.status == 400 and (await resp.json())["error_message"] == \
                    errors.SCHED_BAD_JSON.format(detail=errors.SCHED_NOT_OBJECT)
                resp = await http.post("/scalein", data=b"")
                assert (await resp.json())["error_message"] == errors.SCHED_POST_SIZE
        finally:
            await scheduler.stop()
        assert await state.processes() == {}
    run(scenario())
