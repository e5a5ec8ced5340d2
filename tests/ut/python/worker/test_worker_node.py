"""The worker's presence (WorkerNode) over the in-memory cluster state: id, registration, instance changes."""
import asyncio
import re
import time

import pytest

from mindspore_federated.state.memory_state import MemoryClusterState
from mindspore_federated.state.memory_store import MemoryStore
from mindspore_federated.worker.node import WorkerNode


class Cfg:
    fl_name = "Lenet"

    def get(self, key, default=None):
        return default


def node_over(store, **kwargs):
    async def factory():
        return MemoryClusterState("Lenet", 60000, store=store)
    return WorkerNode(Cfg(), state_factory=factory, **kwargs)


def test_fl_id_format():
    fl_id = node_over(MemoryStore()).fl_id
    assert re.fullmatch(r"worker_fl_\d{4}-\d\d-\d\d-\d\d:\d\d:\d\d\.\d{3}\.\d{3}::[1-9]\d{4}", fl_id), fl_id


def test_registration_needs_an_instance():
    node = node_over(MemoryStore(), register_wait_s=0.5)
    with pytest.raises(RuntimeError, match=r"failed to register in the cluster: no instance of Lenet yet"):
        node.start()


def test_registers_beats_follows_a_new_instance_and_leaves():
    store = MemoryStore()
    state = MemoryClusterState("Lenet", 60000, store=store)
    inst = asyncio.run(state.ensure_instance())
    node = node_over(store).start()
    try:
        nodes = asyncio.run(state.worker_nodes(inst))
        assert [(n.node_id, n.role, n.alive) for n in nodes] == [(node.fl_id, "WORKER", True)]
        assert node.fl_id in asyncio.run(state.processes())
        store.put(state.keys.instance_name, "i_new")
        deadline = time.monotonic() + 10
        while node.instance_changes == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (node.instance_changes, node.inst) == (1, "i_new")
        assert asyncio.run(state.worker_nodes(inst)) == []
        assert [n.node_id for n in asyncio.run(state.worker_nodes("i_new"))] == [node.fl_id]
    finally:
        node.stop()
    assert asyncio.run(state.worker_nodes("i_new")) == [] and node.fl_id not in asyncio.run(state.processes())
