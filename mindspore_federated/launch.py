"""Launchers behind example/…/run_server.py and run_sched.py: start role processes in the background, each
with its own log folder, and print one line per process once it is ready."""
import argparse
import os
import subprocess
import sys
import time

READY_TIMEOUT_S = 90.0


def _spawn(args, log_dir, env=None):
    """Starts `python <args>` detached (own session), stdout+stderr to <log_dir>/<role>.log."""
    os.makedirs(log_dir, exist_ok=True)
    log_path = os.path.join(log_dir, "server.log" if "server" in " ".join(args) else "scheduler.log")
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([sys.executable, *args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    log.close()
    return proc, log_path


def wait_ready(proc, log_path, timeout=READY_TIMEOUT_S):
    """The READY line of a child's log, or raises with the log's tail when it died or timed out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(log_path, "rb") as f:
            for line in f.read().decode("utf-8", "replace").splitlines():
                if line.startswith("READY "):
                    return line
                if line.startswith("FAILED "):
                    raise RuntimeError(line)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    with open(log_path, "rb") as f:
        tail = f.read().decode("utf-8", "replace").splitlines()[-15:]
    raise RuntimeError(f"process {proc.pid} did not become ready (exit={proc.poll()}):\n" + "\n".join(tail))


def server_parser():
    p = argparse.ArgumentParser(description="Start N FL servers on consecutive HTTP ports (in the background).")
    p.add_argument("--yaml_config", default=None)
    p.add_argument("--tcp_server_ip", default="127.0.0.1")
    p.add_argument("--checkpoint_dir", default="./fl_ckpt/")
    p.add_argument("--local_server_num", type=int, default=None)
    p.add_argument("--http_server_address", default=None)
    p.add_argument("--model", default="lenet")
    p.add_argument("--log_dir", default="logs")
    # seed-001 style flags
    p.add_argument("--scheduler_ip", default=None)
    p.add_argument("--scheduler_port", type=int, default=None, help="accepted for compatibility (unused)")
    p.add_argument("--scheduler_manage_port", type=int, default=None, help="accepted for compatibility")
    p.add_argument("--fl_server_port", type=int, default=None, help="first HTTP port")
    p.add_argument("--server_num", type=int, default=None, help="global number of servers (informational)")
    p.add_argument("--start_fl_job_threshold", type=int, default=None)
    p.add_argument("--fl_name", default=None)
    p.add_argument("--node_id", default=None, help="node id (prefix when several local servers)")
    p.add_argument("--config_file_path", default="")
    p.add_argument("--redis_address", default=None)
    return p


def _first_address(args):
    if args.fl_server_port is not None:
        ip = args.scheduler_ip or "127.0.0.1"
        return ip, args.fl_server_port
    host, _, port = (args.http_server_address or "127.0.0.1:6666").rpartition(":")
    return host, int(port)


def launch_servers(argv=None, default_yaml=None):
    """Entry of run_server.py; returns an exit code."""
    args = server_parser().parse_args(argv)
    yaml_config = args.yaml_config or default_yaml
    count = args.local_server_num or (1 if args.fl_server_port is None and args.server_num is None
                                      else args.server_num or 1)
    host, port = _first_address(args)
    started = []
    for i in range(count):
        address = f"{host}:{port + i}"
        cmd = ["-m", "mindspore_federated.server", "--yaml_config", yaml_config, "--http_server_address", address,
               "--tcp_server_ip", args.tcp_server_ip, "--checkpoint_dir", args.checkpoint_dir, "--model", args.model]
        for flag in ("start_fl_job_threshold", "fl_name", "config_file_path", "redis_address"):
            if getattr(args, flag):
                cmd += [f"--{flag}", str(getattr(args, flag))]
        if args.node_id:
            cmd += ["--node_id", args.node_id if count == 1 else f"{args.node_id}{i}"]
        proc, log_path = _spawn(cmd, os.path.join(args.log_dir, f"server_{port + i}"))
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
    p = argparse.ArgumentParser(description="Start the scheduler (in the background).")
    p.add_argument("--yaml_config", default=None)
    p.add_argument("--scheduler_manage_address", default=None)
    p.add_argument("--scheduler_ip", default=None)
    p.add_argument("--scheduler_manage_port", type=int, default=None)
    p.add_argument("--log_dir", default="logs")
    args, rest = p.parse_known_args(argv)
    cmd = ["-m", "mindspore_federated.scheduler", "--yaml_config", args.yaml_config or default_yaml]
    address = args.scheduler_manage_address
    if address is None:
        address = f"{args.scheduler_ip or '127.0.0.1'}:{args.scheduler_manage_port or 11202}"
    cmd += ["--scheduler_manage_address", address]
    proc, log_path = _spawn(cmd, os.path.join(args.log_dir, "scheduler"))
    try:
        line = wait_ready(proc, log_path)
    except RuntimeError as exc:
        print(f"Scheduler failed to start: {exc}", flush=True)
        return 1
    print(f"Scheduler started successfully. pid={proc.pid} {line[len('READY scheduler '):]}", flush=True)
    return 0
