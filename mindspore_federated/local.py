"""One-command local cluster (`./build.sh run`): a private redis-server, a scheduler, N servers and simulated
phones training LeNet5 on non-IID digits; one progress bar and one line per iteration; everything stopped at
the end or on Ctrl-C. `--mode hybrid`: HYBRID_TRAINING, plus one MindSpore worker refining each iteration's
device aggregate on held-out digits (example/hybrid_lenet)."""
import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE_YAML = os.path.join(REPO, "example", "cross_device_lenet_femnist", "yamls", "lenet.yaml")
HYBRID_WORKER = os.path.join(REPO, "example", "hybrid_lenet", "run_worker.py")
READY_TIMEOUT_S = 90.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Child:
    """A role process started by PID, with its output in a log file and a READY handshake."""

    def __init__(self, name, args, log_path, cwd):
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     cwd=cwd, env=env, start_new_session=True)

    def wait_ready(self, needle="READY ", timeout=READY_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            for line in text.splitlines():
                if line.startswith(needle):
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        tail = "\n".join(text.splitlines()[-20:])
        raise RuntimeError(f"{self.name} did not start (log {self.log_path}):\n{tail}")

    def stop(self, timeout=10.0):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def start_redis(workdir):
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed (./build.sh installs it)")
    port = free_port()
    data = os.path.join(workdir, "redis")
    os.makedirs(data, exist_ok=True)
    child = Child("redis-server", [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                                   "no", "--dir", data], os.path.join(workdir, "redis.log"), workdir)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(7).startswith(b"+PONG"):
                    return child, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    child.stop()
    raise RuntimeError("redis-server did not answer PING within 10 s")


def write_config(workdir, redis_address, args):
    with open(args.yaml_config or EXAMPLE_YAML, encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    cfg["fl_name"] = args.fl_name
    cfg["fl_iteration_num"] = args.iterations
    cfg["server_mode"] = "HYBRID_TRAINING" if args.mode == "hybrid" else "FEDERATED_LEARNING"
    cfg["distributed_cache"]["address"] = redis_address
    cfg["round"].update(start_fl_job_threshold=args.devices, update_model_ratio=1.0,
                        start_fl_job_time_window=600000, update_model_time_window=600000,
                        global_iteration_time_window=1200000)
    cfg.setdefault("client", {}).update(client_epoch_num=args.epochs, client_batch_size=args.batch_size,
                                        client_learning_rate=args.lr)
    _set_encrypt(cfg, args)
    if args.compress:
        cfg["compression"] = {"upload_compress_type": "DIFF_SPARSE_QUANT", "upload_sparse_rate": 0.4,
                              "download_compress_type": "QUANT"}
    cfg["summary"].update(metrics_file=os.path.join(workdir, "metrics.json"),
                          failure_event_file=os.path.join(workdir, "event.txt"))
    path = os.path.join(workdir, "lenet.yaml")
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    return path


def _set_encrypt(cfg, args):
    """--encrypt: the privacy mode (PW: secrets shared by half the devices are needed to unmask)."""
    encrypt = cfg.setdefault("encrypt", {})
    encrypt["encrypt_type"] = args.encrypt
    if args.encrypt in ("PW_ENCRYPT", "STABLE_PW_ENCRYPT"):
        encrypt.setdefault("pw_encrypt", {}).update(
            share_secrets_ratio=1.0, cipher_time_window=600000,
            reconstruct_secrets_threshold=max(1, min(args.devices - 1, args.devices // 2)))


class Progress:
    """Draws `[#####.....] k/N updates` for the current iteration from the cluster's Redis counters."""

    def __init__(self, redis_address, fl_name, total, stream=sys.stderr):
        from mindspore_federated.state.clients import RedisSettings, make_sync_client
        from mindspore_federated.state.keys import Keys

        self.client = make_sync_client(RedisSettings.from_address(redis_address), socket_timeout=1)
        self.keys = Keys(fl_name)
        self.total = total
        self.stream = stream
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.enabled = stream.isatty()

    def start(self):
        if self.enabled:
            self._thread.start()

    def _count(self):
        inst = self.client.get(self.keys.instance_name)
        if not inst:
            return None, 0
        inst = inst.decode()
        it = int(self.client.hget(self.keys.status(inst), "iterationNum") or 0)
        done = sum(int(v) for v in self.client.hvals(self.keys.server_count(inst, it, "updateModel")))
        return it, done

    def _run(self):
        while not self._stop.wait(0.2):
            try:
                it, done = self._count()
            except Exception:  # noqa: BLE001 - the bar is cosmetic
                continue
            if it is None:
                continue
            width = 30
            filled = int(width * min(done, self.total) / max(1, self.total))
            self.stream.write(f"\r  iteration {it:3d} [{'#' * filled}{'.' * (width - filled)}] "
                              f"{done}/{self.total} updates ")
            self.stream.flush()

    def clear(self):
        if self.enabled:
            self.stream.write("\r" + " " * 70 + "\r")
            self.stream.flush()

    def stop(self):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)
        self.clear()
        self.client.close()


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="mindspore_federated.local", description=__doc__)
    p.add_argument("--example", default="lenet", choices=["lenet"])
    p.add_argument("--mode", default="fl", choices=["fl", "hybrid"],
                   help="fl: devices only; hybrid: devices and a MindSpore worker (HYBRID_TRAINING)")
    p.add_argument("--worker_steps", type=int, default=8, help="hybrid: worker training steps per iteration")
    p.add_argument("--servers", type=int, default=2)
    p.add_argument("--devices", type=int, default=10)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--fl_name", default="Lenet")
    p.add_argument("--yaml_config", default=None, help="base YAML (default: the example's lenet.yaml)")
    p.add_argument("--redis_address", default=None, help="use this Redis instead of starting a private one")
    p.add_argument("--workdir", default=None, help="logs, metrics and checkpoints (default: logs/local_<time>)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--encrypt", default="NOT_ENCRYPT",
                   choices=["NOT_ENCRYPT", "PW_ENCRYPT", "STABLE_PW_ENCRYPT", "DP_ENCRYPT", "SIGNDS"],
                   help="privacy mode of the cluster (the phones follow the plan; DP_ENCRYPT phones add noise)")
    p.add_argument("--compress", action="store_true",
                   help="both compressions: QUANT downloads and DIFF_SPARSE_QUANT uploads (rate 0.4)")
    return p.parse_args(argv)


def _say(text):
    print(text, flush=True)


def run(args):
    workdir = os.path.abspath(args.workdir or os.path.join("logs", time.strftime("local_%Y%m%d_%H%M%S")))
    os.makedirs(workdir, exist_ok=True)
    children, progress = [], None
    try:
        if args.redis_address:
            redis_address = args.redis_address
        else:
            redis_child, redis_address = start_redis(workdir)
            children.append(redis_child)
        _say(f"redis      {redis_address}")
        yaml_path = write_config(workdir, redis_address, args)
        sched_address = f"127.0.0.1:{free_port()}"
        sched = Child("scheduler", [sys.executable, "-m", "mindspore_federated.scheduler", "--yaml_config", yaml_path,
                                    "--scheduler_manage_address", sched_address],
                      os.path.join(workdir, "scheduler.log"), workdir)
        children.append(sched)
        sched.wait_ready()
        _say(f"scheduler  http://{sched_address}   (try: curl http://{sched_address}/state)")
        urls = []
        for i in range(args.servers):
            address = f"127.0.0.1:{free_port()}"
            server = Child(f"server{i}", [sys.executable, "-m", "mindspore_federated.server", "--yaml_config",
                                          yaml_path, "--http_server_address", address, "--checkpoint_dir",
                                          os.path.join(workdir, "fl_ckpt"), "--model", "lenet", "--seed",
                                          str(args.seed)], os.path.join(workdir, f"server{i}.log"), workdir)
            children.append(server)
            urls.append(f"http://{address}")
        for i, child in enumerate(children[-args.servers:]):
            child.wait_ready()
            _say(f"server {i}   {urls[i]}")
        worker = _start_worker(args, yaml_path, workdir) if args.mode == "hybrid" else None
        if worker is not None:
            children.append(worker)
        _say(f"devices    {args.devices} simulated phones, non-IID digits (2 classes each), LeNet5 on MindSpore")
        progress = Progress(redis_address, args.fl_name, args.devices)
        progress.start()
        reports = asyncio.run(_train(urls, args, progress))
        if worker is not None:
            _worker_summary(worker)
        return _summary(reports, workdir)
    finally:
        if progress is not None:
            progress.stop()
        for child in reversed(children):
            child.stop()
        _say(f"stopped    scheduler, {args.servers} servers and redis; logs in {workdir}")


def _start_worker(args, yaml_path, workdir):
    worker = Child("worker", [sys.executable, HYBRID_WORKER, "--yaml_config", yaml_path, "--fl_iteration_num",
                              str(args.iterations), "--sync_frequency", str(args.worker_steps), "--seed",
                              str(args.seed)], os.path.join(workdir, "worker.log"), workdir)
    _say("worker     " + worker.wait_ready("READY worker").split()[-1] + " (MindSpore LeNet5, held-out digits)")
    return worker


def _worker_summary(worker):
    """The worker's line per iteration: accuracy of its pushed model on its evaluation digits, phase times."""
    try:
        worker.proc.wait(30)
    except subprocess.TimeoutExpired:
        pass
    with open(worker.log_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("ITERATION "):
                _say("worker     " + line.strip())


async def _train(urls, args, progress):
    sys.path.insert(0, REPO)
    from example.cross_device_lenet_femnist.run_devices import run_devices

    def show(report):
        progress.clear()
        _say(report.line())

    return await run_devices(urls, args.fl_name, args.devices, args.iterations, seed=args.seed, on_iteration=show,
                             dp_noise=args.encrypt == "DP_ENCRYPT", compress=args.compress)


def _summary(reports, workdir):
    if not reports:
        _say("no iteration completed")
        return 1
    first, last = reports[0], reports[-1]
    _say(f"accuracy   {first.start_test_accuracy:.3f} (initial model) -> {first.test_accuracy:.3f} "
         f"(iteration {first.iteration}) -> {last.test_accuracy:.3f} (iteration {last.iteration})")
    _say(f"metrics    {os.path.join(workdir, 'metrics.json')}")
    return 0 if last.test_accuracy > first.start_test_accuracy else 1


def main(argv=None):
    args = parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except RuntimeError as exc:
        _say(f"local cluster failed: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
