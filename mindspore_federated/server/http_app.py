"""The device API on aiohttp (`client.http_engine: aiohttp`): one route per round plus /healthz."""
import contextlib

from aiohttp import HttpVersion11, web
from aiohttp.http_exceptions import HttpProcessingError

from mindspore_federated.log import get_logger
from mindspore_federated.metrics.registry import CONTENT_TYPE
from mindspore_federated.server.device_api import ERROR_JSON, HEALTH_PATH, UPLOAD_ROUNDS
from mindspore_federated.server.http_guard import (
    SERVER_LOG,
    Guard,
    GuardedRunner,
    SlowBody,
    read_chunks,
    slow_body_reply,
)
from mindspore_federated.server.http_limits import LISTEN_BACKLOG, HttpLimits, raise_nofile_limit
from mindspore_federated.server.http_wire import CONTINUE

logger = get_logger(__name__)

STREAM_CHUNK = 256 * 1024
# aiohttp's per-connection read buffer (flow control pauses a connection at 2x this): a connection whose
# upload waits for a slot then holds at most ~2 of these plus one socket read, not its whole body.
READ_BUFSIZE = 64 * 1024


def _error_json():
    return web.Response(status=500, content_type="application/json", body=ERROR_JSON)


async def _read_small(api, request, limits):
    """The body of a non-upload round as bytes, None when over the limit (raises SlowBody)."""
    if request.content_length is not None and request.content_length > api.max_body:
        return None
    body = bytearray()
    try:
        async for chunk in read_chunks(request, limits):
            if len(body) + len(chunk) > api.max_body:
                return None
            body += chunk
    except (ConnectionError, HttpProcessingError) as exc:  # the device went away, or a broken chunked body
        logger.debug("body not received whole: %s", exc)
        return None
    return bytes(body)


async def _read_upload(api, request, limits):
    """The body of an upload in a pooled buffer: (buffer to give back, view or None when unreadable); raises
    SlowBody (after giving the buffer back) when the body comes too slowly."""
    size = request.content_length
    transport = request.transport
    buf = api.uploads.try_acquire()
    if buf is None:  # wait for a slot with the connection paused: the body stays in the kernel meanwhile
        transport.pause_reading()
        try:
            buf = await api.uploads.acquire()
        finally:
            if not transport.is_closing():
                transport.resume_reading()
    try:
        if size is None:  # chunked transfer
            body = await _read_small(api, request, limits)
            return buf, None if body is None else memoryview(body)
        if size > api.max_body:
            return buf, None
        buf, view = api.uploads.view(buf, size)
        pos = 0
        async for chunk in read_chunks(request, limits):
            if pos + len(chunk) > size:
                return buf, None
            view[pos:pos + len(chunk)] = chunk
            pos += len(chunk)
    except (ConnectionError, HttpProcessingError) as exc:  # the device went away mid-body
        logger.debug("upload not received whole: %s", exc)
        return buf, None
    except SlowBody:
        api.uploads.release(buf)   # at once: the slot is not held while the connection closes
        raise
    return buf, view if pos == size else None


async def _answer(api, name, body):
    reply = api.handle(name, body)
    return reply if isinstance(reply, bytes) else await reply


def _make_handler(api, name, limits):
    async def handler(request):
        try:
            if name not in UPLOAD_ROUNDS:
                body = await _read_small(api, request, limits)
                return await _reply(request, await _answer(api, name, body) if body else None)
            buf, body = await _read_upload(api, request, limits)
        except SlowBody:
            return slow_body_reply(request)
        try:
            reply = await _answer(api, name, body) if body else None  # done with the body when it returns
        finally:
            if body is not None:
                with contextlib.suppress(BufferError):  # a view still exported: refcounting frees it
                    body.release()
            api.uploads.release(buf)
        return await _reply(request, reply)

    return handler


async def _reply(request, reply):
    if reply is None:
        return _error_json()
    if len(reply) <= STREAM_CHUNK:
        return web.Response(body=reply)
    # a large (model) reply goes in chunks, waiting for the transport to drain between them
    resp = web.StreamResponse()
    resp.content_length = len(reply)
    resp.content_type = "application/octet-stream"
    await resp.prepare(request)
    view = memoryview(reply)
    for start in range(0, len(reply), STREAM_CHUNK):
        await resp.write(view[start:start + STREAM_CHUNK])
    await resp.write_eof()
    return resp


async def _expect(request):
    """`Expect: 100-continue` answered (HTTP/1.1), any other expectation ignored, as by the fast engine
    (aiohttp's own handler echoes the header into a 417 and fails on bytes that are not UTF-8)."""
    if request.version == HttpVersion11 and request.headers.get("Expect", "").lower() == "100-continue":
        with contextlib.suppress(ConnectionError):   # the device went away: the handler finds out
            await request.writer.write(CONTINUE)


def build_app(api, limits=None, middlewares=()):
    """The aiohttp application of `api` (a DeviceApi): one route per round (any method), plus /healthz."""
    limits = limits if limits is not None else HttpLimits()
    app = web.Application(client_max_size=api.max_body, middlewares=list(middlewares))
    for path, name in api.routes.items():
        app.router.add_route("*", path, _make_handler(api, name, limits), expect_handler=_expect)

    async def healthz(_request):
        return web.Response(body=api.health(), content_type="application/json")

    app.router.add_get(HEALTH_PATH, healthz, expect_handler=_expect)
    if api.metrics_path:
        async def metrics(_request):
            return web.Response(body=api.metrics(), headers={"Content-Type": CONTENT_TYPE})

        app.router.add_get(api.metrics_path, metrics, expect_handler=_expect)

    async def not_found(_request):
        raise web.HTTPNotFound()

    # every other path: a 404 from a route of ours, so aiohttp's own expect handler is never used
    app.router.add_route("*", "/{tail:.*}", not_found, expect_handler=_expect)
    return app


class AiohttpDeviceServer:
    """start/stop of the aiohttp engine, the same interface as the fast engine."""

    def __init__(self, api, limits=None):
        self.api = api
        self.limits = limits if limits is not None else HttpLimits()
        self.guard = None
        self._runner = None

    async def start(self, host, port, ssl_context=None, backlog=LISTEN_BACKLOG):
        self.guard = guard = Guard(self.limits, self.limits.connection_cap(raise_nofile_limit()))
        runner = GuardedRunner(guard, build_app(self.api, self.limits, (guard.middleware,)), access_log=None,
                               handle_signals=False, read_bufsize=READ_BUFSIZE,
                               keepalive_timeout=self.limits.idle_timeout, logger=SERVER_LOG)
        await runner.setup()
        site = web.TCPSite(runner, host, port, backlog=backlog, reuse_address=True, ssl_context=ssl_context)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner

    async def stop(self):
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
