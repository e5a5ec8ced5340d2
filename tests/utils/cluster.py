"""Cluster helpers for system tests: YAML files, server/scheduler processes, and a tiny device client."""
import json
import os
import urllib.request

import yaml

from tests.utils.redis_server import free_port
from tests.utils.wait import wait_for

BASE_CONFIG = {
    "fl_name": "Lenet",
    "fl_iteration_num": 5,
    "server_mode": "FEDERATED_LEARNING",
    "enable_ssl": False,
    "distributed_cache": {"type": "redis", "address": "127.0.0.1:6379"},
    "round": {"start_fl_job_threshold": 2, "start_fl_job_time_window": 30000, "update_model_ratio": 1.0,
              "update_model_time_window": 30000, "global_iteration_time_window": 60000},
    "summary": {"metrics_file": "metrics.json", "failure_event_file": "event.txt"},
    "client": {"client_epoch_num": 1, "client_batch_size": 16, "client_learning_rate": 0.01},
}


def _merge(base, overrides):
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def write_yaml(directory, redis_address, fl_name, **overrides):
    """Writes a server/scheduler YAML under `directory` and returns its path."""
    cfg = _merge(BASE_CONFIG, {"fl_name": fl_name, "distributed_cache": {"address": redis_address}})
    cfg = _merge(cfg, overrides)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(str(directory), f"{fl_name}.yaml")
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(cfg, f)
    return path


def start_server(procs, yaml_path, workdir, name="server", http_port=None, model="lenet", extra=(),
                 entry=("-m", "mindspore_federated.server"), env=None):
    """Starts a server process in `workdir`; returns (process, http address) once it is READY."""
    http_port = http_port or free_port()
    address = f"127.0.0.1:{http_port}"
    os.makedirs(workdir, exist_ok=True)
    args = [*entry, "--yaml_config", yaml_path, "--http_server_address", address,
            "--checkpoint_dir", os.path.join(str(workdir), "fl_ckpt"), *extra]
    if entry[-1] == "mindspore_federated.server":
        args += ["--model", model]
    proc = procs.python(name, *args, cwd=str(workdir), env=env)
    proc.wait_ready(timeout=60)
    return proc, address


def post(address, name, body, timeout=10.0, prefix="/"):
    """POSTs a body to a device round; returns (status, reply bytes)."""
    req = urllib.request.Request(f"http://{address}{prefix}{name}", data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# ---- a tiny device client (the wire format of mindspore_federated.client.messages) ------------------------

SUCCEED = 200


def start_job(address, fl_name, fl_id, iteration=1, data_size=10):
    from mindspore_federated.client import messages as m

    status, body = post(address, "startFLJob", m.build_start_fl_job(fl_name, fl_id, iteration, data_size))
    assert status == 200
    return m.parse_start_fl_job(body)


def update(address, fl_name, fl_id, iteration, features, loss=0.0, acc=0.0):
    from mindspore_federated.client import messages as m

    status, body = post(address, "updateModel", m.build_update_model(fl_name, fl_id, iteration, features,
                                                                       upload_loss=loss, upload_accuracy=acc))
    assert status == 200
    return m.parse_update_model(body)


def get_model(address, fl_name, iteration):
    from mindspore_federated.client import messages as m

    status, body = post(address, "getModel", m.build_get_model(fl_name, iteration))
    assert status == 200
    return m.parse_get_model(body)


def wait_model(address, fl_name, iteration, timeout=10.0):
    """The getModel reply of `iteration` once `address` serves it."""
    return wait_for(lambda: (r := get_model(address, fl_name, iteration)).retcode == SUCCEED and r,
                    timeout, what=f"model of iteration {iteration} on {address}")


def health(address):
    """A server's /healthz JSON (node id, iteration, instance, cache_ok, running_state)."""
    with urllib.request.urlopen(f"http://{address}/healthz", timeout=2) as resp:
        return json.loads(resp.read())


# ---- the scheduler's REST API ------------------------------------------------------------------------

def call(address, path, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://{address}/{path}", data=data, method="POST" if data else "GET")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def start_scheduler(procs, yaml_path, env=None):
    address = f"127.0.0.1:{free_port()}"
    proc = procs.python("scheduler", "-m", "mindspore_federated.scheduler", "--yaml_config", yaml_path,
                        "--scheduler_manage_address", address, env=env)
    proc.wait_ready(30)
    return proc, address
