"""The seed-001 (older deployment guide) command lines, run as written: run_sched.py and run_server.py with
--scheduler_ip --scheduler_port --scheduler_manage_port --fl_server_port --server_num --local_server_num
--start_fl_job_threshold --fl_name --node_id --config_file_path (a JSON file with the security keys and a
`recovery` section), plus --redis_address for the test's redis-server; then the REST API, a device
iteration, the seed's disaster-recovery restart, and `finish_cloud.py --scheduler_port`."""
import json
import os
import re
import subprocess
import sys

import numpy as np

from mindspore_federated.models import LENET5_SHAPES
from tests.utils.cluster import call, start_job, start_scheduler, update, write_yaml
from tests.utils.multi import models_everywhere
from tests.utils.procs import REPO
from tests.utils.redis_server import consecutive_free_ports, free_port
from tests.utils.wait import wait_for

EXAMPLE = os.path.join(REPO, "example", "cross_device_lenet_femnist")
SECURITY = {  # the seed's security keys (read only when enable_ssl is true; the example YAML has it false)
    "server_cert_path": "server.p12", "crl_path": "", "client_cert_path": "client.p12", "ca_cert_path": "ca.crt",
    "cert_expire_warning_time_in_day": 90, "cipher_list": "ECDHE-RSA-AES128-GCM-SHA256", "connection_num": 10000,
}


def run_example(script, *flags, cwd, env=None, timeout=120):
    out = subprocess.run([sys.executable, os.path.join(EXAMPLE, script), *flags], cwd=cwd,
                         env={**os.environ, "PYTHONPATH": REPO, **(env or {})}, capture_output=True, text=True,
                         timeout=timeout)
    return out.returncode, out.stdout, out.stderr


def launched(stdout):
    """{pid: {"node": node id, "tcp": tcp address, ...}} of the `... started successfully. pid=...` lines."""
    out = {}
    for line in stdout.splitlines():
        m = re.search(r"started successfully\. pid=(\d+)(.*)", line)
        if m:
            out[int(m.group(1))] = dict(kv.split("=", 1) for kv in m.group(2).split() if "=" in kv)
    return out


def gone(pid):
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def lenet_upload(value):
    return {name: np.full(int(np.prod(shape)), value, np.float32) for name, shape in LENET5_SHAPES.items()}


def test_seed001_command_lines_rest_iteration_recovery_and_finish(tmp_path, redis_server, fl_name, procs):
    config = tmp_path / "config.json"
    recovery_base = tmp_path / "recovery" / "config.json"
    config.write_text(json.dumps({**SECURITY, "recovery": {"storage_type": 1,
                                                            "storge_file_path": str(recovery_base)}}))
    scheduler_port, manage_port, first = free_port(), free_port(), consecutive_free_ports(2)
    common = ["--scheduler_ip=127.0.0.1", f"--scheduler_port={scheduler_port}", f"--fl_server_port={first}",
              "--server_num=2", f"--config_file_path={config}", f"--fl_name={fl_name}",
              f"--redis_address={redis_server.address}"]
    # a bystander cluster in the same Redis (its own fl_name and scheduler port) and an unrelated process
    other_yaml = write_yaml(tmp_path / "other", redis_server.address, f"{fl_name}_other")
    other_sched, other_address = start_scheduler(procs, other_yaml)
    other_port = int(other_address.rpartition(":")[2])
    sleeper = procs.python("sleeper", "-c", "import time; print('READY sleeper', flush=True); time.sleep(120)")
    sleeper.wait_ready(20)
    pids = set()
    try:
        code, out, err = run_example("run_sched.py", *common, f"--scheduler_manage_port={manage_port}",
                                     cwd=tmp_path)
        assert code == 0, out + err
        sched_pid, = launched(out)
        pids.add(sched_pid)
        manage = f"127.0.0.1:{manage_port}"
        code, out, err = run_example("run_server.py", *common, "--start_fl_job_threshold=2", cwd=tmp_path,
                                     env={"MS_NODE_ID": "seed"})
        assert code == 0, out + err
        servers = launched(out)
        assert out.count("Server started successfully.") == 2 and len(servers) == 2
        pids |= set(servers)
        # MS_NODE_ID is shared by the launcher's servers: each got its own id
        assert sorted(s["node"] for s in servers.values()) == ["seed_0", "seed_1"]
        assert sorted(s["http"] for s in servers.values()) == [f"127.0.0.1:{first}", f"127.0.0.1:{first + 1}"]

        # the REST API of the scheduler started with --fl_name (it would not find the cluster otherwise)
        status, nodes = call(manage, "nodes")
        assert status == 200 and nodes["message"] == "Get nodes info successful."
        entries = {n["nodeId"]: n for n in nodes["nodeIds"]}
        ranks = {k: v["rankId"] for k, v in entries.items() if v["role"] == "SERVER" and v["alive"] == "true"}
        assert sorted(ranks) == ["seed_0", "seed_1"] and sorted(ranks.values()) == ["0", "1"]
        assert [v["role"] for v in entries.values()].count("SCHEDULER") == 1
        status, state = call(manage, "state")
        assert status == 200 and state["cluster_state"] == "CLUSTER_READY"
        assert sorted(n["node_id"] for n in state["nodes"]) == ["seed_0", "seed_1"]
        for port, node in ((first, "seed_0"), (first + 1, "seed_1")):   # the `recovery` section is honoured
            saved = json.loads((tmp_path / "recovery" / f"config.json.{port}").read_text())
            assert (saved["node_id"], saved["fl_name"]) == (node, fl_name)

        # one device iteration over both servers (threshold 2 from --start_fl_job_threshold)
        a, b = f"127.0.0.1:{first}", f"127.0.0.1:{first + 1}"
        r = start_job(a, fl_name, "dev0", 1, 1)
        assert r.retcode == 200 and r.fl_plan.fl_name == fl_name and r.iteration == 1
        assert start_job(b, fl_name, "dev1", 1, 3).retcode == 200
        assert update(b, fl_name, "dev0", 1, lenet_upload(2.0 * 1)).retcode == 200
        assert update(a, fl_name, "dev1", 1, lenet_upload(4.0 * 3)).retcode == 200
        for m in models_everywhere([a, b], fl_name, 1, timeout=20):
            assert m.iteration == 2
            for name in LENET5_SHAPES:
                np.testing.assert_allclose(m.features[name].ravel(), (2.0 + 12.0) / 4, rtol=1e-6)

        # disaster recovery as in the seed: the server goes down and is restarted with its node id on its port
        (old_pid, old), = [(p, s) for p, s in servers.items() if s["node"] == "seed_1"]
        os.kill(old_pid, 9)
        wait_for(lambda: gone(old_pid), 10, what="the killed server gone")
        code, out, err = run_example("run_server.py", *common, "--start_fl_job_threshold=2", "--local_server_num=1",
                                     "--node_id=seed_1", f"--fl_server_port={first + 1}", cwd=tmp_path)
        assert code == 0, out + err
        restarted = launched(out)
        (new_pid, new), = restarted.items()
        pids.add(new_pid)
        # the line comes from the new process, not from its predecessor's READY line in the same log file
        assert new["node"] == "seed_1" and new["tcp"] != old["tcp"] and new_pid != old_pid
        wait_for(lambda: {n["nodeId"]: n["rankId"] for n in call(manage, "nodes")[1]["nodeIds"]
                          if n["role"] == "SERVER" and n["alive"] == "true"} == ranks,
                 15, what="seed_1 back with its rank")
        assert start_job(a, fl_name, "dev2", 2, 1).retcode == 200
        assert start_job(b, fl_name, "dev3", 2, 1).retcode == 200
        for fl_id in ("dev2", "dev3"):
            assert update(b, fl_name, fl_id, 2, lenet_upload(5.0)).retcode == 200
        for m in models_everywhere([a, b], fl_name, 2, timeout=20):
            np.testing.assert_allclose(m.features["fc3.bias"], 5.0, rtol=1e-6)

        # finish_cloud.py --scheduler_port as in the seed (Redis given by --redis_port)
        code, out, err = run_example("finish_cloud.py", f"--scheduler_port={scheduler_port}",
                                     f"--redis_port={redis_server.port}", cwd=tmp_path, timeout=60)
        assert code == 0, out + err
        killed = {int(x) for x in re.findall(r"^killed (\d+)$", out, re.M)}
        assert killed == {sched_pid, new_pid} | (set(servers) - {old_pid}), out + err
        for pid in killed:
            wait_for(lambda p=pid: gone(p), 10, what=f"pid {pid} gone")
        assert other_sched.alive() and sleeper.alive()
        assert call(other_address, "nodes")[0] == 200

        # the bystander cluster by its (manage) port, the Redis address read from its YAML
        code, out, err = run_example("finish_cloud.py", f"--scheduler_port={other_port}",
                                     f"--yaml_config={other_yaml}", cwd=tmp_path, timeout=60)
        assert code == 0, out + err
        assert out.split() == ["killed", str(other_sched.pid)]
        assert other_sched.wait_exit(10) == 0 and sleeper.alive()
    finally:
        for pid in pids:
            if not gone(pid):
                os.kill(pid, 9)
