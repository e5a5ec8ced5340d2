"""The hostile-client limits of the fast engine (http_limits.HttpLimits) on the aiohttp engine: a protocol
factory around aiohttp's that refuses connections past the cap (503, then closed) and ends heads slower than
`header_timeout` (408, then closed); bodies are timed where the handlers read them (`read_chunks`)."""
import asyncio
import logging

from aiohttp import HttpVersion10, HttpVersion11, web
from aiohttp.http_exceptions import HttpProcessingError

from mindspore_federated import errors
from mindspore_federated.log import get_logger
from mindspore_federated.server.http_limits import DRAIN_S
from mindspore_federated.server.http_wire import BAD_REQUEST_BODY, TEXT, response_head

logger = get_logger(__name__)

TOO_MANY = errors.HTTP_TOO_MANY_CONNECTIONS.encode()
TIMED_OUT = errors.HTTP_REQUEST_TIMEOUT.encode()
HTTP_1 = (HttpVersion10, HttpVersion11)


def _in_default_expect(exc):
    """aiohttp's own Expect handler (still used for `OPTIONS *` and `CONNECT host:port`, which reach no route
    of ours) fails on header bytes that are not UTF-8: aiohttp answers 500, and that is bad input too."""
    if not isinstance(exc, UnicodeError):
        return False
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "_default_expect_handler":
            return True
        tb = tb.tb_next
    return False


class _BadInputFilter(logging.Filter):
    """aiohttp logs each malformed request (and each device gone mid-request) as an error with a traceback:
    hostile clients could flood the log. Those become one debug line (the device got its 400 either way)."""

    def filter(self, record):
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, (HttpProcessingError, ConnectionError)) or _in_default_expect(exc):
            record.levelno, record.levelname, record.exc_info = logging.DEBUG, "DEBUG", None
            record.msg, record.args = "bad request from a device: %s", (exc,)
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


SERVER_LOG = logging.getLogger(__name__ + ".aiohttp")
SERVER_LOG.addFilter(_BadInputFilter())


class SlowBody(Exception):
    """A request body slower than the minimum rate over a window."""


async def read_chunks(request, limits):
    """The chunks of a request body as they arrive (an async generator); raises SlowBody when fewer than
    `limits.body_min_rate` bytes/s arrived over a `limits.body_timeout` window."""
    loop = asyncio.get_running_loop()
    content = request.content
    mark, got = loop.time(), 0
    while True:
        try:
            chunk = await asyncio.wait_for(content.readany(), max(0.001, mark + limits.body_timeout - loop.time()))
        except asyncio.TimeoutError:
            chunk = None
        now = loop.time()
        if chunk is not None:
            if not chunk:
                return
            got += len(chunk)
            yield chunk
        if now - mark >= limits.body_timeout:
            if limits.body_too_slow(got, now - mark):
                raise SlowBody()
            mark, got = now, 0


def refuse(request, status, body):
    """`status` written as is (an HTTP/1.1 status line whatever the request's version), then the connection
    closed without reading more (aiohttp would linger reading a body); the response returned only completes
    the handler and is never sent."""
    transport = request.transport
    if transport is not None and transport.get_write_buffer_size() == 0:
        transport.write(response_head(status, TEXT, body, False) + body)
    request.protocol.force_close()
    return web.Response(status=status)


def slow_body_reply(request):
    """408, then the connection closed."""
    return refuse(request, 408, TIMED_OUT)


class _Guarded(asyncio.Protocol):
    """One connection: aiohttp's RequestHandler inside, with the cap and the head clock around it."""

    __slots__ = ("guard", "inner", "transport", "head_since", "in_request", "seen", "refused_at")

    def __init__(self, guard, inner):
        self.guard, self.inner, self.transport = guard, inner, None
        self.head_since = None       # monotonic time of the first byte of a head not yet handled
        self.in_request = False      # a handler is running for this connection
        self.seen = False            # bytes arrived while a handler ran (a pipelined head)
        self.refused_at = None

    def connection_made(self, transport):
        self.transport = transport
        guard = self.guard
        guard.conns.add(self)
        if len(guard.conns) > guard.cap:
            guard.refused += 1
            self.refused_at = asyncio.get_running_loop().time()
            transport.write(response_head(503, TEXT, TOO_MANY, False) + TOO_MANY)
            if transport.can_write_eof():
                transport.write_eof()   # the device reads the reply, then EOF; closed by the sweeper at the latest
            else:
                transport.close()
            return
        guard.by_inner[self.inner] = self
        self.inner.connection_made(transport)

    def data_received(self, data):
        if self.refused_at is not None:
            return
        if self.in_request:
            self.seen = True
        elif self.head_since is None:
            self.head_since = asyncio.get_running_loop().time()
        self.inner.data_received(data)

    def eof_received(self):
        return None if self.refused_at is not None else self.inner.eof_received()

    def connection_lost(self, exc):
        self.guard.conns.discard(self)
        if self.refused_at is None:
            self.guard.by_inner.pop(self.inner, None)
            self.inner.connection_lost(exc)

    def pause_writing(self):
        if self.refused_at is None:
            self.inner.pause_writing()

    def resume_writing(self):
        if self.refused_at is None:
            self.inner.resume_writing()

    def check_clock(self, now, limits):
        if self.refused_at is not None:
            if now - self.refused_at > DRAIN_S:
                self.transport.close()
        elif self.head_since is not None and not self.in_request and now - self.head_since > limits.header_timeout:
            self.guard.timed_out += 1
            self.head_since = None
            if self.transport.get_write_buffer_size() == 0:
                self.transport.write(response_head(408, TEXT, TIMED_OUT, False) + TIMED_OUT)
                self.transport.close()
            else:
                self.transport.abort()


class Guard:
    """The protocol factory handed to the listening socket in place of aiohttp's `web.Server` (everything else
    is delegated to it), a middleware that starts and stops the head clock, and the sweeper."""

    def __init__(self, limits, cap):
        self._server = None
        self.limits, self.cap = limits, cap
        self.conns = set()
        self.by_inner = {}
        self.refused = self.timed_out = 0
        self._sweeper = None

    def attach(self, server):
        """Wraps aiohttp's protocol factory `server` and starts the sweeper; returns self."""
        self._server = server
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        return self

    def __call__(self):
        return _Guarded(self, self._server())

    def __getattr__(self, name):
        return getattr(self._server, name)

    async def shutdown(self, timeout=None):
        if self._sweeper is not None:
            self._sweeper.cancel()
        await self._server.shutdown(timeout)


    @web.middleware
    async def middleware(self, request, handler):
        if request.version not in HTTP_1:   # aiohttp would answer "HTTP/0.9 ..." or "HTTP/2.0 ..."
            return refuse(request, 400, BAD_REQUEST_BODY)
        conn = self.by_inner.get(request.protocol)
        if conn is not None:
            conn.in_request, conn.head_since, conn.seen = True, None, False
        try:
            return await handler(request)
        finally:
            if conn is not None:
                conn.in_request = False
                if conn.seen:   # a pipelined head had begun: its clock starts now
                    conn.head_since = asyncio.get_running_loop().time()

    async def _sweep(self):
        every = self.limits.sweep_every()
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(every)
            now = loop.time()
            for conn in list(self.conns):
                conn.check_clock(now, self.limits)


class GuardedRunner(web.AppRunner):
    """aiohttp's AppRunner whose listening sockets get `guard` as their protocol factory."""

    def __init__(self, guard, app, **kwargs):
        super().__init__(app, **kwargs)
        self.guard = guard

    async def _make_server(self):
        return self.guard.attach(await super()._make_server())
