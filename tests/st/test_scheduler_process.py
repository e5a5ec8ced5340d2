"""Scheduler, CLI and finish_cloud as real processes against a real redis-server over real HTTP."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import redis

from mindspore_federated import errors
from mindspore_federated import scheduler as sched
from mindspore_federated.exit_codes import ExitCode
from mindspore_federated.state.keys import InstanceState, Keys
from mindspore_federated.tools import proc_registry
from mindspore_federated.tools.fake_cluster import FakeCluster
from tests.utils.cluster import write_yaml
from tests.utils.procs import REPO
from tests.utils.redis_server import free_port
from tests.utils.wait import wait_for

SLEEPER = """
import signal, sys, time, redis
from mindspore_federated.state.keys import Keys
from mindspore_federated.tools.proc_registry import registration_json
port, fl_name, node_id, ignore_term = sys.argv[1:5]
if ignore_term == "1":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
client = redis.Redis(port=int(port))
client.hset(Keys(fl_name).processes, node_id, registration_json("SERVER"))
client.close()
print("READY sleeper", flush=True)
time.sleep(120)
"""
UNRELATED = "import time; print('READY unrelated', flush=True); time.sleep(120)"


def http(address, path, body=None):
    """(status, decoded JSON) of one scheduler request."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://{address}{path}", data=data, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.headers["Content-Type"] == "application/json"
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


def start_scheduler(procs, yaml_path, port, name="sched"):
    address = f"127.0.0.1:{port}"
    proc = procs.python(name, "-m", "mindspore_federated.scheduler", "--yaml_config", yaml_path,
                        "--scheduler_manage_address", address)
    assert proc.wait_ready(timeout=20).endswith(f"READY scheduler {address}")
    return proc, address


def run_module(module, *args, timeout=30):
    """Runs `python -m module args` to completion (bounded) and returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", module, *args], check=False, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": REPO}, timeout=timeout, cwd=REPO)


def cli(*args):
    res = run_module("mindspore_federated.cli", *args)
    return res.returncode, res.stdout, res.stderr


def finish_cloud(*args):
    return run_module("mindspore_federated.tools.finish_cloud", *args)


def sync_redis(server):
    return redis.Redis(port=server.port, decode_responses=True)


def registration(client, fl_name, node_id):
    raw = client.hget(Keys(fl_name).processes, node_id)
    return json.loads(raw) if raw else None


def test_scheduler_process_lifecycle(redis_server, fl_name, procs, tmp_path):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name)
    proc, address = start_scheduler(procs, yaml_path, free_port())
    client = sync_redis(redis_server)
    entry = registration(client, fl_name, f"scheduler:{address}")
    assert entry["pid"] == proc.pid and entry["role"] == "SCHEDULER"
    assert entry["start_time"] == proc_registry.start_time(proc.pid) and entry["host"] == socket.gethostname()
    assert http(address, "/state") == (400, {"code": "1",
                                             "error_message": errors.SCHED_NO_CLUSTER.format(fl_name=fl_name)})
    cluster = FakeCluster(client, fl_name)
    cluster.bootstrap()
    node = cluster.add_server()
    status, reply = http(address, "/state")
    assert status == 200 and reply["cluster_state"] == "CLUSTER_READY" and reply["nodes"][0]["node_id"] == node
    proc.send(signal.SIGTERM)
    assert proc.wait_exit(timeout=15) == 0
    assert registration(client, fl_name, f"scheduler:{address}") is None
    client.close()


def test_restart_keeps_answering_from_redis(redis_server, fl_name, procs, tmp_path):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name)
    port = free_port()
    first, address = start_scheduler(procs, yaml_path, port, name="sched1")
    client = sync_redis(redis_server)
    FakeCluster(client, fl_name).bootstrap()
    assert http(address, "/disableFLS")[0] == 200
    assert http(address, "/scaleout", {"server_num": 1, "worker_num": 0})[0] == 200
    first.kill()  # crash: no deregistration
    assert registration(client, fl_name, f"scheduler:{address}")["pid"] == first.pid
    second, _ = start_scheduler(procs, yaml_path, port, name="sched2")
    assert registration(client, fl_name, f"scheduler:{address}")["pid"] == second.pid
    status, reply = http(address, "/state")
    assert status == 200 and reply["cluster_state"] == "CLUSTER_SCALE_OUT"
    FakeCluster(client, fl_name).add_server()
    assert http(address, "/state")[1]["cluster_state"] == "CLUSTER_DISABLE"
    assert http(address, "/disableFLS")[1]["error_message"] == errors.SCHED_ALREADY_DISABLED
    assert second.stop() == 0
    client.close()


def test_redis_outage_then_recovery(fresh_redis, fl_name, procs, tmp_path):
    yaml_path = write_yaml(tmp_path, fresh_redis.address, fl_name)
    proc, address = start_scheduler(procs, yaml_path, free_port())
    FakeCluster(sync_redis(fresh_redis), fl_name).bootstrap()
    assert http(address, "/state")[0] == 200
    fresh_redis.kill()
    for path in ("/state", "/enableFLS", "/queryInstance", "/nodes"):
        assert http(address, path) == (400, {"code": "1", "error_message": errors.SCHED_CACHE})
    assert proc.alive()
    fresh_redis.restart()
    client = sync_redis(fresh_redis)
    wait_for(lambda: registration(client, fl_name, f"scheduler:{address}"), timeout=10,
             what="the scheduler re-registering after the Redis restart")
    assert http(address, "/state")[1]["error_message"] == errors.SCHED_NO_CLUSTER.format(fl_name=fl_name)
    FakeCluster(client, fl_name).bootstrap()
    assert http(address, "/state")[1]["cluster_state"] == "CLUSTER_READY"
    assert proc.stop() == 0
    client.close()


def raw_request(address, head, body_chunks=(), timeout=30.0):
    """Sends `head` (request line + headers) and then `body_chunks` over one socket; returns (status, body)."""
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as conn:
        conn.sendall(head.encode())
        try:
            for chunk in body_chunks:
                conn.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the scheduler answered (and closed) before the whole body was sent
        reply = b""
        while b"\r\n\r\n" not in reply:
            data = conn.recv(65536)
            assert data, f"connection closed before a reply: {reply!r}"
            reply += data
        header, _, rest = reply.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", header).group(1))
        while len(rest) < length:
            data = conn.recv(65536)
            assert data, "connection closed inside the reply body"
            rest += data
        return int(header.split()[1]), rest[:length]


def post_head(path, length=None, chunked=False):
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}"
    return f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"


def test_body_limit_and_unknown_paths_on_a_real_process(redis_server, fl_name, procs, tmp_path):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name)
    _, address = start_scheduler(procs, yaml_path, free_port())
    client = sync_redis(redis_server)
    FakeCluster(client, fl_name).bootstrap()
    too_big = {"code": "1", "error_message": "The post message is bigger than 100mb."}
    limit = 100 * 1024 * 1024
    # one byte over the limit, announced by Content-Length: refused before the body is read
    status, body = raw_request(address, post_head("/newInstance", limit + 1))
    assert (status, json.loads(body)) == (400, too_big)
    # one byte over the limit, streamed without a length: refused once the limit is passed
    chunk = b" " * (1 << 20)
    frames = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 100 + [b"1\r\n \r\n0\r\n\r\n"]
    status, body = raw_request(address, post_head("/newInstance", chunked=True), frames)
    assert (status, json.loads(body)) == (400, too_big)
    # exactly the limit is accepted: a JSON object padded with whitespace to 100 MiB starts a new instance
    doc = b'{"fl_iteration_num": 7}'
    pad = limit - len(doc)
    frames = [doc] + [b" " * (1 << 20)] * (pad >> 20) + [b" " * (pad & ((1 << 20) - 1))]
    status, body = raw_request(address, post_head("/newInstance", limit), frames)
    assert (status, json.loads(body)) == (200, {"code": "0", "message": errors.SCHED_NEW_INSTANCE_OK})
    assert http(address, "/queryInstance")[1]["result"]["fl_iteration_num"] == 7
    # unknown paths: 404 for any method, and the process keeps serving
    for method in ("GET", "POST"):
        req = urllib.request.Request(f"http://{address}/nodes/extra", data=b"{}" if method == "POST" else None,
                                     method=method)
        try:
            urllib.request.urlopen(req, timeout=10).close()
            raise AssertionError(f"{method} of an unknown path did not fail")
        except urllib.error.HTTPError as err:
            with err:
                assert err.code == 404
    assert http(address, "/state")[0] == 200
    client.close()


def test_start_failures_and_older_flags(redis_server, fl_name, procs, tmp_path):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name)
    bad = procs.python("bad", "-m", "mindspore_federated.scheduler", "--yaml_config", yaml_path,
                       "--scheduler_manage_address", "127.0.0.1:99999")
    assert bad.wait_exit(timeout=20) == ExitCode.SCHEDULER_START_FAILED
    assert errors.SCHED_BAD_ADDRESS.format(address="127.0.0.1:99999") in bad.output()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = procs.python("taken", "-m", "mindspore_federated.scheduler", "--yaml_config", yaml_path,
                             "--scheduler_manage_address", f"127.0.0.1:{port}")
        assert taken.wait_exit(timeout=20) == ExitCode.SCHEDULER_START_FAILED
    assert sched.BIND_FAILED.format(address=f"127.0.0.1:{port}", reason="") in taken.output()
    assert registration(sync_redis(redis_server), fl_name, f"scheduler:127.0.0.1:{port}") is None
    port = free_port()
    other_fl = f"{fl_name}_seed001"
    older = procs.python("older", "-m", "mindspore_federated.scheduler", "--yaml_config", yaml_path,
                         "--scheduler_ip", "127.0.0.1", "--scheduler_manage_port", str(port),
                         "--scheduler_port", "6667", "--server_num", "4", "--fl_name", other_fl)
    assert older.wait_ready(timeout=20).endswith(f"READY scheduler 127.0.0.1:{port}")
    assert "--server_num is not used by this scheduler and is ignored" in older.output()
    entry = registration(sync_redis(redis_server), other_fl, f"scheduler:127.0.0.1:{port}")
    assert (entry["scheduler_port"], entry["fl_name"]) == (6667, other_fl)   # --fl_name applied
    assert http(f"127.0.0.1:{port}", "/state")[1]["error_message"] == errors.SCHED_NO_CLUSTER.format(
        fl_name=other_fl)
    assert older.stop() == 0
    unknown = procs.python("unknown", "-m", "mindspore_federated.scheduler", "--yaml_config", yaml_path,
                           "--scheduler_manage_address", f"127.0.0.1:{free_port()}", "--no_such_flag", "1")
    assert unknown.wait_exit(timeout=20) == 2 and "unrecognized arguments: --no_such_flag" in unknown.output()


def test_cli_commands_and_exit_codes(redis_server, fl_name, procs, tmp_path):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name)
    _, address = start_scheduler(procs, yaml_path, free_port())
    client = sync_redis(redis_server)
    cluster = FakeCluster(client, fl_name)
    cluster.bootstrap()
    node = cluster.add_server()
    cluster.add_server()
    code, out, _ = cli("state", "--address", address)
    assert code == 0 and json.loads(out)["cluster_state"] == "CLUSTER_READY"
    code, out, _ = cli("enable", "--address", address)
    assert code == 1 and json.loads(out)["error_message"] == errors.SCHED_ALREADY_ENABLED
    assert cli("disable", "--address", address)[0] == 0
    assert cluster.r.hget(Keys(fl_name).status(cluster.instance), "runningState") == str(InstanceState.DISABLE)
    assert cli("enable", "--address", address)[0] == 0
    code, out, _ = cli("new-instance", "--address", address, "--param", "start_fl_job_threshold=3",
                       "--param", "client_learning_rate=0.05,fl_iteration_num=9")
    assert code == 0 and json.loads(out)["message"] == errors.SCHED_NEW_INSTANCE_OK
    code, out, _ = cli("query", "--address", address)
    result = json.loads(out)["result"]
    assert code == 0 and (result["start_fl_job_threshold"], result["client_learning_rate"],
                          result["fl_iteration_num"]) == (3, 0.05, 9)
    code, out, _ = cli("new-instance", "--address", address, "--param", "update_model_ratio=2")
    assert code == 1 and json.loads(out)["error_message"] == errors.SCHED_NEW_INSTANCE_FAILED.format(
        reason=errors.SCHED_FIELD_RATIO)
    cluster.add_server()  # servers re-register under the new instance
    code, out, _ = cli("nodes", "--address", address)
    assert code == 0 and [n["role"] for n in json.loads(out)["nodeIds"]] == ["SERVER", "SCHEDULER"]
    assert cli("scale-out", "--address", address, "--server-num", "1")[0] == 0
    assert json.loads(cli("state", "--address", address)[1])["cluster_state"] == "CLUSTER_SCALE_OUT"
    code, out, _ = cli("scale-in", "--address", address, "--node-ids", node)
    assert code == 1 and json.loads(out)["error_message"] == sched.NOT_READY
    code, _, err = cli("state", "--address", f"127.0.0.1:{free_port()}")
    assert code == 2 and "cannot reach the scheduler" in err
    client.close()


def _register(client, fl_name, node_id, entry):
    client.hset(Keys(fl_name).processes, node_id, json.dumps(entry))


def test_finish_cloud_stops_exactly_the_registered_processes(fresh_redis, fl_name, procs, tmp_path):
    client = sync_redis(fresh_redis)
    other_fl = f"{fl_name}_other"
    yaml_path = write_yaml(tmp_path, fresh_redis.address, fl_name)
    scheduler, _ = start_scheduler(procs, yaml_path, free_port())
    port = str(fresh_redis.port)
    polite = procs.python("polite", "-c", SLEEPER, port, fl_name, "server-a", "0")
    stubborn = procs.python("stubborn", "-c", SLEEPER, port, fl_name, "server-b", "1")
    elsewhere = procs.python("elsewhere", "-c", SLEEPER, port, other_fl, "server-c", "0")
    unrelated = procs.python("unrelated", "-c", UNRELATED)
    for proc in (polite, stubborn, elsewhere, unrelated):
        proc.wait_ready(timeout=20)
    dead_pid = subprocess.Popen([sys.executable, "-c", "pass"])  # its PID is free once it exits
    dead_pid.wait(timeout=10)
    reused = proc_registry.registration("SERVER", pid=unrelated.pid)
    reused["start_time"] += 1
    unverifiable = {k: v for k, v in reused.items() if k != "start_time"}
    foreign = {**proc_registry.registration("SERVER", pid=unrelated.pid), "host": "some-other-host"}
    gone = {**proc_registry.registration("SERVER", pid=dead_pid.pid), "start_time": 1}
    for node_id, entry in (("reused", reused), ("unverifiable", unverifiable), ("foreign", foreign),
                           ("gone", gone)):
        _register(client, fl_name, node_id, entry)

    res = finish_cloud("--redis_port", port, "--fl_name", fl_name, "--timeout", "1")
    assert res.returncode == 0, res.stderr
    killed = {int(line.split()[1]) for line in res.stdout.splitlines() if line.startswith("killed ")}
    assert killed == {scheduler.pid, polite.pid, stubborn.pid}
    assert scheduler.wait_exit(timeout=5) == 0  # graceful: SIGTERM
    assert stubborn.wait_exit(timeout=5) == -signal.SIGKILL
    assert polite.wait_exit(timeout=5) == -signal.SIGTERM
    assert unrelated.alive() and elsewhere.alive()
    assert set(client.hkeys(Keys(fl_name).processes)) == {"unverifiable", "foreign"}
    assert "removed stale entry reused" in res.stderr and "removed stale entry gone" in res.stderr

    res = finish_cloud("--redis_port", port, "--scheduler_port", "1", "--timeout", "1")
    assert res.returncode == 0 and "killed" not in res.stdout and elsewhere.alive()
    res = finish_cloud("--redis_port", port, "--timeout", "1")
    assert res.returncode == 0 and res.stdout.split() == ["killed", str(elsewhere.pid)]
    assert elsewhere.wait_exit(timeout=5) == -signal.SIGTERM and unrelated.alive()
    assert not client.exists(Keys(other_fl).processes)
    assert unrelated.stop() == -signal.SIGTERM
    client.close()


def test_finish_cloud_unreachable_redis():
    res = finish_cloud("--redis_port", str(free_port()))
    assert res.returncode == 2 and "cannot use Redis" in res.stderr


def test_fl_scheduler_job_process(redis_server, fl_name, procs, tmp_path):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name)
    address = f"127.0.0.1:{free_port()}"
    job = procs.python("job", "-c", "import sys; from mindspore_federated import FlSchedulerJob; "
                       "FlSchedulerJob(yaml_config=sys.argv[1], manage_address=sys.argv[2]).run()",
                       yaml_path, address)
    job.wait_ready(timeout=20)
    assert http(address, "/nodes")[1]["nodeIds"][-1]["nodeId"] == f"scheduler:{address}"
    job.send(signal.SIGINT)
    assert job.wait_exit(timeout=5) == 0
