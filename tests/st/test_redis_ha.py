"""Redis Sentinel and Redis Cluster as the state backend: real redis-server / redis-sentinel processes on
127.0.0.1; a cluster trains on both, and follows a Sentinel failover after SIGKILL of the primary."""
import json
import time

import numpy as np
import pytest

from mindspore_federated.state.clients import make_sync_client
from mindspore_federated.state.keys import Keys
from mindspore_federated.tools.finish_cloud import registry_keys
from tests.utils.cluster import SUCCEED, call, health, start_job, start_scheduler, update, write_yaml
from tests.utils.multi import models_everywhere, run_iteration, start_servers
from tests.utils.redis_ha import RedisClusterGroup, SentinelGroup, _ask
from tests.utils.wait import wait_for


def _train(addresses, fl_name, iterations, rng):
    """Trains `iterations` (startFLJob + updateModel of 4 devices each) and checks the exact FedAvg model."""
    for it in iterations:
        expect = run_iteration(addresses, fl_name, it, 4, rng)
        for served in models_everywhere(addresses, fl_name, it, timeout=30):
            assert served.iteration == it + 1
            for name, value in expect.items():
                np.testing.assert_allclose(served.features[name], value, rtol=1e-5, atol=1e-6)


def _running(group):
    try:
        yield group.start()
    finally:
        group.stop()


@pytest.fixture
def redis_cluster(tmp_path):
    """A 3-primary Redis Cluster, stopped after the role processes (set up before `procs`)."""
    yield from _running(RedisClusterGroup(tmp_path / "redis"))


@pytest.fixture
def sentinel_group(tmp_path):
    """A primary, a replica and three sentinels, stopped after the role processes (set up before `procs`)."""
    yield from _running(SentinelGroup(tmp_path / "redis"))


def test_a_redis_cluster_trains_with_every_key_of_the_job_in_one_slot(redis_cluster, tmp_path, procs, fl_name):
    group = redis_cluster
    yaml_path = write_yaml(tmp_path, group.address, fl_name, fl_iteration_num=10,
                           round={"start_fl_job_threshold": 4})
    addresses = [a for _, a in start_servers(procs, tmp_path, yaml_path, 2)]
    _, sched = start_scheduler(procs, yaml_path)  # the scheduler on the cluster too
    status, state = call(sched, "state")
    assert status == 200 and state["cluster_state"] == "CLUSTER_READY" and len(state["nodes"]) == 2
    rng = np.random.default_rng(7)
    _train(addresses, fl_name, (1, 2), rng)
    old_inst = health(addresses[0])["instance"]
    status, reply = call(sched, "newInstance", {"client_learning_rate": 0.03})  # WATCH / MULTI on the cluster
    assert (status, reply["message"]) == (200, "Start new instance successful.")
    for address in addresses:
        wait_for(lambda x=address: health(x)["instance"] != old_inst, 10, what="the new instance adopted")
    probe = _served(start_job, addresses[0], fl_name, "probe", 1, 1)  # safe mode while it switches over
    assert probe.retcode == SUCCEED, probe.reason
    expect = _fill(addresses, fl_name, 1, {"probe": 1}, rng)  # the new instance trains its iteration 1
    for served in models_everywhere(addresses, fl_name, 1, timeout=30):
        assert served.iteration == 2
        for name, value in expect.items():
            np.testing.assert_allclose(served.features[name], value, rtol=1e-5, atol=1e-6)
    slot = _ask(group.nodes[0].port, "CLUSTER", "KEYSLOT", Keys(fl_name).instance_name)
    keys = []
    for node in group.nodes:  # the job's keys all live on the node owning its slot
        keys += [k for k in _ask(node.port, "KEYS", Keys(fl_name).base + "*") or []]
    assert keys
    assert {_ask(group.nodes[0].port, "CLUSTER", "KEYSLOT", k) for k in keys} == {slot}
    # tools (finish_cloud) reach the cluster through the same factory and find the job's registry
    sync = make_sync_client(group.address, decode_responses=True)
    try:
        assert Keys(fl_name).processes in registry_keys(sync)
        roles = sorted(json.loads(v)["role"] for v in sync.hgetall(Keys(fl_name).processes).values())
        assert roles == ["SCHEDULER", "SERVER", "SERVER"]
    finally:
        sync.close()


def _admitted(addresses, fl_name, fl_id, size):
    """The startFLJob reply of a device once a server admits it again, else None."""
    reply = start_job(addresses[0], fl_name, fl_id, 3, size)
    return reply if getattr(reply, "retcode", None) == SUCCEED else None


def test_sentinel_failover_mid_iteration_training_continues(sentinel_group, tmp_path, procs, fl_name):
    group = sentinel_group
    yaml_path = write_yaml(tmp_path, group.address, fl_name, fl_iteration_num=20,
                           round={"start_fl_job_threshold": 4, "update_model_time_window": 5000,
                                  "start_fl_job_time_window": 5000})
    addresses = [a for _, a in start_servers(procs, tmp_path, yaml_path, 2)]
    _, sched = start_scheduler(procs, yaml_path)
    rng = np.random.default_rng(11)
    _train(addresses, fl_name, (1, 2), rng)
    before = models_everywhere(addresses, fl_name, 2)[0]
    sizes = {f"m{d}": int(rng.integers(1, 20)) for d in range(3)}
    for fl_id in ("m0", "m1"):  # iteration 3 is under way when the primary dies
        assert start_job(addresses[int(fl_id[1]) % 2], fl_name, fl_id, 3, sizes[fl_id]).retcode == SUCCEED
    wait_for(group.replica_caught_up, 10, what="the replica caught up with the primary")
    old_port = group.primary.port
    killed = time.monotonic()
    group.primary.kill()  # SIGKILL
    wait_for(lambda: group.master_port() not in (None, old_port), 30, what="Sentinel promoted the replica")
    promoted = time.monotonic()
    assert group.master_port() == group.replica.port
    # the servers follow and a third device is admitted (iteration 3 goes on, or 4 if iteration 3 was lost)
    resumed = wait_for(lambda: _admitted(addresses, fl_name, "m2", sizes["m2"]), 45, what="a device admitted")
    followed = time.monotonic()
    iteration = resumed.iteration
    assert iteration in (3, 4), iteration
    lost = iteration - 3
    if lost:  # never a wrong model: the lost iteration left the model of iteration 2 as it was
        model = models_everywhere(addresses, fl_name, 3)[0]
        np.testing.assert_array_equal(model.features["w1"], before.features["w1"])
    started = {f: sizes[f] for f in (("m0", "m1", "m2") if not lost else ("m2",))}
    expect = _fill(addresses, fl_name, iteration, started, rng)
    for served in models_everywhere(addresses, fl_name, iteration, timeout=30):
        assert served.iteration == iteration + 1
        for name, value in expect.items():
            np.testing.assert_allclose(served.features[name], value, rtol=1e-5, atol=1e-6)
    _train(addresses, fl_name, (iteration + 1,), rng)
    status, state = call(sched, "state")  # the scheduler follows the failover too
    assert status == 200 and state["cluster_state"] == "CLUSTER_READY" and len(state["nodes"]) == 2
    sync = make_sync_client(group.address, decode_responses=True)  # a tool finds the new primary too
    try:
        assert len(sync.hgetall(Keys(fl_name).processes)) == 3
    finally:
        sync.close()
    print(f"\nSENTINEL failover: promoted {promoted - killed:.2f} s after SIGKILL, servers training again "
          f"{followed - killed:.2f} s after it; iterations lost: {lost}")


def _fill(addresses, fl_name, iteration, started, rng):
    """More devices join `iteration` until 4 are in, all of them upload; the exact FedAvg result."""
    sizes = dict(started)
    for d in range(4 - len(sizes)):
        sizes[f"f{d}"] = n = int(rng.integers(1, 20))
        assert _served(start_job, addresses[d % 2], fl_name, f"f{d}", iteration, n).retcode == SUCCEED
    uploads = {f: {"w1": rng.standard_normal(6).astype(np.float32) * n,
                   "b1": rng.standard_normal(3).astype(np.float32) * n} for f, n in sizes.items()}
    for i, (fl_id, features) in enumerate(uploads.items()):
        reply = _served(update, addresses[i % 2], fl_name, fl_id, iteration, features)
        assert reply.retcode == SUCCEED, reply.reason
    total = sum(sizes.values())
    return {name: sum(f[name].astype(np.float64) for f in uploads.values()) / total for name in ("w1", "b1")}


def _served(request, *args):
    """A device's request repeated while the server answers "safe mode" (switching instance, or finding the new
    primary: a device retries then); the first other reply."""
    last = []

    def once():
        reply = request(*args)
        last[:] = [reply]
        return None if getattr(reply, "is_safemode", False) else reply
    try:
        return wait_for(once, 30, interval=0.2, what="a round reply")
    except AssertionError:
        raise AssertionError(f"still no round reply: {last}") from None
