"""Launchers behind example/…/run_server.py and run_sched.py: start role processes in the background, each
with its own log folder, and print one line per process once it is ready."""
import argparse
import os
import subprocess
import sys
import time

from mindspore_federated.address import split_host_port

READY_TIMEOUT_S = 90.0


def _spawn(args, log_dir, env=None, drop_env=()):
    """Starts `python <args>` detached (own session), stdout+stderr to <log_dir>/<role>.log."""
    os.makedirs(log_dir, exist_ok=True)
    log_path = os.path.join(log_dir, "server.log" if "mindspore_federated.server" in args else "scheduler.log")
    child_env = {k: v for k, v in os.environ.items() if k not in drop_env}
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child
    offset = log.seek(0, os.SEEK_END)  # appended to: a restart must not see its predecessor's READY line
    proc = subprocess.Popen([sys.executable, *args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, env={**child_env, "PYTHONUNBUFFERED": "1", **(env or {})})
    proc.log_offset = offset
    log.close()
    return proc, log_path


def wait_ready(proc, log_path, timeout=READY_TIMEOUT_S):
    """The READY line this child wrote to its log, or raises with the log's tail when it died or timed out."""
    deadline = time.monotonic() + timeout
    offset = getattr(proc, "log_offset", 0)
    while time.monotonic() < deadline:
        with open(log_path, "rb") as f:
            f.seek(offset)
            for line in f.read().decode("utf-8", "replace").splitlines():
                if line.startswith("READY "):
                    return line
                if line.startswith("FAILED "):
                    raise RuntimeError(line)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    with open(log_path, "rb") as f:
        f.seek(offset)
        tail = f.read().decode("utf-8", "replace").splitlines()[-15:]
    raise RuntimeError(f"process {proc.pid} did not become ready (exit={proc.poll()}):\n" + "\n".join(tail))


def _add_common_flags(p):
    """Flags both launchers accept (seed 000 and seed 001 command lines)."""
    p.add_argument("--yaml_config", default=None, help="YAML configuration (default: the example's lenet.yaml)")
    p.add_argument("--log_dir", default="logs")
    p.add_argument("--scheduler_ip", default=None,
                   help="seed 001: IP of the scheduler's REST API; for run_server.py also the HTTP/TCP IP of "
                        "the servers started here (default 127.0.0.1)")
    p.add_argument("--scheduler_port", type=int, default=None,
                   help="seed 001: the cluster's scheduler port; the scheduler records it so that "
                        "`finish_cloud.py --scheduler_port` finds the cluster")
    p.add_argument("--scheduler_manage_port", type=int, default=None, help="seed 001: port of the REST API")
    p.add_argument("--fl_server_port", type=int, default=None, help="seed 001: first HTTP port of the servers")
    p.add_argument("--server_num", type=int, default=None,
                   help="seed 001: global number of servers (run_server.py starts that many when "
                        "--local_server_num is not given)")
    p.add_argument("--local_server_num", type=int, default=None, help="servers to start on this host")
    p.add_argument("--start_fl_job_threshold", type=int, default=None, help="overrides the YAML")
    p.add_argument("--fl_name", default=None, help="overrides fl_name of the YAML")
    p.add_argument("--config_file_path", default="",
                   help="seed 001: JSON config (ssl keys, `recovery` section with storage_type 1 and "
                        "storage_file_path)")
    p.add_argument("--redis_address", default=None, help="overrides distributed_cache.address of the YAML")
    return p


def server_parser():
    p = argparse.ArgumentParser(description="Start N FL servers on consecutive HTTP ports (in the background).")
    _add_common_flags(p)
    p.add_argument("--tcp_server_ip", default=None, help="IP of the inter-server TCP port (default: the HTTP IP)")
    p.add_argument("--checkpoint_dir", default="./fl_ckpt/")
    p.add_argument("--http_server_address", default=None, help="ip:port of the first server (seed 000)")
    p.add_argument("--model", default="lenet")
    p.add_argument("--node_id", default=None,
                   help="node id of the server (default: $MS_NODE_ID, else the recovery file or a generated "
                        "id); with several local servers each gets `<id>_<index>`")
    return p


def scheduler_parser():
    p = argparse.ArgumentParser(description="Start the scheduler (in the background).")
    _add_common_flags(p)
    p.add_argument("--scheduler_manage_address", default=None, help="ip:port of the REST API (seed 000)")
    return p


def _first_address(args):
    if args.fl_server_port is not None:
        ip = args.scheduler_ip or "127.0.0.1"
        return ip, args.fl_server_port
    return split_host_port(args.http_server_address or "127.0.0.1:6666")


def server_node_ids(base, count):
    """The node id of each of `count` local servers: `base` itself for one, `<base>_<i>` for several."""
    if not base:
        return [None] * count
    return [base] if count == 1 else [f"{base}_{i}" for i in range(count)]


def launch_servers(argv=None, default_yaml=None):
    """Entry of run_server.py; returns an exit code."""
    args = server_parser().parse_args(argv)
    yaml_config = args.yaml_config or default_yaml
    count = args.local_server_num or (1 if args.fl_server_port is None and args.server_num is None
                                      else args.server_num or 1)
    host, port = _first_address(args)
    tcp_ip = args.tcp_server_ip or host
    node_ids = server_node_ids(args.node_id or os.environ.get("MS_NODE_ID"), count)
    started = []
    for i in range(count):
        address = f"{host}:{port + i}"
        cmd = ["-m", "mindspore_federated.server", "--yaml_config", yaml_config, "--http_server_address", address,
               "--tcp_server_ip", tcp_ip, "--checkpoint_dir", args.checkpoint_dir, "--model", args.model]
        for flag in ("start_fl_job_threshold", "fl_name", "config_file_path", "redis_address"):
            if getattr(args, flag):
                cmd += [f"--{flag}", str(getattr(args, flag))]
        if node_ids[i]:
            cmd += ["--node_id", node_ids[i]]
        # the id is passed explicitly: a shared MS_NODE_ID must not reach the children
        proc, log_path = _spawn(cmd, os.path.join(args.log_dir, f"server_{port + i}"), drop_env=("MS_NODE_ID",))
        started.append((proc, log_path, address))
        time.sleep(0.05)
    code = 0
    for proc, log_path, address in started:
        try:
            line = wait_ready(proc, log_path)
            print(f"Server started successfully. pid={proc.pid} {line[len('READY server '):]}", flush=True)
        except RuntimeError as exc:
            print(f"Server {address} failed to start: {exc}", flush=True)
            code = 1
    return code


def launch_scheduler(argv=None, default_yaml=None):
    """Entry of run_sched.py: starts the scheduler in the background; returns an exit code."""
    args = scheduler_parser().parse_args(argv)
    cmd = ["-m", "mindspore_federated.scheduler", "--yaml_config", args.yaml_config or default_yaml]
    address = args.scheduler_manage_address
    if address is None:
        address = f"{args.scheduler_ip or '127.0.0.1'}:{args.scheduler_manage_port or 11202}"
    cmd += ["--scheduler_manage_address", address]
    for flag in ("scheduler_port", "fl_name", "config_file_path", "redis_address"):
        if getattr(args, flag):
            cmd += [f"--{flag}", str(getattr(args, flag))]
    proc, log_path = _spawn(cmd, os.path.join(args.log_dir, "scheduler"))
    try:
        line = wait_ready(proc, log_path)
    except RuntimeError as exc:
        print(f"Scheduler failed to start: {exc}", flush=True)
        return 1
    print(f"Scheduler started successfully. pid={proc.pid} {line[len('READY scheduler '):]}", flush=True)
    return 0
