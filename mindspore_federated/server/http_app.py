"""aiohttp app of the device API: body limits, availability gate, C++ verification, then the round."""
import asyncio
import contextlib
import json

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
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
                   lambda n: replies.pull_weight(REQUEST_ERROR, "The schema of RequestPullWeight is invalid.",
                                                 n.iteration)),
    "pushWeight": ("RequestPushWeight", "push_weight", True,
                   lambda n: replies.push_weight(REQUEST_ERROR, "The schema of RequestPushWeight is invalid.",
                                                 n.iteration)),
    "pushMetrics": ("RequestPushMetrics", "push_metrics", True, lambda n: replies.push_metrics(REQUEST_ERROR)),
}


def _error_json(status=500):
    return web.Response(status=status, content_type="application/json",
                        text=json.dumps({"error_message": errors.POST_MESSAGE_FAILED, "code": "1"}))


UPLOAD_ROUNDS = ("updateModel", "pushWeight")
STREAM_CHUNK = 256 * 1024
# aiohttp's per-connection read buffer (flow control pauses a connection at 2x this): a connection whose
# upload waits for a slot then holds at most ~2 of these plus one socket read, not its whole body.
READ_BUFSIZE = 64 * 1024


class UploadBuffers:
    """Admission and memory for model-sized uploads: at most `slots` bodies are read at once, each into a
    buffer that is reused from upload to upload (no per-request allocation, nothing left for the GC).

    An upload waiting for a slot has its connection paused, so its body stays in the kernel's socket
    buffers instead of piling up in the HTTP parser. Handlers must be done with the body (the round
    accumulates it before replying) when the context exits: the buffer is then handed to the next upload.
    """

    def __init__(self, slots, max_body):
        self.max_body = max_body
        self._free = [bytearray() for _ in range(slots)]
        self._slots = asyncio.Semaphore(slots)

    @contextlib.asynccontextmanager
    async def body(self, request):
        """Yields the request body as a memoryview into a pooled buffer, or None when it is too large,
        truncated or not length-delimited beyond the limit."""
        transport = request.transport if self._slots.locked() else None
        if transport is not None:
            transport.pause_reading()
        try:
            await self._slots.acquire()
        finally:
            if transport is not None and not transport.is_closing():
                transport.resume_reading()
        buf = self._free.pop()
        try:
            view = await self._read_into(request, buf)
            if view is not None and isinstance(view.obj, bytearray):
                buf = view.obj  # the buffer may have grown: keep the larger one for later uploads
            try:
                yield view
            finally:
                if view is not None:
                    with contextlib.suppress(BufferError):  # a view still exported: refcounting frees it
                        view.release()
        finally:
            self._free.append(buf)
            self._slots.release()

    async def _read_into(self, request, buf):
        size = request.content_length
        if size is None:  # chunked transfer: aiohttp enforces client_max_size
            try:
                return memoryview(await request.read())
            except web.HTTPRequestEntityTooLarge:
                return None
        if size > self.max_body:
            return None
        if len(buf) < size:
            buf = bytearray(size)
        view, pos = memoryview(buf), 0
        while pos < size:
            try:
                chunk = await request.content.readany()
            except (ConnectionError, HttpProcessingError) as exc:  # the device went away mid-body
                logger.debug("upload not received whole: %s", exc)
                chunk = b""
            if not chunk or pos + len(chunk) > size:
                view.release()
                return None
            view[pos:pos + len(chunk)] = chunk
            pos += len(chunk)
        body = view[:size]
        view.release()
        return body


def _make_handler(node, rounds, name, uploads):
    table, method_name, is_async, bad_reply = ROUNDS[name]
    method = getattr(rounds, method_name)

    async def handler(request):
        if uploads is None:
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                return _error_json()
            return await serve(request, body)
        async with uploads.body(request) as body:  # a reused buffer; at most `slots` bodies in memory
            if body is None:
                return _error_json()
            return await serve(request, body)

    async def serve(request, body):
        if not body:
            return _error_json()
        node.hooks.record_traffic(len(body), 0)
        blocked = node.gate(name)
        if blocked is not None:
            return web.Response(body=blocked.encode())
        if table is not None and not _core.verify(table, body):
            node.stats.count_rejected_body(name)
            return web.Response(body=bad_reply(node))
        node.inflight += 1
        try:
            reply = (await method(body)) if is_async else method(body)
            if reply is None:
                reply = bad_reply(node)
        except Unavailable as exc:
            reply = str(exc).encode()
        except RedisError as exc:
            logger.warning("%s: distributed cache error: %s", name, exc)
            node.cache_ok = False
            node.request_sync()
            reply = errors.JOB_DISABLED.encode()
        except Exception:  # noqa: BLE001 - any bug must become an error reply, not a dropped connection
            logger.exception("%s failed", name)
            reply = errors.INNER_ERROR.encode()
        finally:
            node.inflight -= 1
        node.hooks.record_traffic(0, len(reply))
        if len(reply) <= STREAM_CHUNK:
            return web.Response(body=reply)
        return await _stream(request, reply)

    return handler


async def _stream(request, reply):
    """Sends a large (model) reply in chunks, waiting for the transport to drain between them, so a slow
    connection holds at most one chunk instead of a copy of the model."""
    resp = web.StreamResponse()
    resp.content_length = len(reply)
    resp.content_type = "application/octet-stream"
    await resp.prepare(request)
    view = memoryview(reply)
    for start in range(0, len(reply), STREAM_CHUNK):
        await resp.write(view[start:start + STREAM_CHUNK])
    await resp.write_eof()
    return resp


def build_app(node, url_prefix, max_body, max_uploads=8):
    """The device-facing application: one route per round (any method), plus /healthz."""
    app = web.Application(client_max_size=max_body)
    rounds = Rounds(node)
    prefix = url_prefix if url_prefix else "/"
    uploads = UploadBuffers(max_uploads, max_body)
    for name in ROUNDS:
        app.router.add_route("*", prefix + name,
                             _make_handler(node, rounds, name, uploads if name in UPLOAD_ROUNDS else None))

    async def healthz(_request):
        return web.json_response({"node_id": node.node_id, "iteration": node.iteration,
                                  "instance": node.inst, "cache_ok": node.cache_ok,
                                  "running_state": node.running_state})

    app.router.add_get("/healthz", healthz)
    return app
