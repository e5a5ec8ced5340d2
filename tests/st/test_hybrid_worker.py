"""HYBRID_TRAINING end to end: real servers and Redis, devices over HTTP, workers training MindSpore LeNet5."""
import os
import signal

import numpy as np
import pytest
import redis

from mindspore_federated.client import messages as m
from mindspore_federated.models import LENET5_SHAPES
from tests.utils.cluster import (
    SUCCEED,
    call,
    get_model,
    health,
    start_job,
    start_scheduler,
    start_server,
    update,
    wait_model,
    write_yaml,
)
from tests.utils.procs import REPO
from tests.utils.wait import wait_for

pytestmark = pytest.mark.mindspore
WORKER = os.path.join(REPO, "example", "hybrid_lenet", "run_worker.py")
NAMES = list(LENET5_SHAPES)


def hybrid_yaml(tmp_path, redis_server, fl_name, **round_overrides):
    rnd = {"start_fl_job_threshold": 2, "update_model_ratio": 1.0, "global_iteration_time_window": 60000}
    rnd.update(round_overrides)
    return write_yaml(tmp_path, redis_server.address, fl_name, server_mode="HYBRID_TRAINING",
                      fl_iteration_num=20, round=rnd)


def start_worker(procs, yaml_path, dump_dir, name="worker", iterations=2, steps=2, seed=0):
    proc = procs.python(name, WORKER, "--yaml_config", yaml_path, "--fl_iteration_num", str(iterations),
                        "--sync_frequency", str(steps), "--dump_dir", str(dump_dir), "--seed", str(seed))
    proc.wait_line("READY worker worker_fl_", timeout=120)
    return proc


def device_upload(seed, scale=0.01, names=NAMES):
    rng = np.random.default_rng(seed)
    return {n: (rng.standard_normal(int(np.prod(LENET5_SHAPES[n]))) * scale).astype(np.float32) for n in names}


def run_devices(addresses, fl_name, iteration, sizes, names_of=None):
    """Devices (fl_id -> data size) join `iteration` and upload w·n; returns the expected FedAvg per weight."""
    sums, counts = {}, {}
    for i, (fl_id, n) in enumerate(sizes.items()):
        address = addresses[i % len(addresses)]
        r = start_job(address, fl_name, fl_id, iteration, n)
        assert (r.retcode, r.iteration) == (SUCCEED, iteration), r
        w = device_upload(hash(fl_id) % 1000, names=(names_of or {}).get(fl_id, NAMES))
        assert update(address, fl_name, fl_id, iteration, {k: v * n for k, v in w.items()}).retcode == SUCCEED
        for k, v in w.items():
            sums[k] = sums.get(k, 0) + v.astype(np.float64) * n
            counts[k] = counts.get(k, 0) + n
    return sums, counts


def load(dump_dir, kind, iteration, timeout=180):
    path = os.path.join(dump_dir, f"{kind}_{iteration}.npz")
    wait_for(lambda: os.path.exists(path), timeout, what=path)   # the worker writes it atomically
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def check_pulled(pulled, sums, counts, start):
    for name in NAMES:
        expect = sums[name] / counts[name] if name in sums else start[name].reshape(-1)
        np.testing.assert_allclose(pulled[name], expect, rtol=1e-5, atol=1e-6, err_msg=name)


def assert_model_is(features, weights):
    for name in NAMES:
        np.testing.assert_array_equal(np.asarray(features[name]).reshape(-1), weights[name], err_msg=name)


def test_hybrid_one_server_worker_model_replaces_the_aggregate(tmp_path, redis_server, fl_name, procs):
    """Iteration 1: two devices → the worker pulls exactly their FedAvg, trains, pushes; getModel answers not
    ready until pushMetrics, then the worker's weights exactly; iteration 2's devices start from them, and a
    device upload that leaves weights out is averaged per weight."""
    yaml_path = hybrid_yaml(tmp_path, redis_server, fl_name)
    _, address = start_server(procs, yaml_path, tmp_path / "srv")
    dump = tmp_path / "dump"
    worker = start_worker(procs, yaml_path, dump)   # before the devices: the global window starts with them
    start = start_job(address, fl_name, "probe", 1, 1)   # counts as a device of iteration 1 (threshold 2)
    start_model = {k: np.array(v) for k, v in start.features.items()}
    n_probe = 1
    w_probe = device_upload(7)
    assert update(address, fl_name, "probe", 1, {k: v * n_probe for k, v in w_probe.items()}).retcode == SUCCEED
    assert get_model(address, fl_name, 1).retcode == m.ResponseCode.SucNotReady
    sums, counts = run_devices([address], fl_name, 1, {"d1": 3})
    for k, v in w_probe.items():
        sums[k] += v.astype(np.float64) * n_probe
        counts[k] += n_probe
    pulled = load(dump, "pulled", 1)
    check_pulled(pulled, sums, counts, start_model)
    pushed = load(dump, "pushed", 1)
    # the worker trained from the pulled weights: every weight moved
    assert all(not np.array_equal(pushed[n], pulled[n]) for n in NAMES)
    g = wait_model(address, fl_name, 1, timeout=60)
    assert g.iteration == 2
    assert_model_is(g.features, pushed)
    # iteration 2: one device uploads only conv1.*, the other everything
    partial = {"d3": [n for n in NAMES if n.startswith("conv1")]}
    r = start_job(address, fl_name, "d3", 2, 2)
    assert_model_is(r.features, pushed)   # the devices of the next iteration start from the worker's weights
    sums, counts = {}, {}
    w3 = device_upload(hash("d3") % 1000, names=partial["d3"])
    assert update(address, fl_name, "d3", 2, {k: v * 2 for k, v in w3.items()}).retcode == SUCCEED
    for k, v in w3.items():
        sums[k], counts[k] = v.astype(np.float64) * 2, 2
    s4, c4 = run_devices([address], fl_name, 2, {"d4": 5})
    for k in s4:
        sums[k] = sums.get(k, 0) + s4[k]
        counts[k] = counts.get(k, 0) + c4[k]
    check_pulled(load(dump, "pulled", 2), sums, counts, pushed)
    pushed2 = load(dump, "pushed", 2)
    assert_model_is(wait_model(address, fl_name, 2, timeout=60).features, pushed2)
    assert worker.wait_exit(60) == 0
    assert "ITERATION 2 " in worker.output()


def test_hybrid_two_servers_two_workers(tmp_path, redis_server, fl_name, procs):
    """Devices split over two servers; two workers (each may reach any server): exactly one worker's push
    becomes the model on both servers, the other's metrics are not sent, and training goes on."""
    yaml_path = hybrid_yaml(tmp_path, redis_server, fl_name)
    _, a = start_server(procs, yaml_path, tmp_path / "a", name="serverA")
    _, b = start_server(procs, yaml_path, tmp_path / "b", name="serverB")
    sched, sched_address = start_scheduler(procs, yaml_path)
    dumps = [tmp_path / "dump0", tmp_path / "dump1"]
    workers = [start_worker(procs, yaml_path, dumps[i], name=f"worker{i}", iterations=1, seed=i) for i in (0, 1)]
    start = {k: np.array(v) for k, v in start_job(a, fl_name, "probe", 1, 1).features.items()}
    nodes = wait_for(lambda: (s := call(sched_address, "state")[1]) and
                     sum(n["role"] == "WORKER" for n in s.get("nodes", [])) == 2 and s["nodes"], 20,
                     what="two workers in /state")
    assert {n["role"] for n in nodes} == {"SERVER", "WORKER"}
    assert all(n["node_id"].startswith("worker_fl_") and n["tcp_address"] == "" for n in nodes
               if n["role"] == "WORKER")
    w_probe = device_upload(7)
    assert update(a, fl_name, "probe", 1, w_probe).retcode == SUCCEED
    sums, counts = run_devices([b], fl_name, 1, {"d1": 1})
    for k, v in w_probe.items():
        sums[k] += v.astype(np.float64)
        counts[k] += 1
    for dump in dumps:
        check_pulled(load(dump, "pulled", 1), sums, counts, start)
    for w in workers:
        assert w.wait_exit(120) == 0
    sent = [("metrics_sent True" in w.output()) for w in workers]
    assert sorted(sent) == [False, True]
    winner = dumps[sent.index(True)]
    pushed = load(winner, "pushed", 1)
    for address in (a, b):
        assert_model_is(wait_model(address, fl_name, 1, timeout=60).features, pushed)
    # the workers left: /state drops them at once (deregistered)
    wait_for(lambda: not any(n["role"] == "WORKER" for n in call(sched_address, "state")[1].get("nodes", [])),
             15, what="workers gone from /state")


def test_worker_killed_mid_iteration_fails_it_on_the_timer_and_a_new_worker_resumes(
        tmp_path, redis_server, fl_name, procs):
    yaml_path = hybrid_yaml(tmp_path, redis_server, fl_name, global_iteration_time_window=20000)
    server, address = start_server(procs, yaml_path, tmp_path / "srv")
    sched, sched_address = start_scheduler(procs, yaml_path)
    dump = tmp_path / "dump"
    worker = start_worker(procs, yaml_path, dump, steps=400)   # long enough to be killed while training
    run_devices([address], fl_name, 1, {"d1": 1, "d2": 1})
    worker.wait_line("pulled ", timeout=120)
    worker.kill()
    server.wait_line("Global timer timeout! This iteration is invalid.", timeout=60)
    wait_for(lambda: not any(n["role"] == "WORKER" for n in call(sched_address, "state")[1].get("nodes", [])),
             15, what="the dead worker dropped from /state (heartbeat expired)")
    worker2 = start_worker(procs, yaml_path, tmp_path / "dump2", name="worker2", iterations=1)
    wait_for(lambda: health(address)["iteration"] == 2, 15, what="iteration 2")
    run_devices([address], fl_name, 2, {"d3": 1, "d4": 1})
    assert worker2.wait_exit(120) == 0
    pushed = load(tmp_path / "dump2", "pushed", 2)
    assert_model_is(wait_model(address, fl_name, 2, timeout=30).features, pushed)
    assert "ITERATION 2 " in worker2.output()


def test_new_instance_sends_the_worker_back_to_iteration_1(tmp_path, redis_server, fl_name, procs):
    yaml_path = hybrid_yaml(tmp_path, redis_server, fl_name)
    _, address = start_server(procs, yaml_path, tmp_path / "srv")
    _, sched_address = start_scheduler(procs, yaml_path)
    dump = tmp_path / "dump"
    worker = start_worker(procs, yaml_path, dump, iterations=2)
    run_devices([address], fl_name, 1, {"d1": 1, "d2": 1})
    wait_model(address, fl_name, 1, timeout=120)
    status, body = call(sched_address, "newInstance", {"start_fl_job_threshold": 1})
    assert status == 200, body
    wait_for(lambda: (x := start_job(address, fl_name, "e1", 1, 1)) and getattr(x, "retcode", 0) == SUCCEED
             and x.iteration == 1 and x, 15, what="iteration 1 of the new instance")
    assert update(address, fl_name, "e1", 1, device_upload(5)).retcode == SUCCEED
    assert worker.wait_exit(120) == 0
    assert [ln.split()[1] for ln in worker.output().splitlines() if ln.startswith("ITERATION ")] == ["1", "1"]
    client = redis.Redis(port=redis_server.port)
    try:
        inst = client.get(f"ms_fl:{{{fl_name}}}:InstanceName:String").decode()
        assert client.hlen(f"ms_fl:{{{fl_name}}}:{inst}:worker:Hash") == 0   # deregistered on exit
    finally:
        client.close()


def test_sigterm_deregisters_the_worker(tmp_path, redis_server, fl_name, procs):
    yaml_path = hybrid_yaml(tmp_path, redis_server, fl_name)
    start_server(procs, yaml_path, tmp_path / "srv")
    worker = start_worker(procs, yaml_path, tmp_path / "dump", iterations=3)
    client = redis.Redis(port=redis_server.port)
    try:
        inst = client.get(f"ms_fl:{{{fl_name}}}:InstanceName:String").decode()
        assert client.hlen(f"ms_fl:{{{fl_name}}}:{inst}:worker:Hash") == 1
        assert any(b"WORKER" in v for v in client.hgetall(f"ms_fl:{{{fl_name}}}:processes:Hash").values())
        worker.send(signal.SIGTERM)
        assert worker.wait_exit(20) == 0
        assert client.hlen(f"ms_fl:{{{fl_name}}}:{inst}:worker:Hash") == 0
        assert not any(b"WORKER" in v for v in client.hgetall(f"ms_fl:{{{fl_name}}}:processes:Hash").values())
    finally:
        client.close()


def test_finish_cloud_stops_the_worker(tmp_path, redis_server, fl_name, procs):
    import subprocess
    import sys

    yaml_path = hybrid_yaml(tmp_path, redis_server, fl_name)
    server, _ = start_server(procs, yaml_path, tmp_path / "srv")
    worker = start_worker(procs, yaml_path, tmp_path / "dump", iterations=3)
    out = subprocess.run([sys.executable, "-m", "mindspore_federated.tools.finish_cloud", "--redis_port",
                          str(redis_server.port), "--fl_name", fl_name], env={**os.environ, "PYTHONPATH": REPO},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"killed {worker.pid}" in out.stdout and f"killed {server.pid}" in out.stdout
    assert worker.wait_exit(20) == 0 and server.wait_exit(20) == 0


def test_worker_fails_over_when_its_server_dies(tmp_path, redis_server, fl_name, procs):
    """The worker polls the first live server; that server is killed (it holds no device update), the worker
    goes on with the other one, and the iteration ends with the worker's weights."""
    yaml_path = hybrid_yaml(tmp_path, redis_server, fl_name)
    server_a, a = start_server(procs, yaml_path, tmp_path / "a", name="serverA")
    _, b = start_server(procs, yaml_path, tmp_path / "b", name="serverB")
    dump = tmp_path / "dump"
    worker = start_worker(procs, yaml_path, dump, iterations=1)
    server_a.kill()
    run_devices([b], fl_name, 1, {"d1": 1, "d2": 2})
    assert worker.wait_exit(120) == 0
    assert "metrics_sent True" in worker.output()
    assert f"pullWeight to {a} failed" in worker.output()   # it was on A (rank 0) and moved to B
    assert_model_is(wait_model(b, fl_name, 1, timeout=30).features, load(dump, "pushed", 1))


def test_worker_waits_through_disable_and_stops_when_the_job_finishes(tmp_path, redis_server, fl_name, procs):
    """While the instance is disabled the worker keeps retrying; after /enableFLS it trains the next iteration;
    once the job is finished it stops instead of waiting forever."""
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, server_mode="HYBRID_TRAINING",
                           fl_iteration_num=2, round={"start_fl_job_threshold": 1, "update_model_ratio": 1.0})
    _, address = start_server(procs, yaml_path, tmp_path / "srv")
    _, sched_address = start_scheduler(procs, yaml_path)
    worker = start_worker(procs, yaml_path, tmp_path / "dump", iterations=5)
    assert call(sched_address, "disableFLS")[0] == 200          # fails iteration 1
    worker.wait_line("The server's training job is disabled or finished.", timeout=30)
    assert worker.alive()
    assert call(sched_address, "enableFLS")[0] == 200
    wait_for(lambda: health(address)["iteration"] == 2 and health(address)["running_state"] == 0, 15,
             what="iteration 2 running")
    run_devices([address], fl_name, 2, {"d1": 1})
    worker.wait_line("ITERATION 2 ", timeout=120)
    wait_model(address, fl_name, 2, timeout=30)                 # iteration 2 was the last: the job is finished
    assert worker.wait_exit(60) == 0
    assert "FINISHED " in worker.output()
