"""Multi-server cluster: any server serves any round, exact FedAvg over all-reduce, identical models,
SIGKILL of servers with and without updates, scale-out and scale-in while training."""
import random
import signal
import time

import numpy as np
import pytest

from mindspore_federated import errors
from tests.utils.cluster import get_model, start_job, start_server, update, write_yaml
from tests.utils.multi import (
    ENTRY,
    Registry,
    iteration_results,
    models_everywhere,
    node_id_of,
    run_iteration,
    start_servers,
)
from tests.utils.wait import wait_for

SUCCEED = 200

@pytest.fixture
def registry(redis_server, fl_name):
    reg = Registry(redis_server, fl_name)
    yield reg
    reg.close()


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


def test_sigkill_server_holding_updates_fails_iteration(tmp_path, redis_server, fl_name, procs, registry):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 3})
    (pa, a), (pb, b) = start_servers(procs, tmp_path, yaml_path, 2)
    ones = {"w1": np.ones(6, np.float32), "b1": np.ones(3, np.float32)}
    for d in range(3):
        assert start_job(a, fl_name, f"d{d}", 1, 1).retcode == SUCCEED
    assert update(b, fl_name, "d0", 1, ones).retcode == SUCCEED   # b holds an update
    killed = time.monotonic()
    pb.kill()
    # the survivor notices (refused TCP ping, long before the 10 s heartbeat expires) and fails iteration 1
    status = wait_for(lambda: (st := registry.status()).get("iterationNum") == "2" and st, 15,
                      what="iteration 1 ended")
    assert (status["lastIterationSuccess"], status["lastIterationResult"]) == ("0", errors.ITER_SERVER_EXITED)
    pa.wait_line("does not answer on its TCP port", timeout=1)
    r = models_everywhere([a], fl_name, 1)[0]
    assert r.iteration == 2
    np.testing.assert_array_equal(r.features["w1"], np.arange(6, dtype=np.float32))   # model unchanged
    # iteration 2 trains normally on the survivor
    for d in range(3):
        assert start_job(a, fl_name, f"n{d}", 2, 1).retcode == SUCCEED
    for d in range(3):
        assert update(a, fl_name, f"n{d}", 2, ones).retcode == SUCCEED
    np.testing.assert_array_equal(models_everywhere([a], fl_name, 2)[0].features["w1"], np.ones(6, np.float32))
    elapsed = time.monotonic() - killed
    print(f"SIGKILL of a server holding updates -> next successful iteration: {elapsed:.2f} s")
    assert iteration_results([tmp_path / "srv0"], {1, 2}) == {1: "fail", 2: "success"}


def test_sigkill_server_without_updates_keeps_iteration(tmp_path, redis_server, fl_name, procs, registry):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 2})
    (pa, a), (pb, b) = start_servers(procs, tmp_path, yaml_path, 2)
    id_b = node_id_of(pb)
    ones = {"w1": np.ones(6, np.float32), "b1": np.ones(3, np.float32)}
    for d in range(2):
        assert start_job(b, fl_name, f"d{d}", 1, 1).retcode == SUCCEED   # b only served startFLJob
    pb.kill()
    for d in range(2):
        assert update(a, fl_name, f"d{d}", 1, ones).retcode == SUCCEED
    r = models_everywhere([a], fl_name, 1)[0]
    np.testing.assert_array_equal(r.features["w1"], np.ones(6, np.float32))
    assert registry.status()["lastIterationSuccess"] == "1"
    # a new server starts while the killed one is still listed (its heartbeat has not expired yet): the
    # new one finds nothing listening on the dead server's TCP port, drops the entry and serves at once
    assert id_b in registry.servers() and registry.heartbeat_ttl(id_b) > 5
    pc, c = start_server(procs, yaml_path, tmp_path / "srv_c", name="server_c", entry=ENTRY)
    pc.wait_line(f"listed server {id_b} is gone", timeout=1)
    assert id_b not in registry.servers()
    r = get_model(c, fl_name, 1)
    assert (r.retcode, r.iteration) == (SUCCEED, 2)
    np.testing.assert_array_equal(r.features["w1"], np.ones(6, np.float32))
    assert start_job(c, fl_name, "late", 2, 1).retcode == SUCCEED


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
    # scale in mid-iteration: the first server served startFLJob of iteration 3 (and nothing else), then
    # gets SIGTERM; its devices carry on at the other servers and the iteration still succeeds
    proc_a, a = servers[0]
    rest = [addresses[1], c]
    sizes = [2, 3, 5, 7]
    uploads = [{"w1": rng.standard_normal(6).astype(np.float32) * n,
                "b1": rng.standard_normal(3).astype(np.float32) * n} for n in sizes]
    for d, target in enumerate([a, a, rest[0], rest[1]]):
        assert start_job(target, fl_name, f"s{d}", 3, sizes[d]).retcode == SUCCEED
    proc_a.send(signal.SIGTERM)
    assert proc_a.wait_exit(10) == 0
    for d, target in enumerate([rest[0], rest[1], rest[1], rest[0]]):
        assert update(target, fl_name, f"s{d}", 3, uploads[d]).retcode == SUCCEED
    for r in models_everywhere(rest, fl_name, 3):
        assert r.iteration == 4
        for name in ("w1", "b1"):
            expect = sum(u[name] for u in uploads) / np.float32(sum(sizes))
            np.testing.assert_allclose(r.features[name], expect, rtol=1e-6, atol=1e-7)
    results = iteration_results([tmp_path / "srv0", tmp_path / "srv1", tmp_path / "srv2"], {1, 2, 3})
    assert results == {1: "success", 2: "success", 3: "success"}
