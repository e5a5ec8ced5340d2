"""Thundering-herd load generator: N devices at once, each on its own connection, Java-SDK retry rules."""
import asyncio
import multiprocessing as mp
import os
import random
import resource
import time
from collections import Counter

from mindspore_federated.client import messages as msg
from mindspore_federated.client.device import https_context
from mindspore_federated.client.messages import PlainTextReply, ResponseCode

ID_FMT = "h{proc:03d}i{tag:05d}d{k:07d}"      # fixed length: update bodies are patched from one template
ID_LEN = 18
PLACEHOLDER = "#" * ID_LEN
LARGE = 65536                                   # replies this large are compared against a known copy
SAFEMODE_PAUSE_S = 0.5                          # the reference's simulator: 0.5 s on SucNotReady / safemode
POLL_FIRST_S, POLL_MAX_S = 0.5, 4.0             # getModel polling: 0.5 s, doubling up to 4 s (+-20 %)
CONNECT_RETRY_S = 0.5


def raise_nofile():
    """Soft RLIMIT_NOFILE up to the hard limit (every device is a socket); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


class _Closed(Exception):
    pass


class _HttpConn(asyncio.Protocol):
    """One device's keep-alive HTTP/1.1 connection. A large reply equal to one seen before (the model replies
    every device gets) is compared chunk by chunk instead of being stored, so thousands of devices downloading
    at once hold no model copy each."""

    def __init__(self, known):
        self.known = known          # Content-Length -> the last large body of that length
        self.transport = None
        self.waiter = None
        self.head = bytearray()
        self.length = None
        self.pos = 0
        self.ref = None
        self.body = None
        self.status = 0

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        self.transport = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(_Closed(f"connection lost: {exc}" if exc else "connection closed"))

    def data_received(self, data):
        if self.length is None:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self.head[:end]).split(b"\r\n")
            data = bytes(self.head[end + 4:])
            self.head = bytearray()
            self.status = int(lines[0].split(b" ")[1])
            length = 0
            for line in lines[1:]:
                key, _, value = line.partition(b":")
                if key.strip().lower() == b"content-length":
                    length = int(value)
            self.length, self.pos = length, 0
            self.ref = self.known.get(length) if length >= LARGE else None
            self.body = None if self.ref is not None else bytearray()
        take = data[:self.length - self.pos]
        if self.ref is not None:
            if self.ref[self.pos:self.pos + len(take)] != take:
                self.body = bytearray(self.ref[:self.pos])
                self.ref = None
        if self.ref is None:
            self.body += take
        self.pos += len(take)
        if self.pos >= self.length:
            payload = self.ref if self.ref is not None else bytes(self.body)
            if self.ref is None and self.length >= LARGE:
                self.known[self.length] = payload
            self.length, self.body, self.ref = None, None, None
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result((self.status, payload))

    async def request(self, path, body, timeout):
        if self.transport is None:
            raise _Closed("not connected")
        self.waiter = asyncio.get_running_loop().create_future()
        head = (f"POST {path} HTTP/1.1\r\nHost: h\r\nContent-Type: application/octet-stream\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        self.transport.writelines((head, body))
        async with asyncio.timeout(timeout):
            return await self.waiter

    def close(self):
        if self.transport is not None:
            self.transport.close()


def _kind(reply):
    """What a reply was: SUCCEED, SucNotReady, safemode, or the retcode name with its reason."""
    if isinstance(reply, PlainTextReply):
        if reply.is_safemode or reply.is_finished:
            return "safemode" if reply.is_safemode else "finished"
        return f"text: {reply.text[:80]}"
    if reply.retcode in (ResponseCode.SUCCEED, ResponseCode.SucNotReady):
        return ResponseCode(reply.retcode).name
    try:
        name = ResponseCode(reply.retcode).name
    except ValueError:
        name = str(reply.retcode)
    reason = reply.reason
    for marker in (" for fl id", " fl id", ":"):  # one kind per text, whatever the fl_id or iteration
        reason = reason.split(marker)[0]
    return f"{name}: {reason[:80]}"


class _Stats:
    def __init__(self):
        self.kinds = Counter()          # (round, kind) -> replies
        self.admitted_bad = Counter()   # (round, kind) -> non-success replies to admitted devices
        self.latency = {"startFLJob": [], "updateModel": [], "getModel": []}
        self.accepted = self.got_model = self.connect_retries = 0
        self.failures = []
        self.first_send = None
        self.last_accept = self.last_model = None

    def to_dict(self):
        return {"kinds": dict(self.kinds), "admitted_bad": dict(self.admitted_bad), "latency": self.latency,
                "accepted": self.accepted, "got_model": self.got_model,
                "connect_retries": self.connect_retries, "failures": self.failures[:20],
                "n_failures": len(self.failures), "first_send": self.first_send, "last_accept": self.last_accept,
                "last_model": self.last_model}


class _Herd:
    """One client process's devices for one iteration."""

    def __init__(self, index, host, port, fl_name, http_timeout, ca_file=None):
        self.index, self.host, self.port, self.fl_name = index, host, port, fl_name
        self.tls = {} if not ca_file else {"ssl": https_context(ca_file), "server_hostname": host}
        self.http_timeout = http_timeout
        self.known = {}
        self.parsed = {}                # id(large payload) -> (payload, parsed reply)
        self.template = {}              # iteration -> (head, tail) of the updateModel body
        self.rng = random.Random(index * 7919 + os.getpid())

    async def connect(self, st, deadline):
        loop = asyncio.get_running_loop()
        while True:
            try:
                _, conn = await asyncio.wait_for(
                    loop.create_connection(lambda: _HttpConn(self.known), self.host, self.port, **self.tls),
                    max(0.1, min(30.0, deadline - time.monotonic())))
                return conn
            except (OSError, asyncio.TimeoutError) as exc:
                st.connect_retries += 1
                if time.monotonic() >= deadline:
                    raise _Closed(f"connect: {type(exc).__name__}: {exc}") from None
                await asyncio.sleep(CONNECT_RETRY_S * (0.5 + self.rng.random()))

    def _parse(self, parse, payload):
        if len(payload) >= LARGE:
            hit = self.parsed.get(id(payload))
            if hit is not None and hit[0] is payload:
                return hit[1]
            reply = parse(payload)
            if len(self.parsed) > 8:
                self.parsed.clear()
            self.parsed[id(payload)] = (payload, reply)
            return reply
        return parse(payload)

    async def exchange(self, conn, round_name, body, parse, st):
        started = time.monotonic()
        if st.first_send is None:
            st.first_send = started
        try:
            status, payload = await conn.request("/" + round_name, body, self.http_timeout)
        except TimeoutError:
            st.kinds[(round_name, "no reply within the HTTP timeout")] += 1
            raise _Closed(f"{round_name}: no reply within {self.http_timeout:.0f} s") from None
        except _Closed as exc:
            st.kinds[(round_name, "connection lost")] += 1
            raise _Closed(f"{round_name}: {exc}") from None
        st.latency[round_name].append(time.monotonic() - started)
        if status != 200:
            return f"http{status}", None
        reply = self._parse(parse, payload)
        return _kind(reply), reply

    def update_body(self, reply, fl_id):
        tpl = self.template.get(reply.iteration)
        if tpl is None:
            upload = {n: w.astype("float32") + 1e-3 for n, w in reply.features.items()}
            body = msg.build_update_model(self.fl_name, PLACEHOLDER, reply.iteration, upload)
            pos = body.find(PLACEHOLDER.encode())
            tpl = self.template[reply.iteration] = (body[:pos], body[pos + ID_LEN:])
        return b"".join((tpl[0], fl_id.encode(), tpl[1]))

    async def device(self, tag, k, st, deadline):
        fl_id = ID_FMT.format(proc=self.index, tag=tag % 100000, k=k)
        conn = await self.connect(st, deadline)
        try:
            await self._device(conn, fl_id, st)
        finally:
            conn.close()

    def _note(self, st, round_name, kind, admitted):
        st.kinds[(round_name, kind)] += 1
        if admitted and kind not in ("SUCCEED", "SucNotReady"):
            st.admitted_bad[(round_name, kind)] += 1

    async def _device(self, conn, fl_id, st):
        start_body = msg.build_start_fl_job(self.fl_name, fl_id, 0, 1)
        admitted = False
        while True:  # startFLJob -> updateModel; restart from startFLJob when updateModel is refused
            kind, reply = await self.exchange(conn, "startFLJob", start_body, msg.parse_start_fl_job, st)
            self._note(st, "startFLJob", kind, admitted)
            if kind in ("safemode", "SucNotReady"):
                await asyncio.sleep(SAFEMODE_PAUSE_S)
                continue
            if kind != "SUCCEED":
                st.failures.append(f"{fl_id} startFLJob: {kind}")
                return  # OutOfTime: the SDK would wait until next_req_time, beyond this iteration
            admitted = True
            iteration = reply.iteration
            body = self.update_body(reply, fl_id)
            del reply
            kind, _ = await self.exchange(conn, "updateModel", body, msg.parse_update_model, st)
            del body
            self._note(st, "updateModel", kind, admitted)
            if kind == "SUCCEED":
                st.accepted += 1
                st.last_accept = time.monotonic()
                break
            await asyncio.sleep(SAFEMODE_PAUSE_S)
        get_body = msg.build_get_model(self.fl_name, iteration)
        delay = POLL_FIRST_S
        while True:
            await asyncio.sleep(delay * (0.8 + 0.4 * self.rng.random()))
            delay = min(delay * 2, POLL_MAX_S)
            kind, _ = await self.exchange(conn, "getModel", get_body, msg.parse_get_model, st)
            self._note(st, "getModel", kind, True)
            if kind == "SUCCEED":
                st.got_model += 1
                st.last_model = time.monotonic()
                return
            if kind not in ("SucNotReady", "safemode"):
                st.failures.append(f"{fl_id} getModel: {kind}")
                return

    async def run(self, tag, count, timeout):
        st = _Stats()
        deadline = time.monotonic() + timeout

        async def one(k):
            try:
                await self.device(tag, k, st, deadline)
            except (_Closed, TimeoutError, OSError) as exc:
                st.kinds[("transport", type(exc).__name__)] += 1
                st.failures.append(f"device {k}: {type(exc).__name__}: {exc}")

        try:
            async with asyncio.timeout(timeout):
                await asyncio.gather(*(one(k) for k in range(count)))
        except TimeoutError:
            st.failures.append(f"iteration not done within {timeout:.0f} s")
        self.template = {}
        self.parsed = {}
        return st.to_dict()


def _worker_main(index, host, port, fl_name, http_timeout, conn, ca_file=None):
    raise_nofile()
    try:
        import uvloop  # pylint: disable=import-outside-toplevel
        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    herd = _Herd(index, host, port, fl_name, http_timeout, ca_file)
    conn.send({"ready": os.getpid()})
    with runner:
        while True:
            if not conn.poll(3600):
                return
            cmd = conn.recv()
            if cmd.get("cmd") != "run":
                return
            conn.send(runner.run(herd.run(cmd["tag"], cmd["devices"], cmd["timeout"])))


class HerdClients:
    """`procs` spawned client processes; run_iteration(N) starts N devices at once across them."""

    def __init__(self, url, fl_name, procs, http_timeout=120.0, start_timeout=60.0, ca_file=None):
        """`ca_file`: the CA that signed the certificate of an https:// server (the devices verify it)."""
        self.ca_file = ca_file
        hostport = url.split("://", 1)[-1].rstrip("/")
        self.host, _, port = hostport.rpartition(":")
        self.port = int(port)
        self.fl_name, self.procs, self.http_timeout = fl_name, procs, http_timeout
        self.start_timeout = start_timeout
        self._workers = []
        self._tag = int(time.time()) % 100000

    def __enter__(self):
        ctx = mp.get_context("spawn")
        for i in range(self.procs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, daemon=True,
                               args=(i, self.host, self.port, self.fl_name, self.http_timeout, child,
                                     self.ca_file))
            proc.start()
            self._workers.append((proc, parent))
        for proc, parent in self._workers:
            if not parent.poll(self.start_timeout):
                raise RuntimeError(f"herd client {proc.pid} not ready within {self.start_timeout:.0f} s")
            parent.recv()
        return self

    def pids(self):
        return [proc.pid for proc, _ in self._workers]

    def __exit__(self, *exc):
        for _proc, parent in self._workers:
            try:
                parent.send({"cmd": "stop"})
            except OSError:
                pass
        deadline = time.monotonic() + 5.0
        for proc, _ in self._workers:
            proc.join(max(0.1, deadline - time.monotonic()))
        for proc, _ in self._workers:
            if proc.is_alive():  # still running devices (e.g. interrupted): by PID, not by name
                proc.kill()
                proc.join(5)

    def run_iteration(self, devices, timeout):
        """Every process starts its share of `devices` at the same instant; returns the merged stats."""
        self._tag += 1
        share = [devices // self.procs + (1 if i < devices % self.procs else 0) for i in range(self.procs)]
        go = time.monotonic()
        for (_, parent), count in zip(self._workers, share):
            parent.send({"cmd": "run", "tag": self._tag, "devices": count, "timeout": timeout})
        parts = []
        for proc, parent in self._workers:
            if not parent.poll(timeout + 60):
                raise RuntimeError(f"herd client {proc.pid} did not report within {timeout + 60:.0f} s")
            parts.append(parent.recv())
        return merge(parts, go)


def merge(parts, go):
    kinds, bad = Counter(), Counter()
    latency = {"startFLJob": [], "updateModel": [], "getModel": []}
    out = {"accepted": 0, "got_model": 0, "connect_retries": 0, "failures": [], "n_failures": 0}
    for p in parts:
        kinds.update(p["kinds"])
        bad.update(p["admitted_bad"])
        for k, v in p["latency"].items():
            latency[k].extend(v)
        for key in ("accepted", "got_model", "connect_retries", "n_failures"):
            out[key] += p[key]
        out["failures"].extend(p["failures"])
    ends = [p["last_model"] for p in parts if p["last_model"] is not None]
    out.update(kinds=kinds, admitted_bad=bad, latency=latency, go=go,
               wall=(max(ends) - go) if ends else None)
    return out


def percentile(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q / 100 * len(values)))]


__all__ = ["HerdClients", "raise_nofile", "percentile"]
