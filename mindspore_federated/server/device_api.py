"""The device API independent of the HTTP engine: routes, body limits, upload admission and buffers, the
availability gate, C++ verification, the round, and the mapping of every failure to an error reply."""
import asyncio
import collections
import json

from redis.exceptions import RedisError

from mindspore_federated import _core, errors
from mindspore_federated.log import get_logger
from mindspore_federated.server import replies
from mindspore_federated.server.replies import REQUEST_ERROR
from mindspore_federated.server.rounds import Rounds, Unavailable

logger = get_logger(__name__)

# round name -> (request table, Rounds method, is coroutine, reply for a body that fails verification);
# table None: the round verifies the body itself (one C++ pass) and returns None when it is invalid.
ROUNDS = {
    "startFLJob": ("RequestFLJob", "start_fl_job", True,
                   lambda n: replies.fl_job(REQUEST_ERROR, errors.FLJOB_SCHEMA, n.iteration, n.next_req_time())),
    "updateModel": (None, "update_model", True,
                    lambda n: replies.update_model(REQUEST_ERROR, errors.UPDATE_SCHEMA, n.next_req_time())),
    "getModel": ("RequestGetModel", "get_model", False,
                 lambda n: replies.get_model(REQUEST_ERROR, errors.GETMODEL_SCHEMA, n.iteration)),
    "pullWeight": ("RequestPullWeight", "pull_weight", False,
                   lambda n: replies.pull_weight(REQUEST_ERROR, errors.PULL_SCHEMA, n.iteration)),
    "pushWeight": ("RequestPushWeight", "push_weight", True,
                   lambda n: replies.push_weight(REQUEST_ERROR, errors.PUSH_SCHEMA, n.iteration)),
    "pushMetrics": ("RequestPushMetrics", "push_metrics", True, lambda n: replies.push_metrics(REQUEST_ERROR)),
}
UPLOAD_ROUNDS = frozenset(("updateModel", "pushWeight"))
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


class DeviceApi:
    """What every HTTP engine calls: `route(path)`, then `handle(name, body)` (bytes, or a coroutine of them)."""

    def __init__(self, node, url_prefix, max_body, max_uploads):
        self.node = node
        self.max_body = max_body
        self.uploads = UploadPool(max_uploads)
        self._rounds = Rounds(node)
        prefix = url_prefix if url_prefix else "/"
        self.routes = {prefix + name: name for name in ROUNDS}
        self._methods = {name: getattr(self._rounds, spec[1]) for name, spec in ROUNDS.items()}

    def route(self, path):
        """Round name of a request path, or None."""
        return self.routes.get(path)

    def health(self):
        node = self.node
        return json.dumps({"node_id": node.node_id, "iteration": node.iteration, "instance": node.inst,
                           "cache_ok": node.cache_ok, "running_state": node.running_state}).encode()

    def handle(self, name, body):
        """The reply to a (non-empty) body of round `name`: bytes when it is known at once (gate, verification,
        the synchronous rounds), else a coroutine that returns them. Never raises for anything a device sends."""
        node = self.node
        table, _, is_async, bad_reply = ROUNDS[name]
        node.hooks.record_traffic(len(body), 0)
        blocked = node.gate(name)
        if blocked is not None:
            return blocked.encode()
        if table is not None and not _core.verify(table, body):
            node.stats.count_rejected_body(name)
            return bad_reply(node)
        if is_async:
            return self._run_async(name, body)
        node.inflight += 1
        try:
            return self._finish(name, self._methods[name](body))
        except Exception as exc:  # noqa: BLE001 - any bug must become an error reply, not a dropped connection
            return self._finish(name, None, exc)
        finally:
            node.inflight -= 1

    async def _run_async(self, name, body):
        node = self.node
        node.inflight += 1
        try:
            return self._finish(name, await self._methods[name](body))
        except Exception as exc:  # noqa: BLE001 - as above
            return self._finish(name, None, exc)
        finally:
            node.inflight -= 1

    def _finish(self, name, reply, exc=None):
        """Maps a round's result (or exception) to the reply bytes and counts them."""
        node = self.node
        if exc is None:
            reply = reply if reply is not None else ROUNDS[name][3](node)
        elif isinstance(exc, Unavailable):
            reply = str(exc).encode()
        elif isinstance(exc, RedisError):
            logger.warning("%s: distributed cache error: %s", name, exc)
            node.cache_failed(exc)
            reply = errors.JOB_DISABLED.encode()
        else:
            logger.error("%s failed", name, exc_info=exc)
            reply = errors.INNER_ERROR.encode()
        node.hooks.record_traffic(0, len(reply))
        return reply
