"""Redis Sentinel and Redis Cluster as the state backend: real redis-server / redis-sentinel processes on
127.0.0.1; a cluster trains on both, and follows a Sentinel failover after SIGKILL of the primary."""
import time

import numpy as np

from mindspore_federated.state.keys import Keys
from tests.utils.cluster import SUCCEED, start_job, update, write_yaml
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


def test_a_redis_cluster_trains_with_every_key_of_the_job_in_one_slot(tmp_path, procs, fl_name):
    group = RedisClusterGroup(tmp_path / "redis").start()
    try:
        yaml_path = write_yaml(tmp_path, group.address, fl_name, fl_iteration_num=10,
                               round={"start_fl_job_threshold": 4})
        addresses = [a for _, a in start_servers(procs, tmp_path, yaml_path, 2)]
        _train(addresses, fl_name, (1, 2, 3), np.random.default_rng(7))
        slot = _ask(group.nodes[0].port, "CLUSTER", "KEYSLOT", Keys(fl_name).instance_name)
        keys = []
        for node in group.nodes:  # the job's keys all live on the node owning its slot
            keys += [k for k in _ask(node.port, "KEYS", Keys(fl_name).base + "*") or []]
        assert keys
        assert {_ask(group.nodes[0].port, "CLUSTER", "KEYSLOT", k) for k in keys} == {slot}
    finally:
        group.stop()
