"""The device API independent of the HTTP engine: routes, body limits, upload admission and buffers, the
availability gate, C++ verification, the round, and the mapping of every failure to an error reply."""
import asyncio
import collections
import json
from time import perf_counter

from redis.exceptions import RedisError

from mindspore_federated import _core, errors
from mindspore_federated.log import get_logger
from mindspore_federated.metrics import registry as metrics_registry
from mindspore_federated.metrics.server import RoundMetrics
from mindspore_federated.server import round_table, signed_rounds
from mindspore_federated.server.pki import DeviceVerifier

logger = get_logger(__name__)

UPLOAD_ROUNDS = round_table.UPLOAD_ROUNDS
HEALTH_PATH = "/healthz"
# The reference's reply to an empty, oversized or unreadable body (HTTP 500, JSON).
ERROR_JSON = json.dumps({"error_message": errors.POST_MESSAGE_FAILED, "code": "1"}).encode()


def max_body_bytes(spec):
    """Largest device body accepted: an upload of the whole model with room for names and metadata."""
    return max(16 << 20, 2 * spec.total_size() * 4 + (1 << 20))


class UploadPool:
    """At most `slots` model-sized upload bodies in memory at once, each read into a buffer reused from upload
    to upload (no per-request allocation). Waiters are served in arrival order."""

    def __init__(self, slots):
        self._free = [bytearray() for _ in range(slots)]
        self._waiters = collections.deque()

    def try_acquire(self):
        """A free buffer, or None when every slot is taken (or others are already waiting)."""
        return self._free.pop() if self._free and not self._waiters else None

    async def acquire(self):
        buf = self.try_acquire()
        if buf is not None:
            return buf
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(fut.result())  # it was handed a buffer just as it was cancelled
            raise

    def release(self, buf):
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(buf)
                return
        self._free.append(buf)

    @staticmethod
    def view(buf, size):
        """(buffer, writable view of `size` bytes): the buffer is replaced by a larger one when too small."""
        if len(buf) < size:
            buf = bytearray(size)
        return buf, memoryview(buf)[:size]


class ServedRoutes(dict):
    """path -> round name, without the cipher rounds the cluster's encrypt type does not run (read each time:
    the HTTP engines look paths up here, so those answer 404 as in the reference)."""

    def __init__(self, ctx, routes):
        super().__init__(routes)
        self.ctx = ctx

    def get(self, path, default=None):
        name = super().get(path)
        return name if name is not None and self.ctx.cipher.serves(name) else default

    def items(self):
        return [(path, name) for path, name in super().items() if self.ctx.cipher.serves(name)]


class DeviceApi:
    """What every HTTP engine calls: `route(path)`, then `handle(name, body)` (bytes, or a coroutine of them).

    Routes, verification and handlers come from the round table (server/round_table.py)."""

    def __init__(self, node, url_prefix, max_body, max_uploads):
        self.node = node
        self.ctx = node.ctx
        self.host = node.host
        self.max_body = max_body
        self.uploads = UploadPool(max_uploads)
        prefix = url_prefix if url_prefix else "/"
        self.routes = ServedRoutes(self.ctx, {prefix + r.name: r.name for r in round_table.ROUNDS})
        self._rounds = round_table.BY_NAME
        self._gate = node.gate
        # client_verify.pki_verify: every signed round is checked before its handler (server/signed_rounds.py)
        cfg = node.ctx.cfg
        self.pki = DeviceVerifier.from_config(cfg) if cfg["client_verify.pki_verify"] else None
        self._metrics = {r.name: RoundMetrics(r.name) for r in round_table.ROUNDS}
        self.metrics_path = metrics_registry.metrics_path(node.ctx.cfg) or None  # None: no /metrics

    def metrics(self):
        """The process's Prometheus metrics (text format)."""
        return metrics_registry.render()

    def route(self, path):
        """Round name of a request path, or None (a cipher round the cluster's encrypt type does not run)."""
        return self.routes.get(path)

    def health(self):
        ctx = self.ctx
        return json.dumps({"node_id": ctx.node_id, "iteration": ctx.iteration, "instance": ctx.inst,
                           "cache_ok": ctx.cache_ok, "running_state": ctx.running_state}).encode()

    def handle(self, name, body):
        """The reply to a (non-empty) body of round `name`: bytes when it is known at once (gate, verification,
        the synchronous rounds), else a coroutine that returns them. Never raises for anything a device sends."""
        start = perf_counter()
        ctx = self.ctx
        rnd = self._rounds[name]
        ctx.hooks.record_traffic(len(body), 0)
        self._metrics[name].received.inc(len(body))
        blocked = self._gate.check(rnd.read_only)
        if blocked is not None:
            return blocked.encode()
        if rnd.verifier is not None and not _core.verify(rnd.verifier, body):
            if rnd.total:
                ctx.stats.count_reply(rnd.total)
            return rnd.bad_body(self.host)
        if self.pki is not None and rnd.signed is not None:
            return self._run_signed(rnd, body, start)
        if rnd.is_async:
            return self._run_async(rnd, body, start)
        ctx.inflight += 1
        try:
            return self._finish(rnd, start, rnd.handler(self.host, body))
        except Exception as exc:  # noqa: BLE001 - any bug must become an error reply, not a dropped connection
            return self._finish(rnd, start, None, exc)
        finally:
            ctx.inflight -= 1

    async def _run_async(self, rnd, body, start):
        ctx = self.ctx
        ctx.inflight += 1
        try:
            return self._finish(rnd, start, await rnd.handler(self.host, body))
        except Exception as exc:  # noqa: BLE001 - as above
            return self._finish(rnd, start, None, exc)
        finally:
            ctx.inflight -= 1

    async def _run_signed(self, rnd, body, start):
        """The PKI step, then the round (a refusal counts in the round's total like a rejected body)."""
        ctx = self.ctx
        ctx.inflight += 1
        try:
            refusal = await signed_rounds.check(self.host, self.pki, rnd, body)
            if refusal is not None:
                if rnd.total:
                    ctx.stats.count_reply(rnd.total)
                return self._finish(rnd, start, refusal)
            reply = rnd.handler(self.host, body)
            return self._finish(rnd, start, await reply if rnd.is_async else reply)
        except Exception as exc:  # noqa: BLE001 - as above
            return self._finish(rnd, start, None, exc)
        finally:
            ctx.inflight -= 1

    def _finish(self, rnd, start, reply, exc=None):
        """Maps a round's result (or exception) to the reply bytes and counts them (and the round's time since
        `start`)."""
        if exc is None:
            reply = reply if reply is not None else rnd.bad_body(self.host)
        elif isinstance(exc, errors.Unavailable):
            reply = str(exc).encode()
        elif isinstance(exc, RedisError):
            logger.warning("%s: distributed cache error: %s", rnd.name, exc)
            self.node.cache_failed(exc)
            reply = errors.JOB_DISABLED.encode()
        else:
            logger.error("%s failed", rnd.name, exc_info=exc)
            reply = errors.INNER_ERROR.encode()
        self.ctx.hooks.record_traffic(0, len(reply))
        metrics = self._metrics[rnd.name]
        metrics.sent.inc(len(reply))
        metrics.latency.observe(perf_counter() - start)
        return reply
