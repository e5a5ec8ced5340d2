"""Operating a real cluster through the Scheduler: state, disable/enable, newInstance, nodes, scale-out/in,
and the launch scripts with finish_cloud.py."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import redis

from mindspore_federated.client.messages import build_get_model, build_start_fl_job
from mindspore_federated.errors import JOB_DISABLED
from mindspore_federated.state.keys import Keys
from tests.utils.cluster import call, get_model, post, start_job, start_scheduler, update, write_yaml
from tests.utils.multi import models_everywhere, run_iteration, start_servers
from tests.utils.redis_server import consecutive_free_ports, free_port
from tests.utils.wait import wait_for

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(REPO, "example", "cross_device_lenet_femnist")


def metrics_lines(*workdirs):
    """Every metrics.json line of the servers' working directories (the summary lock holder writes it)."""
    lines = []
    for workdir in workdirs:
        path = os.path.join(str(workdir), "metrics.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                lines += [json.loads(x) for x in f if x.strip()]
    return lines


def test_disable_enable_and_new_instance(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 2})
    (_, a), (_, b) = start_servers(procs, tmp_path, yaml_path, 2)
    workdirs = (tmp_path / "srv0", tmp_path / "srv1")
    _, sched = start_scheduler(procs, yaml_path)
    status, state = call(sched, "state")
    assert status == 200 and state["cluster_state"] == "CLUSTER_READY" and len(state["nodes"]) == 2
    rng = np.random.default_rng(3)
    expect = run_iteration([a, b], fl_name, 1, 2, rng)
    models_everywhere([a, b], fl_name, 1)
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    inst = client.get(Keys(fl_name).instance_name)
    # iteration 2 is under way (one device started) when the instance is disabled
    assert start_job(a, fl_name, "pending", 2, 1).retcode == 200
    assert call(sched, "disableFLS") == (200, {"code": "0", "message": "start disabling FL-Server successful."})
    assert call(sched, "state")[1]["cluster_state"] == "CLUSTER_DISABLE"
    for address in (a, b):   # every round, getModel included, answers the reference's plain text
        wait_for(lambda x=address: post(x, "getModel", build_get_model(fl_name, 1))[1] == JOB_DISABLED.encode(),
                 5, what=f"disabled text from {address}")
        assert post(address, "startFLJob", build_start_fl_job(fl_name, "late", 2, 1))[1] == JOB_DISABLED.encode()
    # the current iteration fails with the reference's reason and the number advances exactly once
    status = wait_for(lambda: (st := client.hgetall(Keys(fl_name).status(inst))).get("iterationNum") == "3"
                      and st, 10, what="iteration 2 failed by the disable")
    assert (status["lastIterationSuccess"], status["lastIterationResult"]) == ("0", "Disable instance")
    assert call(sched, "disableFLS")[1]["error_message"] == "The instance has already been disabled."
    assert call(sched, "enableFLS") == (200, {"code": "0", "message": "start enabling FL-Server successful."})
    assert call(sched, "state")[1]["cluster_state"] == "CLUSTER_READY"
    assert client.hget(Keys(fl_name).status(inst), "iterationNum") == "3"
    line = wait_for(lambda: [x for x in metrics_lines(*workdirs) if x["currentIteration"] == 2], 10,
                    what="metrics line of iteration 2")
    assert len(line) == 1 and line[0]["iterationResult"] == "fail"
    # the failed iteration kept the model of iteration 1; its device is refused in iteration 3
    for address in (a, b):
        g = wait_for(lambda x=address: (r := get_model(x, fl_name, 2)).retcode == 200 and r, 10, what="model 2")
        assert g.iteration == 3
        for name in ("w1", "b1"):
            np.testing.assert_allclose(g.features[name].ravel(), expect[name], rtol=1e-5, atol=1e-6)
    assert update(a, fl_name, "pending", 2, {"w1": np.ones(6, np.float32), "b1": np.ones(3, np.float32)}
                  ).retcode != 200
    # after enableFLS a full iteration trains and succeeds
    expect3 = run_iteration([a, b], fl_name, 3, 2, rng)
    for m in models_everywhere([a, b], fl_name, 3):
        assert m.iteration == 4
        for name in ("w1", "b1"):
            np.testing.assert_allclose(m.features[name].ravel(), expect3[name], rtol=1e-5, atol=1e-6)
    status = wait_for(lambda: (st := client.hgetall(Keys(fl_name).status(inst))).get("iterationNum") == "4"
                      and st, 5, what="iteration 3 recorded")
    assert status["lastIterationSuccess"] == "1"
    wait_for(lambda: [x for x in metrics_lines(*workdirs) if x["currentIteration"] == 3], 10, what="metrics 3")
    assert [x["iterationResult"] for x in sorted(metrics_lines(*workdirs), key=lambda x: x["currentIteration"])] \
        == ["success", "fail", "success"]
    expect = expect3
    # newInstance: new threshold 1, model kept as iteration 0, iteration back to 1
    status, reply = call(sched, "newInstance", {"start_fl_job_threshold": 1, "client_learning_rate": 0.03})
    assert (status, reply["message"]) == (200, "Start new instance successful.")
    assert call(sched, "queryInstance")[1]["result"]["start_fl_job_threshold"] == 1
    new_inst = client.get(Keys(fl_name).instance_name)
    assert new_inst != inst
    client.close()
    for address in (a, b):
        wait_for(lambda x=address: call(x, "healthz")[1]["instance"] == new_inst, 5, what="instance adopted")
    r = start_job(b, fl_name, "solo", 1, 1)
    assert r.iteration == 1 and abs(r.fl_plan.lr - 0.03) < 1e-6
    np.testing.assert_allclose(r.features["w1"], expect["w1"], rtol=1e-5, atol=1e-6)
    ones = {"w1": np.ones(6, np.float32), "b1": np.ones(3, np.float32)}
    assert update(b, fl_name, "solo", 1, ones).retcode == 200
    for m in models_everywhere([a, b], fl_name, 1):
        np.testing.assert_array_equal(m.features["w1"], np.ones(6, np.float32))
    status, reply = call(sched, "newInstance", {"start_fl_job_threshold": -1})
    assert status == 400 and reply["code"] == "1"


def test_nodes_scale_out_and_scale_in_with_drain(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 3},
                           fl_iteration_num=20)
    servers = start_servers(procs, tmp_path, yaml_path, 2)
    _, sched = start_scheduler(procs, yaml_path)
    nodes = call(sched, "nodes")[1]["nodeIds"]
    ranks = sorted(int(n["rankId"]) for n in nodes if n["role"] == "SERVER")
    assert ranks == [0, 1]
    rng = np.random.default_rng(5)
    run_iteration([a for _, a in servers], fl_name, 1, 3, rng)
    assert call(sched, "scaleout", {"server_num": 2, "worker_num": 0})[0] == 200
    assert call(sched, "state")[1]["cluster_state"] == "CLUSTER_SCALE_OUT"
    servers += start_servers(procs, tmp_path, yaml_path, 2, first=2)
    wait_for(lambda: call(sched, "state")[1]["cluster_state"] == "CLUSTER_READY", 10, what="scale-out done")
    addresses = [a for _, a in servers]
    models_everywhere(addresses, fl_name, 1)
    run_iteration(addresses, fl_name, 2, 3, rng)
    models_everywhere(addresses, fl_name, 2)
    nodes = {int(n["rankId"]): n["nodeId"] for n in call(sched, "nodes")[1]["nodeIds"] if n["role"] == "SERVER"}
    assert sorted(nodes) == [0, 1, 2, 3]
    # iteration 3 is under way on the servers about to leave: two of its devices started there
    leaving = [a for _, a in servers[2:]]
    sizes = {"s0": 2, "s1": 3, "s2": 5}
    for fl_id, address in zip(sizes, leaving + [servers[0][1]]):
        assert start_job(address, fl_name, fl_id, 3, sizes[fl_id]).retcode == 200
    status, reply = call(sched, "scalein", {"node_ids": [nodes[2], nodes[3]]})
    assert status == 200, reply
    wait_for(lambda: call(sched, "state")[1]["cluster_state"] == "CLUSTER_READY", 15, what="scale-in done")
    for proc, _ in servers[2:]:
        assert proc.wait_exit(10) == 0
    # the started devices finish iteration 3 on the survivors: exact FedAvg, nothing lost with the drained
    # servers
    survivors = [a for _, a in servers[:2]]
    uploads = {fl_id: {"w1": np.full(6, i + 1.0, np.float32) * n, "b1": np.full(3, -(i + 1.0), np.float32) * n}
               for i, (fl_id, n) in enumerate(sizes.items())}
    for i, (fl_id, upload) in enumerate(uploads.items()):
        assert update(survivors[i % 2], fl_name, fl_id, 3, upload).retcode == 200
    total = sum(sizes.values())
    for m in models_everywhere(survivors, fl_name, 3):
        assert m.iteration == 4
        np.testing.assert_allclose(m.features["w1"].ravel(), np.full(6, (2 * 1 + 3 * 2 + 5 * 3) / total), rtol=1e-6)
        np.testing.assert_allclose(m.features["b1"].ravel(), np.full(3, -(2 * 1 + 3 * 2 + 5 * 3) / total), rtol=1e-6)
    run_iteration(survivors, fl_name, 4, 3, rng)
    assert models_everywhere(survivors, fl_name, 4)[0].iteration == 5
    left = {int(n["rankId"]) for n in call(sched, "nodes")[1]["nodeIds"] if n["role"] == "SERVER"
            and n["alive"] == "true"}
    assert left == {0, 1}


def test_launch_scripts_and_finish_cloud(tmp_path, redis_server, fl_name):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name)
    http_port, sched_port = consecutive_free_ports(2), free_port()   # run_server.py takes http_port + 1 too
    env = {**os.environ, "PYTHONPATH": REPO}
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    pids = []
    try:
        out = subprocess.run([sys.executable, os.path.join(EXAMPLE, "run_sched.py"), "--yaml_config", yaml_path,
                              "--scheduler_manage_address", f"127.0.0.1:{sched_port}"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=60)
        pids += [int(x) for x in re.findall(r"pid=(\d+)", out.stdout)]  # before asserting: always stopped
        assert out.returncode == 0, out.stdout + out.stderr
        out = subprocess.run([sys.executable, os.path.join(EXAMPLE, "run_server.py"), "--yaml_config", yaml_path,
                              "--local_server_num", "2", "--http_server_address", f"127.0.0.1:{http_port}"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        pids += [int(x) for x in re.findall(r"pid=(\d+)", out.stdout)]  # before asserting: always stopped
        assert out.returncode == 0, out.stdout + out.stderr
        assert out.stdout.count("Server started successfully.") == 2
        assert (tmp_path / "logs" / f"server_{http_port + 1}" / "server.log").exists()
        assert len(call(f"127.0.0.1:{sched_port}", "state")[1]["nodes"]) == 2
        out = subprocess.run([sys.executable, os.path.join(EXAMPLE, "finish_cloud.py"), "--redis_port",
                              str(redis_server.port), "--fl_name", fl_name], env=env, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        killed = sorted(int(x) for x in re.findall(r"killed (\d+)", out.stdout))
        assert killed == sorted(pids)
        for pid in pids:
            wait_for(lambda p=pid: not os.path.exists(f"/proc/{p}") or _zombie(p), 10, what=f"{pid} gone")
        assert bystander.poll() is None
    finally:
        for pid in pids:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        bystander.kill()
        bystander.wait()


def _zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
