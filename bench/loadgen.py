"""Device load generator: spawned client processes (uvloop, a shared aiohttp session each) run FL devices."""
import argparse
import asyncio
import multiprocessing as mp
import os
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass

import aiohttp
import numpy as np

from mindspore_federated.client import messages as msg
from mindspore_federated.client.messages import PlainTextReply, ResponseCode

HEADERS = {"Content-Type": "application/octet-stream"}
DATA_SIZES = 8        # device k's data_size n is in 1..8
DELTA_CLASSES = 4     # device k uploads (w + delta * (c + 1)) * n, c in 0..3
ID_LEN = 19           # fl_ids have a fixed length so update bodies can be patched from a template
PLACEHOLDER = b"#" * ID_LEN
IDLE_TIMEOUT_S = 1800.0
TEMPLATE_CACHE = 512


@dataclass(frozen=True)
class LoadConfig:
    """What every client process needs (picklable). Every wait is bounded by one of the *_timeout fields."""

    servers: tuple                  # base URLs, e.g. ("http://127.0.0.1:6666",)
    fl_name: str
    ca_file: str = None             # https:// servers: the CA their certificates are verified against
    procs: int = 2                  # client processes
    concurrency: int = 32           # per process: devices between startFLJob and the updateModel reply
    poll_concurrency: int = 32      # per process: device getModel requests in flight
    delta: float = 1e-3
    http_timeout: float = 60.0      # one HTTP exchange
    device_timeout: float = 900.0   # one device's startFLJob..updateModel, and its getModel polling
    poll_first: float = 0.5         # first getModel poll this long after the accepted update (+-20 %)
    poll_backoff: float = 2.0       # then the pause grows by this factor ...
    poll_max: float = 4.0           # ... up to this
    retry_delay: float = 0.05       # pause before repeating a request answered SucNotReady / safemode
    start_timeout: float = 60.0     # spawning the client processes


def device_params(proc, k):
    """(data_size, delta class) of device `k` of client process `proc`."""
    return 1 + (k * 5 + proc) % DATA_SIZES, (k + 3 * proc) % DELTA_CLASSES


def fingerprint(features):
    """A cheap identity of a model: a few values of every tensor (bytes; equal models give equal prints)."""
    parts = []
    for name in sorted(features):
        w = np.asarray(features[name]).reshape(-1)
        parts.append(name.encode() + w[:2].tobytes() + w[-2:].tobytes())
    return b"|".join(parts)


def upload_of(features, n, cls, delta):
    """What a device with data_size `n` and delta class `cls` uploads for model `features` (float32 math)."""
    d = np.float32(delta * (cls + 1))
    scale = np.float32(n)
    return {name: (np.asarray(w, np.float32).reshape(-1) + d) * scale for name, w in features.items()}


def fedavg_reference(model, counts, iteration, delta):
    """(exact float64 FedAvg of the accepted uploads: Σ uploads / Σ data_size, updates not from `model`)."""
    fp = fingerprint(model)
    num = {name: np.zeros(np.asarray(w).size, np.float64) for name, w in model.items()}
    den = 0
    foreign = 0
    for (it, n, cls, key_fp), count in counts.items():
        if it != iteration or key_fp != fp:
            foreign += count
            continue
        for name, u in upload_of(model, n, cls, delta).items():
            num[name] += count * u.astype(np.float64)
        den += count * n
    if den == 0:
        return None, foreign
    return {name: v / den for name, v in num.items()}, foreign


def model_error(served, reference):
    """(max abs diff, max abs diff / max |reference|) of a served model against the float64 reference."""
    worst = scale = 0.0
    for name, ref in reference.items():
        got = served.get(name)
        if got is None or np.asarray(got).size != ref.size:
            return float("inf"), float("inf")
        worst = max(worst, float(np.max(np.abs(np.asarray(got, np.float64).reshape(-1) - ref))))
        scale = max(scale, float(np.max(np.abs(ref))))
    return worst, worst / scale if scale else worst


class _Transport(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Client process
# ---------------------------------------------------------------------------------------------

class _IterStats:
    def __init__(self):
        self.accepted = 0
        self.failures = 0
        self.errors = []
        self.status = Counter()
        self.update_latency = []
        self.counts = Counter()
        self.got_model = 0
        self.first_send = None
        self.last_accept = 0.0
        self.last_model = 0.0

    def fail(self, why):
        self.failures += 1
        if len(self.errors) < 5:
            self.errors.append(why)

    def to_dict(self, done):
        return {"accepted": self.accepted, "failures": self.failures, "errors": self.errors,
                "status": dict(self.status), "update_latency": self.update_latency,
                "counts": dict(self.counts),
                "got_model": self.got_model, "first_send": self.first_send, "last_accept": self.last_accept,
                "last_model": self.last_model, "done": done}


class _Worker:
    def __init__(self, index, cfg, conn, shared):
        self.index = index
        self.cfg = cfg
        self.conn = conn
        self.shared = shared
        self.rng = random.Random(cfg.servers.__hash__() ^ (index * 7919) ^ os.getpid())
        self.session = None
        self.templates = {}
        self.get_bodies = {}

    async def serve(self):
        loop = asyncio.get_running_loop()
        timeout = aiohttp.ClientTimeout(total=self.cfg.http_timeout)
        self.session = aiohttp.ClientSession(connector=_connector(self.cfg, limit=0, force_close=False),
                                             timeout=timeout)
        try:
            self.conn.send({"ready": os.getpid()})
            while True:
                cmd = await loop.run_in_executor(None, _recv, self.conn, IDLE_TIMEOUT_S)
                if cmd is None or cmd.get("cmd") == "stop":
                    return
                if cmd["cmd"] == "run":
                    self.conn.send(await self.run_iteration(cmd))
        finally:
            await self.session.close()

    async def run_iteration(self, cmd):
        self.shared[2 * self.index] = 0.0
        self.shared[2 * self.index + 1] = 0.0
        st = _IterStats()
        self.start_sem = asyncio.Semaphore(self.cfg.concurrency)
        self.poll_sem = asyncio.Semaphore(self.cfg.poll_concurrency)
        tag, count = cmd["tag"], cmd["devices"]
        try:
            async with asyncio.timeout(cmd["timeout"]):
                await asyncio.gather(*(self.device(tag, k, st) for k in range(count)))
        except TimeoutError:
            st.fail(f"iteration not done within {cmd['timeout']:.0f} s")
        self.templates = {k: v for k, v in self.templates.items() if k[0] >= cmd.get("min_iteration", 0)}
        return st.to_dict(time.monotonic())

    # -- one device ---------------------------------------------------------------------------
    async def device(self, tag, k, st):
        n, cls = device_params(self.index, k)
        fl_id = f"p{self.index:03d}i{tag % 1000000:06d}d{k:07d}"
        try:
            async with self.start_sem:  # waiting here is bounded by the iteration's timeout
                async with asyncio.timeout(self.cfg.device_timeout):
                    iteration, accepted = await self.start_and_update(fl_id, n, cls, st)
            if accepted:
                async with asyncio.timeout(self.cfg.device_timeout):
                    await self.poll_model(iteration, st)
        except TimeoutError:
            st.fail(f"device step not done within {self.cfg.device_timeout:.0f} s")
        except _Transport as exc:
            st.fail(str(exc))

    async def start_and_update(self, fl_id, n, cls, st):
        """(iteration, accepted); the model reply and the upload body die with this frame, so a device
        waiting for the next model holds no model-sized buffer."""
        start = await self.start_fl_job(fl_id, n, st)
        if start is None:
            return 0, False
        key, body = self.update_body(start, fl_id, n, cls)
        iteration = start.iteration
        del start
        return iteration, await self.update_model(key, body, st)

    async def post(self, round_name, body, st):
        server = self.rng.choice(self.cfg.servers)
        if st.first_send is None:
            st.first_send = time.monotonic()
        started = time.perf_counter()
        try:
            async with self.session.post(f"{server}/{round_name}", data=body, headers=HEADERS) as resp:
                payload = await resp.read()
                code = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            st.status[(round_name, "transport")] += 1
            raise _Transport(f"{round_name} to {server}: {type(exc).__name__}: {exc}") from None
        elapsed = time.perf_counter() - started
        if code != 200:
            st.status[(round_name, f"http{code}")] += 1
            raise _Transport(f"{round_name} to {server}: HTTP {code}: {payload[:100]!r}")
        return payload, elapsed

    @staticmethod
    def _status(reply):
        if isinstance(reply, PlainTextReply):
            return "safemode" if reply.is_safemode else "finished" if reply.is_finished else "text"
        return reply.retcode

    async def start_fl_job(self, fl_id, n, st):
        body = msg.build_start_fl_job(self.cfg.fl_name, fl_id, 0, n)
        for attempt in range(1000):
            try:
                payload, _ = await self.post("startFLJob", body, st)
            except _Transport as exc:
                if attempt >= 3:
                    raise
                st.fail(f"(retried) {exc}")
                await asyncio.sleep(self.cfg.retry_delay)
                continue
            reply = msg.parse_start_fl_job(payload)
            status = self._status(reply)
            st.status[("startFLJob", status)] += 1
            if status == ResponseCode.SUCCEED and reply.is_selected:
                return reply
            if status not in ("safemode", ResponseCode.SucNotReady):
                st.fail(f"startFLJob {fl_id}: {status} {_why(reply)}")
                return None
            await asyncio.sleep(self.cfg.retry_delay)
        st.fail("startFLJob: too many retries")
        return None

    def update_body(self, start, fl_id, n, cls):
        """(key, updateModel body) for `fl_id`: a per-(model, n, class) template with the fl_id patched in."""
        key = (start.iteration, n, cls, fingerprint(start.features))
        tpl = self.templates.get(key)
        if tpl is None:
            upload = upload_of(start.features, n, cls, self.cfg.delta)
            body = msg.build_update_model(self.cfg.fl_name, PLACEHOLDER.decode(), start.iteration, upload)
            pos = body.find(PLACEHOLDER)
            tpl = (body[:pos], body[pos + ID_LEN:]) if pos >= 0 and body.count(PLACEHOLDER) == 1 else upload
            if len(self.templates) >= TEMPLATE_CACHE:
                self.templates.clear()
            self.templates[key] = tpl
        if isinstance(tpl, dict):  # the placeholder was ambiguous: build the whole body
            return key, msg.build_update_model(self.cfg.fl_name, fl_id, start.iteration, tpl)
        return key, b"".join((tpl[0], fl_id.encode(), tpl[1]))

    async def update_model(self, key, body, st):
        for _ in range(1000):
            payload, elapsed = await self.post("updateModel", body, st)
            reply = msg.parse_update_model(payload)
            status = self._status(reply)
            st.status[("updateModel", status)] += 1
            if status == ResponseCode.SUCCEED:
                st.update_latency.append(elapsed)
                st.accepted += 1
                st.counts[key] += 1
                st.last_accept = time.monotonic()
                self.shared[2 * self.index] = st.accepted
                self.shared[2 * self.index + 1] = st.last_accept
                return True
            if status not in ("safemode", ResponseCode.SucNotReady):
                st.fail(f"updateModel: {status} {_why(reply)}")
                return False
            await asyncio.sleep(self.cfg.retry_delay)
        st.fail("updateModel: too many retries")
        return False

    async def poll_model(self, iteration, st):
        body = self.get_bodies.get(iteration)
        if body is None:
            body = self.get_bodies[iteration] = msg.build_get_model(self.cfg.fl_name, iteration)
        delay = self.cfg.poll_first
        transport_errors = 0
        while True:
            await asyncio.sleep(delay * (0.8 + 0.4 * self.rng.random()))
            delay = min(delay * self.cfg.poll_backoff, self.cfg.poll_max)
            try:
                async with self.poll_sem:
                    payload, _ = await self.post("getModel", body, st)
            except _Transport:
                transport_errors += 1
                if transport_errors > 3:
                    raise
                continue
            reply = msg.parse_get_model(payload)
            status = self._status(reply)
            st.status[("getModel", status)] += 1
            if status == ResponseCode.SUCCEED:
                st.got_model += 1
                st.last_model = time.monotonic()
                return
            if status not in ("safemode", ResponseCode.SucNotReady):
                st.fail(f"getModel: {status} {_why(reply)}")
                return


def _why(reply):
    return getattr(reply, "reason", getattr(reply, "text", ""))


def _recv(conn, timeout):
    try:
        return conn.recv() if conn.poll(timeout) else None
    except (EOFError, OSError):
        return None


def _runner():
    try:
        import uvloop  # pylint: disable=import-outside-toplevel
        return asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        return asyncio.Runner()


def _worker_main(index, cfg, conn, shared):
    with _runner() as runner:
        runner.run(_Worker(index, cfg, conn, shared).serve())


# ---------------------------------------------------------------------------------------------
# Coordinator
# ---------------------------------------------------------------------------------------------

def percentile(values, q):
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(np.ceil(q / 100.0 * len(ordered))) - 1))]


class LoadGen:
    """Spawns `cfg.procs` client processes and runs iterations of fresh devices spread over them.

    Each iteration also runs a watcher task here that polls getModel on EVERY server (slowly until the
    expected number of updates has been accepted, then back-to-back) to time when each one serves the new
    model, and checks that model against an exact float64 FedAvg of what the devices uploaded.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self.runner = _runner()
        self.procs = []
        self.conns = []
        self.shared = None
        self.session = None
        self.model = None            # the model devices of the next iteration will get (iteration - 1)
        self.iteration = None        # the servers' current iteration
        self.tag = 0

    # -- lifetime -----------------------------------------------------------------------------
    def start(self):
        ctx = mp.get_context("spawn")
        self.shared = ctx.RawArray("d", 2 * self.cfg.procs)
        for i in range(self.cfg.procs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, args=(i, self.cfg, child, self.shared), daemon=True,
                               name=f"loadgen-{i}")
            proc.start()
            child.close()
            self.procs.append(proc)
            self.conns.append(parent)
        for conn, proc in zip(self.conns, self.procs, strict=True):
            hello = _recv(conn, self.cfg.start_timeout)
            if not hello:
                raise RuntimeError(f"client process {proc.name} did not start")
        self.runner.run(self._open())
        return self

    async def _open(self):
        self.session = aiohttp.ClientSession(connector=_connector(self.cfg, limit=0),
                                             timeout=aiohttp.ClientTimeout(total=self.cfg.http_timeout))

    def pids(self):
        """PIDs of the client processes."""
        return [p.pid for p in self.procs]

    def close(self):
        for conn in self.conns:
            try:
                conn.send({"cmd": "stop"})
            except (OSError, BrokenPipeError):
                pass
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        if self.session is not None:
            self.runner.run(self.session.close())
        self.runner.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # -- coordinator requests --------------------------------------------------------------------
    async def _get_model(self, server, iteration):
        body = msg.build_get_model(self.cfg.fl_name, iteration)
        async with self.session.post(f"{server}/getModel", data=body, headers=HEADERS) as resp:
            payload = await resp.read()
        return msg.parse_get_model(payload)

    def sync_model(self, timeout=30.0):
        """Learns the servers' current iteration and the model its devices will train from."""
        async def sync():
            async with asyncio.timeout(timeout):
                while True:
                    first = await self._get_model(self.cfg.servers[0], 0)
                    if not isinstance(first, PlainTextReply) and first.retcode == ResponseCode.SUCCEED:
                        break
                    await asyncio.sleep(0.1)
                reply = await self._get_model(self.cfg.servers[0], first.iteration - 1)
                return reply.iteration, {k: np.array(v) for k, v in reply.features.items()}
        self.iteration, self.model = self.runner.run(sync())
        return self.iteration

    def calibrate_poll(self, server, requests=2000, concurrency=16, timeout=60.0):
        """Sends `requests` getModel polls that are answered SucNotReady (between iterations); returns how
        many were, so the caller can measure the server CPU per not-ready poll."""
        body = msg.build_get_model(self.cfg.fl_name, self.iteration)

        async def one(count):
            got = 0
            for _ in range(count):
                async with self.session.post(f"{server}/getModel", data=body, headers=HEADERS) as resp:
                    reply = msg.parse_get_model(await resp.read())
                got += (not isinstance(reply, PlainTextReply)) and reply.retcode == ResponseCode.SucNotReady
            return got

        async def run():
            async with asyncio.timeout(timeout):
                return sum(await asyncio.gather(*(one(requests // concurrency) for _ in range(concurrency))))
        return self.runner.run(run())

    # -- one iteration ----------------------------------------------------------------------------
    def run_iteration(self, devices, timeout=600.0):
        """Runs `devices` fresh devices (one iteration of the servers) and returns a result dict."""
        return self.runner.run(self._run_iteration(devices, timeout))

    def _accepted(self):
        return sum(self.shared[2 * i] for i in range(self.cfg.procs))

    async def _run_iteration(self, devices, timeout):
        loop = asyncio.get_running_loop()
        self.tag += 1
        iteration = self.iteration
        shares = [devices // self.cfg.procs + (i < devices % self.cfg.procs) for i in range(self.cfg.procs)]
        for i in range(self.cfg.procs):
            self.shared[2 * i] = self.shared[2 * i + 1] = 0.0
        go = time.monotonic()
        for conn, share in zip(self.conns, shares, strict=True):
            conn.send({"cmd": "run", "tag": self.tag, "devices": share, "timeout": timeout,
                       "min_iteration": iteration})
        workers = asyncio.gather(*(loop.run_in_executor(None, _recv, conn, timeout + 30)
                                   for conn in self.conns))
        watch = asyncio.ensure_future(self._watch(iteration, devices, timeout))
        try:
            parts = await workers
        finally:
            try:
                served = await asyncio.wait_for(watch, 30.0)
            except (TimeoutError, asyncio.CancelledError):
                served = {}
        if any(p is None for p in parts):
            raise RuntimeError("a client process did not answer in time")
        return self._summarise(iteration, devices, go, parts, served)

    async def _watch(self, iteration, expected, timeout):
        """server -> (monotonic time it first served the model of `iteration`, features, watcher polls)."""
        body = msg.build_get_model(self.cfg.fl_name, iteration)

        async def one(server):
            polls, last_poll = 0, 0.0
            while True:
                hot = self._accepted() >= expected
                now = time.monotonic()
                if hot or now - last_poll >= 0.1:
                    last_poll = now
                    polls += 1
                    try:
                        async with self.session.post(f"{server}/getModel", data=body,
                                                     headers=HEADERS) as resp:
                            payload = await resp.read()
                    except (aiohttp.ClientError, TimeoutError, OSError):
                        await asyncio.sleep(0.05)
                        continue
                    seen = time.monotonic()
                    reply = msg.parse_get_model(payload)
                    if not isinstance(reply, PlainTextReply) and reply.retcode == ResponseCode.SUCCEED:
                        return server, (seen, {k: np.array(v) for k, v in reply.features.items()}, polls)
                await asyncio.sleep(0.0003 if hot else 0.001)

        try:
            async with asyncio.timeout(timeout + 30):
                return dict(await asyncio.gather(*(one(s) for s in self.cfg.servers)))
        except TimeoutError:
            return {}

    def _summarise(self, iteration, devices, go, parts, served):
        counts = Counter()
        status = Counter()
        latencies, errors = [], []
        for p in parts:
            counts.update(p["counts"])
            status.update(p["status"])
            latencies.extend(p["update_latency"])
            errors.extend(p["errors"])
        accepted = sum(p["accepted"] for p in parts)
        last_accept = max(p["last_accept"] for p in parts)
        first_send = min((p["first_send"] for p in parts if p["first_send"]), default=go)
        out = {"iteration": iteration, "devices": devices, "accepted": accepted,
               "failures": sum(p["failures"] for p in parts), "errors": errors[:5],
               "status": {f"{r}:{s}": c for (r, s), c in sorted(status.items(), key=str)},
               "got_model": sum(p["got_model"] for p in parts),
               "update_p50_ms": percentile(latencies, 50) * 1e3,
               "update_p99_ms": percentile(latencies, 99) * 1e3,
               "update_latency_count": len(latencies),
               "devices_done_s": max(p["done"] for p in parts) - go, "first_send_s": first_send - go,
               "last_accept_s": last_accept - go,
               "device_get_model_requests": sum(c for (r, _), c in status.items() if r == "getModel")}
        complete = len(served) == len(self.cfg.servers)
        out["served_all"] = complete
        if complete:
            times = {s: t for s, (t, _, _) in served.items()}
            out["wall_s"] = max(times.values()) - go
            out["turnaround_ms"] = (max(times.values()) - last_accept) * 1e3 if accepted else None
            out["turnaround_per_server_ms"] = [(times[s] - last_accept) * 1e3 for s in self.cfg.servers]
            out["watcher_polls"] = sum(p for _, _, p in served.values())
            models = [served[s][1] for s in self.cfg.servers]
            reference, foreign = fedavg_reference(self.model, counts, iteration, self.cfg.delta)
            out["foreign_updates"] = foreign
            if reference is not None:
                errs = [model_error(m, reference) for m in models]
                out["agg_err_abs"] = max(e[0] for e in errs)
                out["agg_err_rel"] = max(e[1] for e in errs)
            out["servers_agree"] = all(
                all(np.array_equal(models[0][k], m[k]) for k in models[0]) and len(m) == len(models[0])
                for m in models[1:])
            self.model = models[0]
            self.iteration = iteration + 1
        else:
            out["wall_s"] = None
            out["turnaround_ms"] = None
        return out


# ---------------------------------------------------------------------------------------------
# Stand-alone CLI (against an already running cluster)
# ---------------------------------------------------------------------------------------------

def format_iteration(i, r):
    """One line per iteration."""
    wall = f"{r['wall_s']:.3f}s" if r.get("wall_s") is not None else "-"
    ta = f"{r['turnaround_ms']:.1f}ms" if r.get("turnaround_ms") is not None else "-"
    err = f"{r['agg_err_abs']:.2e}" if "agg_err_abs" in r else "-"
    rate = r["accepted"] / r["wall_s"] if r.get("wall_s") else 0.0
    return (f"iteration {i} (server {r['iteration']}): devices={r['devices']} accepted={r['accepted']} "
            f"failures={r['failures']} wall={wall} updates/s={rate:.0f} "
            f"update_p50={r['update_p50_ms']:.1f}ms "
            f"p99={r['update_p99_ms']:.1f}ms turnaround={ta} agg_err={err} "
            f"getModel/device={r['device_get_model_requests'] / max(1, r['devices']):.2f}")


def _connector(cfg, **kwargs):
    """An aiohttp connector that verifies https:// servers against cfg.ca_file when given."""
    if cfg.ca_file:
        from mindspore_federated.client.device import https_context

        kwargs["ssl"] = https_context(cfg.ca_file)
    return aiohttp.TCPConnector(**kwargs)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--servers", required=True, help="comma-separated base URLs (http://127.0.0.1:6666,...)")
    p.add_argument("--fl-name", default="Lenet")
    p.add_argument("--ca-file", default=None, help="https:// servers: verify their certificates with this CA")
    p.add_argument("--devices", type=int, default=1000,
                   help="devices per iteration (= start_fl_job_threshold)")
    p.add_argument("--iterations", type=int, default=2)
    p.add_argument("--procs", type=int, default=2, help="client processes")
    p.add_argument("--concurrency", type=int, default=32,
                   help="per process: devices in startFLJob..updateModel")
    p.add_argument("--timeout", type=float, default=600.0, help="per iteration")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    servers = tuple(s.strip().rstrip("/") for s in args.servers.split(",") if s.strip())
    cfg = LoadConfig(servers=servers, fl_name=args.fl_name, procs=args.procs, concurrency=args.concurrency,
                     ca_file=args.ca_file)
    with LoadGen(cfg) as lg:
        lg.sync_model()
        for i in range(1, args.iterations + 1):
            print(format_iteration(i, lg.run_iteration(args.devices, args.timeout)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
