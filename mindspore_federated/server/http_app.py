"""The device API on aiohttp (`client.http_engine: aiohttp`): one route per round plus /healthz."""
import contextlib

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from mindspore_federated.log import get_logger
from mindspore_federated.metrics.registry import CONTENT_TYPE
from mindspore_federated.server.device_api import ERROR_JSON, HEALTH_PATH, UPLOAD_ROUNDS
from mindspore_federated.server.http_fast import LISTEN_BACKLOG, raise_nofile_limit

logger = get_logger(__name__)

STREAM_CHUNK = 256 * 1024
# aiohttp's per-connection read buffer (flow control pauses a connection at 2x this): a connection whose
# upload waits for a slot then holds at most ~2 of these plus one socket read, not its whole body.
READ_BUFSIZE = 64 * 1024


def _error_json():
    return web.Response(status=500, content_type="application/json", body=ERROR_JSON)


async def _read_upload(api, request):
    """The body of an upload in a pooled buffer: (buffer to give back, view or None when unreadable)."""
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
    if size is None:  # chunked transfer: aiohttp enforces client_max_size
        try:
            return buf, memoryview(await request.read())
        except (web.HTTPRequestEntityTooLarge, ConnectionError, HttpProcessingError):
            return buf, None
    if size > api.max_body:
        return buf, None
    buf, view = api.uploads.view(buf, size)
    pos = 0
    while pos < size:
        try:
            chunk = await request.content.readany()
        except (ConnectionError, HttpProcessingError) as exc:  # the device went away mid-body
            logger.debug("upload not received whole: %s", exc)
            chunk = b""
        if not chunk or pos + len(chunk) > size:
            return buf, None
        view[pos:pos + len(chunk)] = chunk
        pos += len(chunk)
    return buf, view


async def _answer(api, name, body):
    reply = api.handle(name, body)
    return reply if isinstance(reply, bytes) else await reply


def _make_handler(api, name):
    async def handler(request):
        if name not in UPLOAD_ROUNDS:
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                return _error_json()
            return await _reply(request, await _answer(api, name, body) if body else None)
        buf, body = await _read_upload(api, request)
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


def build_app(api):
    """The aiohttp application of `api` (a DeviceApi): one route per round (any method), plus /healthz."""
    app = web.Application(client_max_size=api.max_body)
    for path, name in api.routes.items():
        app.router.add_route("*", path, _make_handler(api, name))

    async def healthz(_request):
        return web.Response(body=api.health(), content_type="application/json")

    app.router.add_get(HEALTH_PATH, healthz)
    if api.metrics_path:
        async def metrics(_request):
            return web.Response(body=api.metrics(), headers={"Content-Type": CONTENT_TYPE})

        app.router.add_get(api.metrics_path, metrics)
    return app


class AiohttpDeviceServer:
    """start/stop of the aiohttp engine, the same interface as the fast engine."""

    def __init__(self, api):
        self.api = api
        self._runner = None

    async def start(self, host, port, ssl_context=None, backlog=LISTEN_BACKLOG):
        raise_nofile_limit()
        runner = web.AppRunner(build_app(self.api), access_log=None, handle_signals=False,
                               read_bufsize=READ_BUFSIZE)
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
