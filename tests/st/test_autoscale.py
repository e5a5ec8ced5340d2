"""The policy autoscaler with the local launcher: a running cluster under a ramping device load scales out
and back in between iterations, and every iteration succeeds."""
import asyncio
import sys

import numpy as np
import pytest
import redis.asyncio

from mindspore_federated.autoscale import Autoscaler, ClusterStateSignals, LocalLauncher, PolicyConfig
from mindspore_federated.autoscale.controller import table
from mindspore_federated.autoscale.launcher import python_server_command
from mindspore_federated.state.redis_state import RedisClusterState
from tests.utils.cluster import SUCCEED, call, health, start_job, update, write_yaml
from tests.utils.multi import ENTRY, iteration_results, models_everywhere
from tests.utils.redis_server import consecutive_free_ports, free_port
from tests.utils.wait import wait_for

THRESHOLD = 2
RAMP = [2, 2, 6, 6, 6, 2, 2, 2]   # devices asking to take part in each iteration (THRESHOLD are accepted)
CFG = PolicyConfig(min_servers=1, max_servers=3, target_devices_per_server=2, hysteresis=0.25, cooldown_s=0)


@pytest.fixture
def launcher(tmp_path, redis_server, fl_name):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, fl_iteration_num=len(RAMP) + 2,
                           round={"start_fl_job_threshold": THRESHOLD})
    ports = [free_port() for _ in range(8)]

    def ready(index, proc):
        wait_for(lambda: proc.poll() is None and health(f"127.0.0.1:{ports[index]}"), 60,
                 what=f"server {index} serving")

    command = python_server_command(yaml_path, "127.0.0.1", ports.__getitem__, lambda i: str(tmp_path / f"srv{i}"),
                                    entry=ENTRY)
    la = LocalLauncher(command, lambda i: str(tmp_path / f"srv{i}"), ready=ready)
    la.addresses = lambda: [f"127.0.0.1:{ports[i]}" for i in la.indexes]
    try:
        yield la
    finally:
        la.close()


def _iteration(addresses, fl_name, it, devices):
    """`devices` startFLJob requests spread over the servers; the THRESHOLD accepted ones upload ones."""
    accepted = []
    for d in range(devices):
        r = start_job(addresses[d % len(addresses)], fl_name, f"i{it}d{d}", it, 1)
        if r.retcode == SUCCEED:
            accepted.append(f"i{it}d{d}")
    assert len(accepted) == THRESHOLD, accepted
    ones = {"w1": np.full(6, it, np.float32), "b1": np.full(3, it, np.float32)}
    for d, fl_id in enumerate(accepted):
        assert update(addresses[d % len(addresses)], fl_name, fl_id, it, ones).retcode == SUCCEED
    return models_everywhere(addresses, fl_name, it, timeout=30)


async def _look(scaler, redis_server, fl_name):
    client = redis.asyncio.Redis(host="127.0.0.1", port=redis_server.port)
    scaler.source = ClusterStateSignals(RedisClusterState(client, fl_name, 60000))
    try:
        return await scaler.step()
    finally:
        await client.aclose()


def test_ramp_scales_out_and_in_without_losing_an_iteration(tmp_path, redis_server, fl_name, launcher):
    asyncio.run(launcher.scale(0, CFG.min_servers))
    scaler = Autoscaler(CFG, None, launcher)
    counts = []
    for it, devices in enumerate(RAMP, start=1):
        addresses = launcher.addresses()
        counts.append(len(addresses))
        for r in _iteration(addresses, fl_name, it, devices):
            assert r.iteration == it + 1
            np.testing.assert_array_equal(r.features["w1"], np.full(6, it, np.float32))
        iteration_results([tmp_path / f"srv{i}" for i in range(3)], {it}, timeout=30)   # summaries written
        row = wait_for(lambda: asyncio.run(_look(scaler, redis_server, fl_name)), 30,
                       what=f"a decision after iteration {it}")
        assert row.iteration == it
    print("\n" + table(scaler.decisions), file=sys.stderr)
    assert counts == [1, 1, 1, 3, 3, 3, 1, 1]
    workdirs = [tmp_path / f"srv{i}" for i in range(3)]
    results = iteration_results(workdirs, set(range(1, len(RAMP) + 1)))
    assert set(results.values()) == {"success"}, results


def test_the_scheduler_runs_the_autoscaler_with_the_local_launcher(tmp_path, redis_server, fl_name, procs):
    """autoscale.enable_autoscale in the YAML: the scheduler starts min_servers (LeNet) servers itself (bounds),
    they serve devices, and stopping the scheduler stops them."""
    first = consecutive_free_ports(2)
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": THRESHOLD},
                           autoscale={"enable_autoscale": True, "min_servers": 2, "max_servers": 3,
                                      "target_devices_per_server": 2, "check_interval": 0.2,
                                      "local_first_port": first})
    address = f"127.0.0.1:{free_port()}"
    sched = procs.python("scheduler", "-m", "mindspore_federated.scheduler", "--yaml_config", yaml_path,
                         "--scheduler_manage_address", address, cwd=str(tmp_path))
    sched.wait_ready(30)
    servers = [f"127.0.0.1:{first + i}" for i in range(2)]
    for s in servers:
        wait_for(lambda s=s: health(s), 90, what=f"server {s} started by the scheduler")
    wait_for(lambda: len(call(address, "state")[1].get("nodes", [])) == 2, 30, what="2 servers in /state")
    for d, s in enumerate(servers):
        assert start_job(s, fl_name, f"d{d}", 1, 1).retcode == SUCCEED
    sched.wait_line("autoscale after iteration 0: 0 -> 2 servers", timeout=5)
    assert sched.stop() == 0
    for s in servers:
        wait_for(lambda s=s: not _answers(s), 30, what=f"server {s} stopped with the scheduler")


def test_a_bad_autoscale_section_is_refused(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name,
                           autoscale={"enable_autoscale": True, "min_servers": 3, "max_servers": 2})
    sched = procs.python("scheduler", "-m", "mindspore_federated.scheduler", "--yaml_config", yaml_path,
                         "--scheduler_manage_address", f"127.0.0.1:{free_port()}", cwd=str(tmp_path))
    assert sched.wait_exit(30) != 0
    assert "invalid autoscale configuration" in sched.output() and "min_servers" in sched.output()


def _answers(address):
    try:
        health(address)
        return True
    except OSError:
        return False
