"""Cluster benchmark: own redis + servers + bench/loadgen.py per config; prints tables, writes JSON."""
import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import yaml

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)

import bench_kernels  # noqa: E402  (bench/ on sys.path first)
import loadgen  # noqa: E402

RESULTS_DIR = os.path.join(BENCH_DIR, "results")
MODELS = {"lenet": 1, "lenet10x": 10}       # model -> LeNet copies
TICK = os.sysconf("SC_CLK_TCK")
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0
FL_NAME = "Lenet"


# ---------------------------------------------------------------------------------------------
# /proc readings
# ---------------------------------------------------------------------------------------------

def cpu_seconds(pid):
    """utime + stime of a process (all its threads) in seconds, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def status_kib(pid, key):
    """A `kB` field of /proc/<pid>/status (VmHWM, VmRSS), or None."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def loadavg():
    with open("/proc/loadavg", encoding="ascii") as f:
        return float(f.read().split()[0])


def code_version():
    """git HEAD (+ dirty flag) and a digest of the package's sources and core library as run now."""
    import hashlib  # pylint: disable=import-outside-toplevel
    digest = hashlib.sha1()
    pkg = os.path.join(ROOT, "mindspore_federated")
    for base, dirs, files in sorted(os.walk(pkg)):
        dirs.sort()
        for name in sorted(files):
            if name.endswith((".py", ".so")):
                with open(os.path.join(base, name), "rb") as f:
                    digest.update(name.encode() + f.read())
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=False).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "mindspore_federated",
                                "ccsrc"], capture_output=True, text=True, timeout=10,
                               check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        head, dirty = "?", ""
    return f"{head or '?'}{'+dirty' if dirty else ''} src {digest.hexdigest()[:10]}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_pid(proc, name):
    """SIGTERM by PID, SIGKILL after STOP_TIMEOUT_S; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            print(f"  {name} (pid {proc.pid}) ignored SIGTERM: SIGKILL", file=sys.stderr)
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)
    return proc.returncode


# ---------------------------------------------------------------------------------------------
# Processes of the cluster
# ---------------------------------------------------------------------------------------------

class RedisProc:
    """redis-server --save "" --appendonly no on a free loopback port."""

    def __init__(self, workdir, tls=None):
        """`tls`: TLS material (args(port) -> redis-server options, client_context()) for a TLS-only server."""
        self.workdir = workdir
        self.port = None
        self.proc = None
        self.tls = tls

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def _ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as raw:
                s = raw if self.tls is None else self.tls.client_context().wrap_socket(raw)
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def start(self, timeout=10.0):
        exe = shutil.which("redis-server")
        if not exe:
            raise RuntimeError("redis-server is not installed (./build.sh installs it)")
        for _ in range(5):  # a free port may be taken between the probe and the bind
            self.port = free_port()
            self.proc = subprocess.Popen(
                [exe, *(["--port", str(self.port)] if self.tls is None else ["--port", "0", *self.tls.args(self.port)]),
                 "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", self.workdir, "--logfile", os.path.join(self.workdir, "redis.log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                if self._ping():
                    return self
                time.sleep(0.05)
            _stop_pid(self.proc, "redis-server")
        raise RuntimeError("redis-server did not start")

    def info(self, section):
        """INFO <section> as a dict of str -> str (one short-lived connection)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2.0) as s:
            s.sendall(f"INFO {section}\r\n".encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
                head, _, rest = data.partition(b"\r\n")
                if head.startswith(b"$") and len(rest) >= int(head[1:]):
                    break
        out = {}
        for line in data.decode(errors="replace").splitlines()[1:]:
            key, sep, value = line.partition(":")
            if sep:
                out[key] = value
        return out

    def stop(self):
        if self.proc is not None:
            _stop_pid(self.proc, "redis-server")


class ServerProc:
    """`python -m mindspore_federated.server`, ready when it prints `READY server`."""

    def __init__(self, index, workdir, yaml_path, model, entry=("-m", "mindspore_federated.server"),
                 scheme="http"):
        self.entry = list(entry)
        self.scheme = scheme
        self.index = index
        self.workdir = os.path.join(workdir, f"server{index}")
        self.yaml_path = yaml_path
        self.model = model
        self.port = None
        self.proc = None
        self.ready = threading.Event()
        self.lines = []
        self.baseline_rss_kib = None

    @property
    def url(self):
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if line.startswith("READY server"):
                self.ready.set()
        self.ready.set()  # EOF: the process exited

    def start(self, env_extra=None):
        os.makedirs(self.workdir, exist_ok=True)
        self.port = free_port()
        env = dict(os.environ, PYTHONUNBUFFERED="1", **(env_extra or {}))
        self._stderr = open(os.path.join(self.workdir, "server.log"), "w", encoding="utf-8")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, *self.entry, "--yaml_config", self.yaml_path,
             "--http_server_address", f"127.0.0.1:{self.port}", "--model", self.model,
             "--checkpoint_dir", os.path.join(self.workdir, "fl_ckpt")],
            cwd=self.workdir, stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=env)
        threading.Thread(target=self._pump, daemon=True, name=f"server{self.index}-stdout").start()
        if not self.ready.wait(READY_TIMEOUT_S) or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError(f"server {self.index} not READY within {READY_TIMEOUT_S:.0f} s: "
                               f"{self.lines[-3:]} (log {self.workdir}/server.log)")
        self.baseline_rss_kib = status_kib(self.proc.pid, "VmRSS")
        return self

    def stop(self):
        if self.proc is not None:
            code = _stop_pid(self.proc, f"server {self.index}")
            self._stderr.close()
            return code
        return None


def write_yaml(workdir, redis_address, threshold, iterations, engine=None, extra=None):
    """Server YAML: threshold N, update_model_ratio 1.0, windows far longer than any iteration here;
    `extra`: top-level sections merged in (enable_ssl, ssl, distributed_cache TLS keys)."""
    cfg = {
        "fl_name": FL_NAME, "fl_iteration_num": iterations + 100, "server_mode": "FEDERATED_LEARNING",
        "enable_ssl": False, "distributed_cache": {"type": "redis", "address": redis_address},
        "round": {"start_fl_job_threshold": threshold, "start_fl_job_time_window": 1_800_000,
                  "update_model_ratio": 1.0, "update_model_time_window": 1_800_000,
                  "global_iteration_time_window": 3_600_000},
        "summary": {"metrics_file": "metrics.json", "failure_event_file": "event.txt"},
        "client": {"client_epoch_num": 1, "client_batch_size": 16, "client_learning_rate": 0.01},
    }
    if engine:
        cfg["client"]["http_engine"] = engine
    for key, value in (extra or {}).items():
        cfg[key] = {**cfg[key], **value} if isinstance(value, dict) and key in cfg else value
    path = os.path.join(workdir, "server.yaml")
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(cfg, f)
    return path


# ---------------------------------------------------------------------------------------------
# One configuration
# ---------------------------------------------------------------------------------------------

def default_iterations(devices):
    return 6 if devices <= 100 else 3 if devices <= 1000 else 2


def iteration_timeout(model, devices):
    return 60.0 + devices * (0.03 if model == "lenet" else 0.2)


class CpuSnap:
    """CPU seconds of named groups of PIDs at one instant."""

    def __init__(self, groups):
        self.t = time.monotonic()
        self.cpu = {name: [cpu_seconds(p) or 0.0 for p in pids] for name, pids in groups.items()}

    def delta(self, earlier):
        return {name: [a - b for a, b in zip(vals, earlier.cpu[name], strict=True)]
                for name, vals in self.cpu.items()}


def _commandstats(redis):
    try:
        return {k[len("cmdstat_"):]: dict(kv.split("=") for kv in v.split(","))
                for k, v in redis.info("commandstats").items() if k.startswith("cmdstat_")}
    except OSError:
        return {}


def _stats_delta(after, before):
    out = {}
    for cmd, vals in after.items():
        calls = int(vals.get("calls", 0)) - int(before.get(cmd, {}).get("calls", 0))
        usec = int(vals.get("usec", 0)) - int(before.get(cmd, {}).get("usec", 0))
        if calls:
            out[cmd] = {"calls": calls, "usec": usec}
    return out


def run_config(model, n_servers, devices, opts, profile_to=None):
    """Starts redis + servers, runs the iterations, stops everything; returns the result dict."""
    iterations = opts.iterations or default_iterations(devices)
    iterations = max(iterations, 2) if not profile_to else max(opts.iterations or 6, 3)
    workdir = tempfile.mkdtemp(prefix=f"msf-bench-{model}-{n_servers}s-{devices}-")
    redis = RedisProc(workdir)
    servers = []
    lg = None
    spy = None
    result = {"model": model, "servers": n_servers, "devices": devices, "iterations": iterations,
              "params": 61_706 * MODELS[model], "model_bytes": 61_706 * MODELS[model] * 4,
              "loadavg_start": loadavg(), "workdir": workdir, "code": code_version()}
    try:
        redis.start()
        yaml_path = write_yaml(workdir, redis.address, devices, iterations, opts.engine)
        for i in range(n_servers):
            servers.append(ServerProc(i, workdir, yaml_path, model).start())
        procs = opts.procs or 2
        cfg = loadgen.LoadConfig(servers=tuple(s.url for s in servers), fl_name=FL_NAME, procs=procs,
                                 concurrency=opts.concurrency)
        lg = loadgen.LoadGen(cfg).start()
        lg.sync_model()
        groups = {"servers": [s.proc.pid for s in servers], "redis": [redis.proc.pid],
                  "loadgen": lg.pids() + [os.getpid()]}
        timeout = iteration_timeout(model, devices)
        its, snaps = [], []
        stats_before = None
        for i in range(iterations):
            if i == 1:
                stats_before = _commandstats(redis)
                if profile_to:
                    spy = _start_py_spy(servers[0].proc.pid, profile_to)
            before = CpuSnap(groups)
            r = lg.run_iteration(devices, timeout)
            after = CpuSnap(groups)
            r["cpu"] = after.delta(before)
            its.append(r)
            snaps.append((before, after))
            _progress(model, n_servers, devices, i + 1, iterations, r)
            if not r.get("served_all"):
                break
        if spy is not None:
            result["profile"] = _stop_py_spy(spy, profile_to)
            spy = None
        window = snaps[-1][1].delta(snaps[1][0]) if len(snaps) > 1 else None
        result["redis_commands"] = _stats_delta(_commandstats(redis), stats_before) if stats_before else {}
        result["window_s"] = snaps[-1][1].t - snaps[1][0].t if len(snaps) > 1 else None
        result["cpu_window"] = window
        result["per_iteration"] = its
        if len(snaps) > 1 and its[-1].get("served_all"):
            result["poll_cost_ms"] = _poll_cost(lg, servers[0])
        result["peak_rss_kib"] = [status_kib(s.proc.pid, "VmHWM") for s in servers]
        result["loadgen_peak_rss_kib"] = [status_kib(p, "VmHWM") for p in lg.pids()]
        result["baseline_rss_kib"] = [s.baseline_rss_kib for s in servers]
    except Exception as exc:  # noqa: BLE001 - one failed config must not lose the others
        result["error"] = f"{type(exc).__name__}: {exc}"
        print(f"  config failed: {result['error']}", file=sys.stderr, flush=True)
    finally:
        if spy is not None:
            _stop_py_spy(spy, profile_to)
        if lg is not None:
            lg.close()
        result["exit_codes"] = [s.stop() for s in servers]
        redis.stop()
        result["loadavg_end"] = loadavg()
    if "error" not in result and not opts.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return summarise_config(result)


def _poll_cost(lg, server, requests=2000):
    """Server CPU ms per getModel poll answered SucNotReady (measured between iterations)."""
    before = cpu_seconds(server.proc.pid)
    answered = lg.calibrate_poll(server.url, requests)
    after = cpu_seconds(server.proc.pid)
    return (after - before) * 1e3 / answered if answered else None


def _progress(model, n_servers, devices, i, iterations, r):
    print(f"  [{model} {n_servers}srv N={devices}] {loadgen.format_iteration(i, r)}", file=sys.stderr,
          flush=True)


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def summarise_config(res):
    """Adds the headline figures (mean over the measured iterations 2..I) to a config result."""
    its = res.get("per_iteration", [])
    measured = its[1:]
    if not measured or not all(r.get("served_all") for r in measured):
        res.setdefault("error", "no complete measured iteration")
        return res
    accepted = sum(r["accepted"] for r in measured)
    server_cpu = [sum(r["cpu"]["servers"][i] for r in measured) for i in range(res["servers"])]
    res["accepted_measured"] = accepted
    res["failures"] = sum(r["failures"] for r in its)
    res["wall_s"] = _mean([r["wall_s"] for r in measured])
    res["updates_per_s"] = _mean([r["accepted"] / r["wall_s"] for r in measured])
    res["cpu_ms_per_update_each"] = [c * 1e3 / accepted for c in server_cpu]
    res["cpu_ms_per_update"] = sum(server_cpu) * 1e3 / accepted
    polls = sum(r["status"].get("getModel:201", 0) + r.get("watcher_polls", 0) for r in measured)
    res["notready_polls_per_update"] = polls / accepted
    if res.get("poll_cost_ms") is not None:
        res["cpu_ms_per_update_net"] = max(0.0, res["cpu_ms_per_update"]
                                           - polls * res["poll_cost_ms"] / accepted)
    res["update_p50_ms"] = _mean([r["update_p50_ms"] for r in measured])
    res["update_p99_ms"] = max(r["update_p99_ms"] for r in measured)
    res["turnaround_ms"] = _mean([r["turnaround_ms"] for r in measured])
    res["turnaround_max_ms"] = max(r["turnaround_ms"] for r in measured)
    res["agg_err_abs"] = max(r.get("agg_err_abs", float("inf")) for r in its)
    res["agg_err_rel"] = max(r.get("agg_err_rel", float("inf")) for r in its)
    res["servers_agree"] = all(r.get("servers_agree", False) for r in its)
    res["foreign_updates"] = sum(r.get("foreign_updates", 0) for r in its)
    res["get_model_per_device"] = _mean([r["device_get_model_requests"] / r["devices"] for r in measured])
    res["peak_rss_mib"] = max(k for k in res["peak_rss_kib"] if k) / 1024
    res["rss_growth_models"] = max((p - b) * 1024 / res["model_bytes"]
                                   for p, b in zip(res["peak_rss_kib"], res["baseline_rss_kib"], strict=True)
                                   if p and b)
    window = res["cpu_window"]
    res["cpu_split_s"] = {name: sum(v) for name, v in window.items()}
    evals = {k: v for k, v in res.get("redis_commands", {}).items() if k.startswith("eval")}
    res["lua_calls_per_update"] = sum(v["calls"] for v in evals.values()) / accepted
    res["lua_us_per_update"] = sum(v["usec"] for v in evals.values()) / accepted
    res["redis_calls_per_update"] = sum(v["calls"] for v in res.get("redis_commands", {}).values()) / accepted
    return res


# ---------------------------------------------------------------------------------------------
# Profiling (py-spy)
# ---------------------------------------------------------------------------------------------

def _py_spy():
    exe = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return exe if os.path.exists(exe) else shutil.which("py-spy")


def _start_py_spy(pid, out_base):
    exe = _py_spy()
    if exe is None:
        print("  py-spy not installed (.venv/bin/pip install py-spy): no profile", file=sys.stderr)
        return None
    args = [exe, "record", "--pid", str(pid), "--rate", "200", "--format", "raw", "--threads",
            "-o", out_base + ".txt"]
    # --native shows C/C++ frames (_core kernels, aiohttp's C parser, uvloop, hiredis) but pauses the
    # process for every sample; BENCH_PY_SPY_NATIVE=0 samples Python frames only, without pausing it.
    args.append("--native" if os.environ.get("BENCH_PY_SPY_NATIVE", "1") == "1" else "--nonblocking")
    log = open(out_base + ".py-spy.log", "w", encoding="utf-8")  # noqa: SIM115 - closed by _stop_py_spy
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    time.sleep(0.5)  # attach
    return proc, log


def _stop_py_spy(spy, out_base):
    if spy is None:
        return None
    proc, log = spy
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    log.close()
    path = out_base + ".txt"
    return path if os.path.exists(path) and os.path.getsize(path) else None


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------

def _f(value, fmt, width):
    return f"{'-':>{width}}" if value is None else f"{value:{width}{fmt}}"


def table(results, axpy):
    """The main table: one row per config, each server figure next to its ratio to numpy `acc += w*x`."""
    head = (f"{'model':<9}{'srv':>3}{'N':>7}{'it':>3}{'wall s':>8}{'upd/s':>8}{'%axpy':>7}"
            f"{'CPU ms/upd':>11}{'net':>7}{'xaxpy':>7}{'  per server':<16}{'RSS MiB':>8}{'dRSS/m':>7}"
            f"{'p50 ms':>8}{'p99 ms':>8}{'turn ms':>8}{'agg err':>9}{'GM/dev':>7}")
    lines = [head, "-" * len(head)]
    for r in results:
        key = f"{r['model']:<9}{r['servers']:>3}{r['devices']:>7}{r['iterations']:>3}"
        if "error" in r:
            lines.append(f"{key}  FAILED: {r['error']}")
            continue
        ref = axpy[r["model"]]
        floor_ms = r["model_bytes"] / (ref * 1e9) * 1e3       # one numpy axpy of this update
        bound = ref * 1e9 / r["model_bytes"]                   # axpy-bound updates/s of one core
        each = "+".join(f"{c:.2f}" for c in r["cpu_ms_per_update_each"]) if r["servers"] > 1 else ""
        lines.append(
            f"{key}{r['wall_s']:>8.3f}{r['updates_per_s']:>8.0f}{100 * r['updates_per_s'] / bound:>6.1f}%"
            f"{r['cpu_ms_per_update']:>11.3f}{_f(r.get('cpu_ms_per_update_net'), '.3f', 7)}"
            f"{r['cpu_ms_per_update'] / floor_ms:>7.1f}  {each:<14}{r['peak_rss_mib']:>8.0f}"
            f"{r['rss_growth_models']:>7.1f}{r['update_p50_ms']:>8.1f}"
            f"{r['update_p99_ms']:>8.1f}{_f(r['turnaround_ms'], '.1f', 8)}{r['agg_err_abs']:>9.1e}"
            f"{r['get_model_per_device']:>7.2f}")
    return "\n".join(lines)


def split_table(results):
    """Where the CPU went over the measured window, Redis work per update, and the not-ready poll cost."""
    head = (f"{'model':<9}{'srv':>3}{'N':>7}{'window s':>9}{'servers s':>10}{'redis s':>8}{'loadgen s':>10}"
            f"{'cores':>6}{'redis ms/upd':>13}{'EVALSHA/upd':>14}{'Lua us/upd':>11}{'poll ms':>8}"
            f"{'polls/upd':>10}{'base MiB':>9}{'load':>10}")
    lines = [head, "-" * len(head)]
    for r in results:
        if "error" in r:
            continue
        s = r["cpu_split_s"]
        acc = r["accepted_measured"]
        busy = (s["servers"] + s["redis"] + s["loadgen"]) / r["window_s"]
        base = max(k for k in r["baseline_rss_kib"] if k) / 1024
        lines.append(
            f"{r['model']:<9}{r['servers']:>3}{r['devices']:>7}{r['window_s']:>9.2f}{s['servers']:>10.2f}"
            f"{s['redis']:>8.2f}{s['loadgen']:>10.2f}{busy:>6.2f}{s['redis'] * 1e3 / acc:>13.3f}"
            f"{r['lua_calls_per_update']:>14.2f}{r['lua_us_per_update']:>11.1f}"
            f"{_f(r.get('poll_cost_ms'), '.3f', 8)}{r['notready_polls_per_update']:>10.2f}{base:>9.0f}"
            f"{r['loadavg_start']:>5.1f}/{r['loadavg_end']:<4.1f}")
    return "\n".join(lines)


LEGEND = """\
wall s: go -> new model served by every server (mean of iterations 2..it); upd/s: accepted updates / wall;
%axpy: upd/s as a share of one core doing nothing but numpy `acc += w*x` on this update size (same run);
CPU ms/upd: server CPU (utime+stime, all server processes, every request of the device incl. getModel
  polls) per accepted update; net: minus the not-ready getModel polls at the measured poll cost;
xaxpy: CPU ms/upd / time of one numpy `acc += w*x` of the update; per server: split for 2 servers;
RSS MiB: max server VmHWM; dRSS/m: (VmHWM - VmRSS when READY) / model bytes, the largest over servers;
p50/p99: updateModel request latency seen by the devices (mean p50, max p99);
turn ms: last accepted update's reply -> new model served by every server; agg err: max |served - exact
  float64 FedAvg of the uploads| over all iterations; GM/dev: getModel requests per device.
window/servers/redis/loadgen s: CPU seconds over the measured iterations; cores: their sum / window;
redis ms/upd: redis-server CPU per update; EVALSHA/upd: Lua script calls per update (Redis INFO
  commandstats); Lua us/upd: time Redis spent in those scripts per update;
poll ms: server CPU per not-ready getModel (2,000 measured between iterations); load: 1-min loadavg
  at start/end of the config (other work on this machine)."""


def _comparisons(results):
    lines = []
    by = {(r["model"], r["servers"], r["devices"]): r for r in results if "error" not in r}
    for (model, srv, n), r in sorted(by.items()):
        one = by.get((model, 1, n))
        if srv == 2 and one:
            ratio = r["updates_per_s"] / one["updates_per_s"]
            lines.append(f"{model} N={n}: 2 servers deliver {ratio:.2f}x the "
                         f"updates/s of 1 (CPU split servers/redis/loadgen "
                         f"{r['cpu_split_s']['servers']:.1f}/{r['cpu_split_s']['redis']:.1f}/"
                         f"{r['cpu_split_s']['loadgen']:.1f} s vs "
                         f"{one['cpu_split_s']['servers']:.1f}/{one['cpu_split_s']['redis']:.1f}/"
                         f"{one['cpu_split_s']['loadgen']:.1f} s)")
    for r in results:
        if "error" not in r:
            lines.append(f"{r['model']} {r['servers']}srv N={r['devices']}: failures={r['failures']}, "
                         f"servers agree={r['servers_agree']}, agg rel err={r['agg_err_rel']:.1e}, "
                         "turnaround "
                         f"max {r['turnaround_max_ms']:.1f} ms, updates not from the served model="
                         f"{r['foreign_updates']}")
    return "\n".join(lines)


def targets(results, axpy, kernel):
    """The targets of shared/spec/performance-anchors.md that this run measured, with PASS/FAIL."""
    ok = [r for r in results if "error" not in r]
    lines = ["targets (performance-anchors.md):"]

    def line(text, values, passed):
        if values:
            lines.append(f"  {'PASS' if passed else 'FAIL'}  {text}: {values}")

    def cfg(r):
        return f"{r['servers']}s/N={r['devices']}"
    for model, limit in (("lenet", 0.5), ("lenet10x", 4.0)):
        rs = [r for r in ok if r["model"] == model]
        line(f"server CPU per accepted update <= {limit} ms ({model}; all requests, net of not-ready "
             "polls in ())",
             ", ".join(f"{cfg(r)} {r['cpu_ms_per_update']:.2f} ({r.get('cpu_ms_per_update_net', 0):.2f})"
                       for r in rs), all(r["cpu_ms_per_update"] <= limit for r in rs))
    line("peak server RSS growth <= 3 model copies, independent of N (dRSS/m)",
         ", ".join(f"{r['model']} {cfg(r)} {r['rss_growth_models']:.0f}" for r in ok),
         all(r["rss_growth_models"] <= 3 for r in ok))
    for srv, limit in ((1, 50), (2, 100)):
        rs = [r for r in ok if r["servers"] == srv]
        line(f"iteration turnaround <= {limit} ms with {srv} server(s) (worst iteration)",
             ", ".join(f"{r['model']} N={r['devices']} {r['turnaround_max_ms']:.0f}" for r in rs),
             all(r["turnaround_max_ms"] <= limit for r in rs))
    big = [r for r in ok if r["model"] == "lenet" and r["servers"] == 1 and r["devices"] >= 20000]
    line("20,000 LeNet devices in one iteration on one server within 30 s",
         ", ".join(f"N={r['devices']} {r['wall_s']:.1f} s" for r in big), all(r["wall_s"] <= 30 for r in big))
    by = {(r["model"], r["servers"], r["devices"]): r for r in ok}
    pairs = [(r, by[(r["model"], 1, r["devices"])]) for r in ok
             if r["servers"] == 2 and (r["model"], 1, r["devices"]) in by]
    line("2 servers >= 1.8x one server's updates/s (this machine: 2 cores shared with the load generator)",
         ", ".join(f"{a['model']} N={a['devices']} {a['updates_per_s'] / b['updates_per_s']:.2f}x"
                   for a, b in pairs),
         all(a["updates_per_s"] >= 1.8 * b["updates_per_s"] for a, b in pairs))
    line("aggregation kernel within 2x of the memory-bandwidth reference (numpy acc += w*x, cold source)",
         ", ".join(f"{m} {kernel[m]:.2f} vs {axpy[m]:.2f} GB/s" for m in kernel),
         all(kernel[m] >= axpy[m] / 2 for m in kernel))
    lines.append("  (not measured here: fault recovery, PW_ENCRYPT cost)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

def _csv(kind):
    def parse(text):
        return [kind(x) for x in text.split(",") if x.strip()]
    return parse


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="LeNet, N=100 and 1,000, 1 and 2 servers (the default)")
    mode.add_argument("--full", action="store_true", help="LeNet and 10x LeNet, N=100/1,000/10,000, 1 and 2 "
                                                           "servers, kernels and all-reduce benches")
    p.add_argument("--model", type=_csv(str), help="comma-separated: lenet,lenet10x")
    p.add_argument("--servers", type=_csv(int), help="comma-separated server counts, e.g. 1,2")
    p.add_argument("--devices", type=_csv(int), help="comma-separated devices per iteration")
    p.add_argument("--iterations", type=int, help="iterations per config (default 6/3/2 by N, >= 2)")
    p.add_argument("--procs", type=int, default=2, help="load-generator client processes")
    p.add_argument("--concurrency", type=int, default=32, help="per client process: devices between "
                                                                "startFLJob and the updateModel reply")
    p.add_argument("--profile", action="store_true", help="py-spy the server: LeNet, N=1,000, 1 server "
                                                          "(overridable with --model/--servers/--devices)")
    p.add_argument("--engine", choices=("fast", "aiohttp"), help="the servers' client.http_engine "
                                                                 "(default: the server's default, fast)")
    p.add_argument("--herd", type=_csv(int), help="thundering herd (herd_run.py): N devices at once on one "
                   "server, each on its own connection, e.g. --herd 10000,15000 (--model picks the model)")
    p.add_argument("--herd-procs", type=int, default=4, help="herd: load-generator processes")
    p.add_argument("--herd-profile", action="store_true", help="herd: tracemalloc the server, diff by site")
    p.add_argument("--herd-https", action="store_true", help="herd: each N twice in one run, plain HTTP then "
                   "enable_ssl (HTTPS device API, TLS + AUTH to Redis), for the CPU per update of each")
    p.add_argument("--compression", action="store_true", help="compression side by side (compress_run.py): "
                   "bytes and server CPU per update, plain vs compressed, LeNet and 10x LeNet (--model picks), "
                   "and the digits example's accuracy with and without (skip it with --no-digits)")
    p.add_argument("--no-digits", action="store_true", help="--compression without the digits runs")
    p.add_argument("--keep", action="store_true", help="keep the work directories (logs)")
    p.add_argument("--json", default=os.path.join(RESULTS_DIR, "latest.json"))
    return p.parse_args(argv)


def plan(opts):
    if opts.profile:
        return (opts.model or ["lenet"]), (opts.servers or [1]), (opts.devices or [1000])
    if opts.full:
        return ((opts.model or ["lenet", "lenet10x"]), (opts.servers or [1, 2]),
                (opts.devices or [100, 1000, 10000]))
    return (opts.model or ["lenet"]), (opts.servers or [1, 2]), (opts.devices or [100, 1000])


def _terminate(signum, _frame):
    raise SystemExit(128 + signum)  # unwinds through the `finally` blocks that stop our processes


def main(argv=None):
    signal.signal(signal.SIGTERM, _terminate)
    opts = parse_args(argv)
    if opts.herd:
        return _run_herd(opts)
    if opts.compression:
        return _run_compression(opts)
    models, server_counts, device_counts = plan(opts)
    for m in models:
        if m not in MODELS:
            raise SystemExit(f"unknown model {m!r} (lenet, lenet10x)")
    os.makedirs(RESULTS_DIR, exist_ok=True)
    started = time.monotonic()
    version = code_version()
    print(f"bench: {platform.node()} {os.cpu_count()} cores, python {platform.python_version()}, "
          f"loadavg {loadavg():.2f}; client processes {opts.procs}, concurrency {opts.concurrency}/process; "
          f"code {version}", flush=True)
    axpy = {m: bench_kernels.numpy_axpy_gbps(61_706 * MODELS[m]) for m in models}
    kernel = {m: bench_kernels.core_accumulate_gbps(61_706 * MODELS[m]) for m in models}
    for m, g in axpy.items():
        print(f"numpy acc += w*x, {61_706 * MODELS[m]:,} float32 (cold source): {g:.2f} GB/s of update "
              f"-> {61_706 * MODELS[m] * 4 / (g * 1e9) * 1e3:.3f} ms per update, "
              f"{g * 1e9 / (61_706 * MODELS[m] * 4):,.0f} updates/s per core; server kernel _core.accumulate "
              f"{kernel[m]:.2f} GB/s ({kernel[m] / g:.2f}x)", flush=True)
    results = []
    profile_summary = None
    for m in models:
        for srv in server_counts:
            for n in device_counts:
                base = None
                if opts.profile:
                    base = os.path.join(RESULTS_DIR, f"profile_{m}_{srv}srv_n{n}")
                r = run_config(m, srv, n, opts, profile_to=base)
                results.append(r)
                if opts.profile and r.get("profile"):
                    import profile_summary as ps  # pylint: disable=import-outside-toplevel
                    profile_summary = ps.summarise(r["profile"])
                    r["profile_summary"] = profile_summary
    print()
    print(table(results, axpy))
    print(LEGEND)
    print()
    print(split_table(results))
    comparisons = _comparisons(results)
    if comparisons:
        print(comparisons)
    print()
    print(targets(results, axpy, kernel))
    extra = {}
    if profile_summary is not None:
        import profile_summary as ps  # pylint: disable=import-outside-toplevel
        print()
        print(ps.format_summary(profile_summary))
    if opts.full:
        print("\nkernels:")
        rows = bench_kernels.run()
        print(bench_kernels.format_rows(rows))
        extra["kernels"] = rows
        extra["allreduce"] = _run_allreduce()
    version_end = code_version()
    if version_end.split(" src ")[-1] != version.split(" src ")[-1]:
        print(f"WARNING: the server code changed during the run ({version} -> {version_end}); code each "
              "config's servers started with:")
        for r in results:
            print(f"  {r['model']} {r['servers']}srv N={r['devices']}: {r.get('code')}")
    payload = {"argv": sys.argv[1:], "code": version, "code_end": version_end,
               "time": time.strftime("%Y-%m-%d %H:%M:%S"), "cpu_count": os.cpu_count(),
               "numpy_axpy_gbps": axpy, "core_accumulate_gbps": kernel, "results": results,
               "elapsed_s": time.monotonic() - started, **extra}
    path = opts.json
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=1, default=_json_default)
    print(f"\nwrote {path} ({time.monotonic() - started:.0f} s)")
    return 0 if all("error" not in r for r in results) else 1


def _run_herd(opts):
    import herd_run  # pylint: disable=import-outside-toplevel
    results = herd_run.main(opts.herd, opts.iterations or 3, opts.herd_procs, opts.herd_profile, opts.keep,
                            model=(opts.model or ["lenet"])[0], https=opts.herd_https)
    path = opts.json if opts.json != os.path.join(RESULTS_DIR, "latest.json") else \
        os.path.join(RESULTS_DIR, "herd.json")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"argv": sys.argv[1:], "code": code_version(), "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                   "results": results}, f, indent=1, default=_json_default)
    print(f"wrote {path}")
    return 0 if all("error" not in r and all(row["done"] for row in r["rows"]) for r in results) else 1


def _run_compression(opts):
    import compress_run  # pylint: disable=import-outside-toplevel
    results = compress_run.main(tuple(opts.model or ("lenet", "lenet10x")), not opts.no_digits, opts.keep)
    path = opts.json if opts.json != os.path.join(RESULTS_DIR, "latest.json") else \
        os.path.join(RESULTS_DIR, "compression.json")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"argv": sys.argv[1:], "code": code_version(), "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                   **results}, f, indent=1, default=_json_default)
    print(f"wrote {path}")
    return 0


def _json_default(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _run_allreduce():
    script = os.path.join(BENCH_DIR, "bench_allreduce.py")
    if not os.path.exists(script):
        return None
    print("\nall-reduce (bench/bench_allreduce.py):", flush=True)
    try:
        out = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=600, cwd=ROOT,
                             check=False)
    except subprocess.TimeoutExpired:
        print("  timed out after 600 s")
        return {"error": "timeout"}
    print(out.stdout.rstrip())
    if out.returncode:
        print(f"  exit code {out.returncode}: {out.stderr[-500:]}")
    return {"stdout": out.stdout, "returncode": out.returncode}


if __name__ == "__main__":
    sys.exit(main())
