"""Runs fuzz inputs (tests/fuzz/mutate.py) against a live device API over raw sockets, plain or TLS, and
judges every connection: what the server sent must be a sequence of well-formed HTTP/1.1 replies, and the
connection must end (close, or replies then quiet when kept open over TLS) within a deadline. Afterwards a
real iteration must succeed (`real_iteration`)."""
import asyncio
import collections
import dataclasses
import re
import ssl
import time

import numpy as np

from tests.fuzz.mutate import make_input, seeds

STATUS_RE = re.compile(rb"HTTP/1\.[01] ([1-5]\d\d) [\x20-\x7e]*\Z")
HEADER_RE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e]*\Z")
FAILURES = ("hang", "malformed", "connect_failed", "health_failed")


class Malformed(Exception):
    """The server sent bytes that are not well-formed HTTP/1.1 replies."""


def _reply_head(data, pos):
    """(status, Content-Length or None, end of the head) of the reply at `pos`; raises Malformed."""
    end = data.find(b"\r\n\r\n", pos)
    if end < 0:
        raise Malformed(f"reply head truncated: {bytes(data[pos:pos + 80])!r}")
    lines = bytes(data[pos:end]).split(b"\r\n")
    match = STATUS_RE.match(lines[0])
    if not match:
        raise Malformed(f"bad status line {lines[0][:80]!r}")
    length = None
    for line in lines[1:]:
        if not HEADER_RE.match(line):
            raise Malformed(f"bad header line {line[:80]!r}")
        name, _, value = line.partition(b":")
        name, value = name.lower(), value.strip()
        if name == b"content-length":
            if not value.isdigit() or length is not None:
                raise Malformed(f"bad Content-Length {value[:40]!r}")
            length = int(value)
        elif name == b"transfer-encoding":
            raise Malformed("a chunked reply (neither engine sends one)")
    return int(match.group(1)), length, end + 4


def count_replies(data, methods):
    """Complete final replies in `data` (100 Continue not counted); raises Malformed unless `data` is exactly a
    sequence of well-formed replies. `methods`: of the requests sent, in order (a reply to HEAD has no body)."""
    pos = count = 0
    while pos < len(data):
        status, length, pos = _reply_head(data, pos)
        if 100 <= status < 200:
            continue
        if length is None:
            raise Malformed(f"reply {status} without Content-Length")
        head_only = count < len(methods) and methods[count] == b"HEAD" and (
            pos == len(data) or data.startswith(b"HTTP/1.", pos))
        if not head_only:
            if pos + length > len(data):
                raise Malformed(f"reply body truncated ({len(data) - pos} of {length} bytes)")
            pos += length
        count += 1
    return count


@dataclasses.dataclass
class Target:
    """Where the fuzzed server listens, and how to reach it (TLS: a context trusting the CA)."""

    host: str
    port: int
    tls: ssl.SSLContext | None = None
    server_hostname: str | None = None

    @classmethod
    def of(cls, address, tls_ca=None, server_hostname=None):
        host, port = address.rsplit(":", 1)
        ctx = None
        if tls_ca:
            ctx = ssl.create_default_context(cafile=tls_ca)
            ctx.check_hostname = server_hostname is not None
        return cls(host, int(port), ctx, server_hostname or (host if tls_ca else None))

    async def connect(self, timeout):
        return await asyncio.wait_for(asyncio.open_connection(
            self.host, self.port, ssl=self.tls, server_hostname=self.server_hostname), timeout)


async def _send(writer, inp):
    try:
        for i, piece in enumerate(inp.pieces):
            if i:
                await asyncio.sleep(0.005)
            writer.write(piece)
            await writer.drain()
        if inp.half_close and writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, RuntimeError):
        pass   # the server closed first: what it said is judged by the reader


async def run_one(target, inp, deadline_s, quiet_s):
    """(outcome, detail) of one input on its own connection."""
    loop = asyncio.get_running_loop()
    try:
        reader, writer = await target.connect(deadline_s)
    except (OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
        return "connect_failed", repr(exc)
    sender = loop.create_task(_send(writer, inp))
    half_closed = inp.half_close and target.tls is None
    end, data, outcome = loop.time() + deadline_s, bytearray(), None
    try:
        while outcome is None:
            wait = end - loop.time()
            replies = count_replies_safe(data, inp.methods)
            if replies and not half_closed:
                wait = min(wait, quiet_s)   # kept open: replies, then quiet, is an end
            if wait <= 0:
                outcome = "hang"
                break
            try:
                chunk = await asyncio.wait_for(reader.read(65536), wait)
            except asyncio.TimeoutError:
                outcome = "replied_open" if replies and not half_closed and loop.time() < end else "hang"
                break
            except (ConnectionError, ssl.SSLError):   # a reset, or our own write hit the server's close
                outcome = "reset"
                break
            if not chunk:
                outcome = "closed"
                break
            data += chunk
        replies = count_replies(data, inp.methods)
    except Malformed as exc:
        return "malformed", str(exc)
    finally:
        sender.cancel()
        writer.transport.abort()
    if outcome == "hang":
        return "hang", f"{len(data)} bytes, {replies} replies by the deadline"
    if outcome == "closed":
        return ("replied_closed" if replies else "closed_no_reply"), ""
    return outcome, ""


def count_replies_safe(data, methods):
    """count_replies of the bytes so far, where a truncated last reply is simply not counted yet."""
    try:
        return count_replies(data, methods)
    except Malformed:
        return 0


async def health_ok(target, timeout=10.0):
    """True when GET /healthz on a new connection gets a 200 within `timeout`."""
    try:
        reader, writer = await target.connect(timeout)
    except (OSError, asyncio.TimeoutError, ssl.SSLError):
        return False
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), timeout)
        return data.startswith(b"HTTP/1.1 200 ")
    except (OSError, asyncio.TimeoutError, ssl.SSLError):
        return False
    finally:
        writer.transport.abort()


@dataclasses.dataclass
class Result:
    inputs: int = 0
    outcomes: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    operations: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    failures: list = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self):
        return sum(self.outcomes[k] for k in FAILURES)

    def summary(self):
        return {"inputs": self.inputs, "seconds": round(self.seconds, 1), "failed": self.failed,
                "outcomes": dict(self.outcomes), "operations": dict(self.operations),
                "first_failures": self.failures[:20]}


async def campaign(target, fl_name, inputs, seed=0, concurrency=32, deadline_s=15.0, quiet_s=1.0,
                   health_every=1000, progress=None):
    """Runs `inputs` mutated requests, `concurrency` connections at a time; every `health_every` inputs the
    server must answer /healthz. Returns a Result."""
    rng = np.random.default_rng(seed)
    seed_list = seeds(fl_name)
    result = Result()
    issued = 0
    t0 = time.monotonic()

    async def worker():
        nonlocal issued
        while issued < inputs:
            issued += 1
            number = issued
            inp = make_input(seed_list, rng)
            result.operations.update(inp.ops)
            outcome, detail = await run_one(target, inp, deadline_s, quiet_s)
            result.outcomes[outcome] += 1
            result.inputs += 1
            if outcome in FAILURES:
                result.failures.append({"outcome": outcome, "detail": detail, "ops": inp.ops,
                                        "input": repr(b"".join(inp.pieces)[:400])})
            if number % health_every == 0:
                if not await health_ok(target):
                    result.outcomes["health_failed"] += 1
                    result.failures.append({"outcome": "health_failed", "after": number})
                if progress is not None:
                    progress(number, result)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.monotonic() - t0
    return result


def real_iteration(address, fl_name, threshold):
    """A real iteration of the small test model (tests/utils/server_entry.py) from the current one: `threshold`
    devices start, upload, and get the exact FedAvg. Returns the new iteration number."""
    from tests.utils.cluster import SUCCEED, health, start_job, update, wait_model

    current = health(address)["iteration"]
    rng = np.random.default_rng(current)
    sizes = [int(x) for x in rng.integers(1, 9, threshold)]
    uploads = [{"w1": rng.standard_normal(6).astype(np.float32), "b1": rng.standard_normal(3).astype(np.float32)}
               for _ in sizes]
    for i, n in enumerate(sizes):
        reply = start_job(address, fl_name, f"real{current}-{i}", current, n)
        assert (reply.retcode, reply.iteration) == (SUCCEED, current), reply
    for i in range(threshold):
        assert update(address, fl_name, f"real{current}-{i}", current, uploads[i]).retcode == SUCCEED
    model = wait_model(address, fl_name, current, timeout=30.0)
    assert model.iteration == current + 1
    for name in ("w1", "b1"):
        expect = sum(u[name] for u in uploads) / np.float32(sum(sizes))
        np.testing.assert_allclose(model.features[name].reshape(-1), expect, rtol=1e-6)
    return current + 1
