"""Disaster recovery with real processes: server SIGKILL + restart with its node id, whole-cluster restart,
Redis killed and restarted empty, Redis stopped for 5 s. Iterations never go backwards and training completes.
Each test prints the time from the fault to the next successful iteration."""
import signal
import time

import numpy as np
import redis

from tests.st.test_cluster import models_everywhere
from tests.st.test_rounds import ENTRY, get_model, start_job, update
from tests.utils.cluster import post, start_server, write_yaml
from tests.utils.wait import wait_for

ONES = {"w1": np.ones(6, np.float32), "b1": np.ones(3, np.float32)}


def train(addresses, fl_name, iteration, devices=2, value=1.0, prefix="d"):
    """One full iteration (startFLJob + updateModel spread over the servers); returns the served model."""
    upload = {k: v * value for k, v in ONES.items()}
    for d in range(devices):
        r = start_job(addresses[d % len(addresses)], fl_name, f"{prefix}{iteration}_{d}", iteration, 1)
        assert r.retcode == 200, r.reason
    for d in range(devices):
        assert update(addresses[(d + 1) % len(addresses)], fl_name, f"{prefix}{iteration}_{d}", iteration,
                      upload).retcode == 200
    return models_everywhere(addresses, fl_name, iteration)


def current_iteration(address, fl_name):
    return get_model(address, fl_name, 0).iteration


def test_server_sigkill_restart_with_same_node_id(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 2})
    ckpt = ("--checkpoint_dir", str(tmp_path / "ckpt"))
    pa, a = start_server(procs, yaml_path, tmp_path / "a", name="a", entry=ENTRY)
    pb, b = start_server(procs, yaml_path, tmp_path / "b", name="b", entry=ENTRY,
                         env={"MS_NODE_ID": "node-b"})
    train([a, b], fl_name, 1)
    client = redis.Redis(port=redis_server.port)
    rank_before = client.hget(f"ms_fl:{fl_name}:ranks:Hash", "node-b")
    pb.kill()
    t0 = time.monotonic()
    pb2, b2 = start_server(procs, yaml_path, tmp_path / "b", name="b2", entry=ENTRY, env={"MS_NODE_ID": "node-b"})
    assert client.hget(f"ms_fl:{fl_name}:ranks:Hash", "node-b") == rank_before
    models = train([a, b2], fl_name, 2, value=2.0)
    print(f"\nRECOVERY server SIGKILL+restart: next successful iteration after {time.monotonic() - t0:.2f}s")
    for m in models:
        np.testing.assert_array_equal(m.features["w1"], np.full(6, 2.0, np.float32))
    client.close()


def test_whole_cluster_sigkill_and_restart(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 2})
    shared = tmp_path / "shared"
    servers = [start_server(procs, yaml_path, shared, name=f"s{i}", entry=ENTRY) for i in range(2)]
    addresses = [a for _, a in servers]
    train(addresses, fl_name, 1, value=3.0)
    wait_for(lambda: list((shared / "fl_ckpt").glob("*.ckpt")), 10, what="checkpoint written")
    for proc, _ in servers:
        proc.kill()
    t0 = time.monotonic()
    servers = [start_server(procs, yaml_path, shared, name=f"r{i}", entry=ENTRY) for i in range(2)]
    addresses = [a for _, a in servers]
    r = start_job(addresses[0], fl_name, "after", 2, 1)
    assert r.iteration == 2
    np.testing.assert_array_equal(r.features["w1"], np.full(6, 3.0, np.float32))
    assert start_job(addresses[1], fl_name, "after2", 2, 1).retcode == 200
    for fl_id in ("after", "after2"):
        assert update(addresses[1], fl_name, fl_id, 2, ONES).retcode == 200
    models_everywhere(addresses, fl_name, 2)
    print(f"\nRECOVERY whole cluster SIGKILL+restart: next successful iteration after {time.monotonic() - t0:.2f}s")


def test_redis_killed_and_restarted_empty(tmp_path, fresh_redis, fl_name, procs):
    yaml_path = write_yaml(tmp_path, fresh_redis.address, fl_name, round={"start_fl_job_threshold": 2})
    servers = [start_server(procs, yaml_path, tmp_path / f"s{i}", name=f"s{i}", entry=ENTRY) for i in range(2)]
    addresses = [a for _, a in servers]
    train(addresses, fl_name, 1, value=4.0)
    assert start_job(addresses[0], fl_name, "lost", 2, 1).retcode == 200   # iteration 2 in progress
    t0 = time.monotonic()
    fresh_redis.restart()
    # iteration 2 fails (its state is gone), the counter continues at 3, the model is kept
    wait_for(lambda: current_iteration(addresses[0], fl_name) >= 3, 15, what="iteration 3 after Redis loss")
    for i, address in enumerate(addresses):
        wait_for(lambda a=address, i=i: getattr(start_job(a, fl_name, f"x{i}", 3, 1), "retcode", 0) == 200, 10,
                 what=f"server {i} serving again")
    for fl_id in ("x0", "x1"):
        assert update(addresses[1], fl_name, fl_id, 3, ONES).retcode == 200
    models = models_everywhere(addresses, fl_name, 3)
    print(f"\nRECOVERY Redis SIGKILL+restart (data lost): next successful iteration after "
          f"{time.monotonic() - t0:.2f}s")
    for m in models:
        assert m.iteration == 4
        np.testing.assert_array_equal(m.features["w1"], np.ones(6, np.float32))
    g = get_model(addresses[0], fl_name, 2)   # the failed iteration kept the model of iteration 1
    np.testing.assert_array_equal(g.features["w1"], np.full(6, 4.0, np.float32))


def test_redis_stopped_for_five_seconds(tmp_path, fresh_redis, fl_name, procs):
    yaml_path = write_yaml(tmp_path, fresh_redis.address, fl_name, round={"start_fl_job_threshold": 2})
    proc, address = start_server(procs, yaml_path, tmp_path / "s", entry=ENTRY)
    train([address], fl_name, 1, value=5.0)
    fresh_redis.kill(signal.SIGSTOP)
    t0 = time.monotonic()
    try:
        # getModel is still served from memory; other rounds get a plain-text "not available" reply
        assert get_model(address, fl_name, 1).retcode == 200
        _, body = post(address, "startFLJob", b"x" * 8, timeout=10)
        wait_for(lambda: post(address, "startFLJob", _fl_job(fl_name), timeout=10)[1] in (
            b"The cluster is in safemode.", b"The server's training job is disabled or finished."), 10,
            what="safe mode while Redis is stopped")
        while time.monotonic() - t0 < 5:
            assert get_model(address, fl_name, 1).retcode == 200
            time.sleep(0.5)
    finally:
        fresh_redis.kill(signal.SIGCONT)
    t1 = time.monotonic()
    it = wait_for(lambda: getattr(r := start_job(address, fl_name, "back0", current_iteration(address, fl_name), 1),
                                  "retcode", 0) == 200 and r.iteration, 15, what="full service after SIGCONT")
    assert it >= 2
    start_job(address, fl_name, "back1", it, 1)  # probes queued inside the stopped Redis may have filled the round
    # the round needs 2 updates: once two are in, the server switches iterations and the third gets either
    # a retcode (OutOfTime) or the plain-text safe-mode reply while the switch is in flight
    accepted = [getattr(update(address, fl_name, fl_id, it, ONES), "retcode", None)
                for fl_id in ("probe", "back0", "back1")]
    assert accepted.count(200) == 2, accepted
    models_everywhere([address], fl_name, it)
    print(f"\nRECOVERY Redis SIGSTOP 5s: next successful iteration {time.monotonic() - t1:.2f}s after SIGCONT")


def _fl_job(fl_name):
    from mindspore_federated.client import messages as m

    return m.build_start_fl_job(fl_name, "probe", 2, 1)


def test_recovery_file_restores_node_id_and_rank(tmp_path, redis_server, fl_name, procs):
    import json

    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 1})
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"recovery": {"storage_type": 1, "storge_file_path": str(tmp_path / "rec.json")}}))
    extra = ("--config_file_path", str(config))
    _, a = start_server(procs, yaml_path, tmp_path / "a", name="a", extra=extra)
    pb, b = start_server(procs, yaml_path, tmp_path / "b", name="b", extra=extra)
    port_b = b.rpartition(":")[2]
    saved = json.loads((tmp_path / f"rec.json.{port_b}").read_text())
    assert saved["rank"] == 1 and saved["fl_name"] == fl_name
    pb.kill()
    pb2, _ = start_server(procs, yaml_path, tmp_path / "b", name="b2", extra=extra, http_port=int(port_b))
    assert f"node={saved['node_id']}" in pb2.wait_ready()
    client = redis.Redis(port=redis_server.port)
    assert int(client.hget(f"ms_fl:{fl_name}:ranks:Hash", saved["node_id"])) == 1
    client.close()
