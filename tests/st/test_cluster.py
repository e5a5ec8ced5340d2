"""Multi-server cluster: any server serves any round, exact FedAvg over all-reduce, identical models,
SIGKILL of servers with and without updates, scale-out and scale-in while training."""
import random
import signal

import numpy as np
import pytest

from mindspore_federated.client import messages as m
from tests.st.test_rounds import ENTRY, get_model, start_job, update
from tests.utils.cluster import start_server, write_yaml
from tests.utils.wait import wait_for

SUCCEED = 200


def start_servers(procs, tmp_path, yaml_path, count, first=0):
    return [start_server(procs, yaml_path, tmp_path / f"srv{i}", name=f"server{i}", entry=ENTRY)
            for i in range(first, first + count)]


def models_everywhere(addresses, fl_name, iteration, timeout=10.0):
    """Waits until every server serves the model of `iteration`; returns them."""
    out = []
    for address in addresses:
        out.append(wait_for(lambda a=address: (r := get_model(a, fl_name, iteration)).retcode == SUCCEED and r,
                            timeout, what=f"model {iteration} on {address}"))
    return out


def run_iteration(addresses, fl_name, iteration, devices, rng, spread=True):
    """startFLJob and updateModel for each device on random servers; returns the exact FedAvg result."""
    uploads, sizes = [], []
    for d in range(devices):
        n = int(rng.integers(1, 20))
        r = start_job(rng.choice(addresses) if spread else addresses[0], fl_name, f"i{iteration}d{d}", iteration, n)
        assert r.retcode == SUCCEED, r.reason
        uploads.append({"w1": rng.standard_normal(6).astype(np.float32) * n,
                        "b1": rng.standard_normal(3).astype(np.float32) * n})
        sizes.append(n)
    for d in range(devices):
        target = rng.choice(addresses) if spread else addresses[0]
        r = update(target, fl_name, f"i{iteration}d{d}", iteration, uploads[d])
        assert r.retcode == SUCCEED, r.reason
    return {name: sum(u[name].astype(np.float64) for u in uploads) / sum(sizes) for name in ("w1", "b1")}


@pytest.mark.parametrize("servers", [2, 3])
def test_any_server_any_round_exact_fedavg(tmp_path, redis_server, fl_name, procs, servers):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 6},
                           fl_iteration_num=10)
    addresses = [a for _, a in start_servers(procs, tmp_path, yaml_path, servers)]
    rng = np.random.default_rng(servers)
    for it in (1, 2, 3):
        expect = run_iteration(addresses, fl_name, it, 6, rng)
        replies = models_everywhere(addresses, fl_name, it)
        for r in replies:
            assert r.iteration == it + 1
            for name, value in expect.items():
                np.testing.assert_allclose(r.features[name], value, rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(r.features["w1"], replies[0].features["w1"])


def test_start_on_one_server_update_on_another(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 2})
    (_, a), (_, b) = start_servers(procs, tmp_path, yaml_path, 2)
    for d in range(2):
        assert start_job(a, fl_name, f"d{d}", 1, 1).retcode == SUCCEED
    ones = {"w1": np.ones(6, np.float32), "b1": np.ones(3, np.float32)}
    for d in range(2):
        assert update(b, fl_name, f"d{d}", 1, ones).retcode == SUCCEED
    for r in models_everywhere([a, b], fl_name, 1):
        np.testing.assert_array_equal(r.features["w1"], np.ones(6, np.float32))


def test_sigkill_server_holding_updates_fails_iteration(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 3})
    (pa, a), (pb, b) = start_servers(procs, tmp_path, yaml_path, 2)
    ones = {"w1": np.ones(6, np.float32), "b1": np.ones(3, np.float32)}
    for d in range(3):
        assert start_job(a, fl_name, f"d{d}", 1, 1).retcode == SUCCEED
    assert update(b, fl_name, "d0", 1, ones).retcode == SUCCEED   # b holds an update
    pb.kill()
    # the survivor notices (TCP ping) and fails iteration 1, then iteration 2 trains normally
    r = wait_for(lambda: (g := get_model(a, fl_name, 1)).retcode == SUCCEED and g, 15, what="iteration 1 failed")
    assert r.iteration == 2
    np.testing.assert_array_equal(r.features["w1"], np.arange(6, dtype=np.float32))
    for d in range(3):
        assert start_job(a, fl_name, f"n{d}", 2, 1).retcode == SUCCEED
    for d in range(3):
        assert update(a, fl_name, f"n{d}", 2, ones).retcode == SUCCEED
    np.testing.assert_array_equal(models_everywhere([a], fl_name, 2)[0].features["w1"], np.ones(6, np.float32))


def test_sigkill_server_without_updates_keeps_iteration(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 2})
    (pa, a), (pb, b) = start_servers(procs, tmp_path, yaml_path, 2)
    ones = {"w1": np.ones(6, np.float32), "b1": np.ones(3, np.float32)}
    for d in range(2):
        assert start_job(b, fl_name, f"d{d}", 1, 1).retcode == SUCCEED   # b only served startFLJob
    pb.kill()
    for d in range(2):
        assert update(a, fl_name, f"d{d}", 1, ones).retcode == SUCCEED
    r = models_everywhere([a], fl_name, 1)[0]
    np.testing.assert_array_equal(r.features["w1"], np.ones(6, np.float32))
    # a new server can start while the killed one may still be listed (heartbeat not yet expired)
    _, c = start_server(procs, yaml_path, tmp_path / "srv_c", name="server_c", entry=ENTRY)
    assert get_model(c, fl_name, 1).retcode == SUCCEED


def test_scale_out_and_scale_in_while_training(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 4},
                           fl_iteration_num=10)
    servers = start_servers(procs, tmp_path, yaml_path, 2)
    addresses = [a for _, a in servers]
    rng = np.random.default_rng(1)
    expect = run_iteration(addresses, fl_name, 1, 4, rng)
    models_everywhere(addresses, fl_name, 1)
    # scale out: a third server joins between iterations, adopts the current model and serves iteration 2
    proc3, c = start_server(procs, yaml_path, tmp_path / "srv2", name="server2", entry=ENTRY)
    r = start_job(c, fl_name, "probe", 2, 1)
    np.testing.assert_allclose(r.features["w1"], expect["w1"], rtol=1e-5, atol=1e-6)
    uploads = {"w1": np.full(6, 3.0, np.float32), "b1": np.full(3, 3.0, np.float32)}
    for d in range(3):
        assert start_job(random.choice(addresses), fl_name, f"x{d}", 2, 3).retcode == SUCCEED
    for d, target in enumerate([c, c, addresses[0], addresses[1]]):
        fl_id = "probe" if d == 0 else f"x{d - 1}"
        size = 1 if d == 0 else 3
        assert update(target, fl_name, fl_id, 2, {k: v / 3 * size for k, v in uploads.items()}).retcode == SUCCEED
    for r in models_everywhere(addresses + [c], fl_name, 2):
        np.testing.assert_allclose(r.features["w1"], np.ones(6), rtol=1e-6)
    # scale in: SIGTERM the first server (it holds no updates of iteration 3): no failed iteration
    proc_a, a = servers[0]
    proc_a.send(signal.SIGTERM)
    assert proc_a.wait_exit(10) == 0
    rest = [addresses[1], c]
    run_iteration(rest, fl_name, 3, 4, rng)
    r = models_everywhere(rest, fl_name, 3)[0]
    assert r.iteration == 4
