"""The scheduler's operations over the cluster state (each returns a success body or raises ApiError)."""
import json
import time

from mindspore_federated import log
from mindspore_federated.errors import (
    SCHED_ALREADY_DISABLED,
    SCHED_ALREADY_ENABLED,
    SCHED_DISABLE_FINISHED,
    SCHED_DISABLE_OK,
    SCHED_ENABLE_FINISHED,
    SCHED_ENABLE_OK,
    SCHED_NEW_INSTANCE_FAILED,
    SCHED_NEW_INSTANCE_OK,
    SCHED_NO_CLUSTER,
    SCHED_QUERY_OK,
    SCHED_STATE_INNER,
    SCHED_STATE_OK,
)
from mindspore_federated.errors import SCHED_NODE_ILLEGAL as NODE_ILLEGAL
from mindspore_federated.errors import SCHED_NODE_WORKER as NODE_WORKER
from mindspore_federated.errors import SCHED_NODES_OK as NODES_OK
from mindspore_federated.errors import SCHED_NOT_READY as NOT_READY
from mindspore_federated.errors import SCHED_SCALE_IN_ALL as SCALE_IN_ALL
from mindspore_federated.errors import SCHED_SCALE_IN_OK as SCALE_IN_OK
from mindspore_federated.errors import SCHED_SCALE_OUT_OK as SCALE_OUT_OK
from mindspore_federated.scheduler.validation import (
    ApiError,
    parse_node_ids,
    parse_scale_num,
    validate_hyper_params,
)
from mindspore_federated.state.keys import CLUSTER_STATE_NAMES, InstanceState
from mindspore_federated.state.naming import new_instance_name

LOG = log.get_logger("mindspore_federated.scheduler")


class Context:
    """What the operations work on: the cluster state of one fl_name and the scheduler's node id."""

    def __init__(self, state, node_id):
        self.state = state
        self.node_id = node_id


def _now_ms() -> int:
    return int(time.time() * 1000)


def _int_or(value, default) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _json_list(raw) -> list:
    try:
        value = json.loads(raw) if raw else []
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def state_nodes(servers, workers) -> list:
    """The `nodes` list of /state and /queryInstance: live servers and workers."""
    nodes = [{"node_id": s.node_id, "tcp_address": s.tcp, "role": "SERVER"} for s in servers if s.alive]
    return nodes + [{"node_id": w.node_id, "tcp_address": "", "role": "WORKER"} for w in workers if w.alive]


async def instance(ctx, required=True):
    """The current instance name; `Cannot find cluster info` (or None) when no server ever started."""
    name = await ctx.state.instance()
    if not name and required:
        raise ApiError(SCHED_NO_CLUSTER.format(fl_name=ctx.state.fl_name))
    return name


async def scaling_state(ctx, live_ids: set):
    """CLUSTER_SCALE_OUT/IN while a scale request is pending; clears it (returns None) once done."""
    state = ctx.state
    pending = await state.scaling()
    if not pending:
        return None
    if pending.get("state") == "SCALE_OUT":
        done = len(live_ids) >= _int_or(pending.get("expected_servers"), 0)
    else:
        leaving = set(_json_list(pending.get("node_ids"))) | await state.scale_in_ids()
        done = not leaving & live_ids
    if done:
        await state.clear_scaling()
        return None
    return "CLUSTER_SCALE_OUT" if pending.get("state") == "SCALE_OUT" else "CLUSTER_SCALE_IN"


async def cluster_state(ctx) -> dict:
    inst = await instance(ctx)
    state = await ctx.state.running_state(inst)
    if state not in CLUSTER_STATE_NAMES and state != InstanceState.STOP:
        raise ApiError(SCHED_STATE_INNER)
    servers, workers = await ctx.state.server_nodes(inst), await ctx.state.worker_nodes(inst)
    body = {"message": SCHED_STATE_OK}
    name = await scaling_state(ctx, {s.node_id for s in servers if s.alive})
    name = name or CLUSTER_STATE_NAMES.get(state)
    if name:
        body["cluster_state"] = name
    nodes = state_nodes(servers, workers)
    if nodes:
        body["nodes"] = nodes
    return body


async def set_enabled(ctx, enable: bool) -> dict:
    inst = await instance(ctx)
    src, dst = (InstanceState.DISABLE, InstanceState.RUNNING) if enable else \
        (InstanceState.RUNNING, InstanceState.DISABLE)
    prev = await ctx.state.switch_running_state(inst, src, dst)
    if prev == src:
        await ctx.state.publish({"event": "state", "state": dst, "instance": inst})
        return {"message": SCHED_ENABLE_OK if enable else SCHED_DISABLE_OK}
    if prev == dst:
        raise ApiError(SCHED_ALREADY_ENABLED if enable else SCHED_ALREADY_DISABLED)
    if prev in (InstanceState.FINISH, InstanceState.STOP):
        raise ApiError(SCHED_ENABLE_FINISHED if enable else SCHED_DISABLE_FINISHED)
    raise ApiError(SCHED_STATE_INNER)


async def new_instance(ctx, body: dict) -> dict:
    try:
        await instance(ctx)
        updates = validate_hyper_params(body)
        name = await ctx.state.start_new_instance(updates, new_instance_name)
        if name is None:
            raise ApiError(SCHED_NO_CLUSTER.format(fl_name=ctx.state.fl_name))
    except ApiError as exc:
        raise ApiError(SCHED_NEW_INSTANCE_FAILED.format(reason=exc.text)) from None
    LOG.info("new instance %s with %s", name, updates)
    await ctx.state.publish({"event": "new_instance", "instance": name})
    return {"message": SCHED_NEW_INSTANCE_OK}


async def query_instance(ctx) -> dict:
    inst = await instance(ctx)
    params = await ctx.state.hyper_params(inst)
    if params is None:
        raise ApiError(SCHED_NO_CLUSTER.format(fl_name=ctx.state.fl_name))
    body = {"message": SCHED_QUERY_OK, "result": params}
    nodes = state_nodes(await ctx.state.server_nodes(inst), await ctx.state.worker_nodes(inst))
    if nodes:
        body["nodes"] = nodes
    return body


async def nodes(ctx) -> dict:
    inst = await instance(ctx, required=False)
    servers = await ctx.state.server_nodes(inst) if inst else []
    workers = await ctx.state.worker_nodes(inst) if inst else []
    entries = [{"alive": "true" if n.alive else "false", "nodeId": n.node_id, "rankId": str(n.rank),
                "role": n.role} for n in servers]
    entries += [{"alive": "true" if w.alive else "false", "nodeId": w.node_id, "rankId": str(i),
                 "role": "WORKER"} for i, w in enumerate(workers)]
    entries.append({"alive": "true", "nodeId": ctx.node_id, "rankId": "0", "role": "SCHEDULER"})
    return {"message": NODES_OK, "nodeIds": entries}


async def _live_for_scaling(ctx):
    inst = await instance(ctx)
    if await ctx.state.scaling():
        raise ApiError(NOT_READY)
    return await ctx.state.server_nodes(inst), await ctx.state.worker_nodes(inst)


async def scale_out(ctx, body: dict) -> dict:
    parse_scale_num(body, "worker_num")
    count = parse_scale_num(body, "server_num")
    servers, _ = await _live_for_scaling(ctx)
    live = sum(1 for s in servers if s.alive)
    fields = {"state": "SCALE_OUT", "expected_servers": live + count, "requested_ms": _now_ms()}
    if not await ctx.state.create_scaling(fields):
        raise ApiError(NOT_READY)
    LOG.info("scale out by %d servers (expecting %d)", count, live + count)
    return {"message": SCALE_OUT_OK}


async def scale_in(ctx, body: dict) -> dict:
    servers, workers = await _live_for_scaling(ctx)
    node_ids = parse_node_ids(body)
    live = {s.node_id for s in servers if s.alive}
    live_workers = {w.node_id for w in workers if w.alive}
    for node_id in node_ids:
        if node_id in live_workers:
            raise ApiError(NODE_WORKER.format(node_id=node_id))
        if node_id not in live:
            raise ApiError(NODE_ILLEGAL.format(node_id=node_id))
    if live <= set(node_ids):
        raise ApiError(SCALE_IN_ALL)
    fields = {"state": "SCALE_IN", "expected_servers": len(live) - len(node_ids),
              "requested_ms": _now_ms(), "node_ids": json.dumps(node_ids)}
    if not await ctx.state.create_scaling(fields):
        raise ApiError(NOT_READY)
    await ctx.state.mark_scale_in(node_ids)
    LOG.info("scale in %s", node_ids)
    return {"message": SCALE_IN_OK}
