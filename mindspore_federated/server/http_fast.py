"""The device API on a lean HTTP/1.1 server (`client.http_engine: fast`, the default): an asyncio
BufferedProtocol per connection that reads a body straight into its buffer (uploads: a pooled one, admitted
before more than one small read of the request is taken from the kernel) and writes a reply as one header plus
the cached reply bytes, with no per-request framework objects; a waiting connection holds a few KiB (over TLS,
replies go out in bounded pieces: http_tls.TlsSender). At most MAX_ACTIVE requests are in progress; other
connections are not read meanwhile (backpressure, not errors).

Request heads and chunked framing are parsed by llhttp (http_wire.RequestParser, strict); a Content-Length
body never goes through it. Supported: keep-alive and pipelining (answered in order), HTTP/1.0 and 1.1,
Content-Length and chunked request bodies, `Expect: 100-continue`, any standard method on the round paths
(HEAD gets the head of the reply only), GET /healthz. Malformed requests get 400 and the connection is closed.
Hostile clients (http_limits.HttpLimits): past `max_connections` a connection gets 503 and is closed; a head
not complete within `header_timeout`, or a body slower than `body_min_rate` over a `body_timeout` window,
gets 408 and is closed (an upload slot it held is given back at once); an idle connection is closed after
`idle_timeout`.
"""
import asyncio
import collections
import contextlib
import os
import socket
import time

from mindspore_federated import errors
from mindspore_federated.log import get_logger
from mindspore_federated.metrics.registry import CONTENT_TYPE_BYTES
from mindspore_federated.server.device_api import ERROR_JSON
from mindspore_federated.server.http_limits import DRAIN_S, LISTEN_BACKLOG, HttpLimits, raise_nofile_limit
from mindspore_federated.server.http_tls import TlsSender
from mindspore_federated.server.http_wire import (
    BAD_REQUEST_BODY,
    CONTINUE,
    JSON,
    MAX_HEAD,
    OCTETS,
    TEXT,
    BadRequest,
    BodyTooLarge,
    RequestParser,
    response_head,
)

logger = get_logger(__name__)
PROMETHEUS = CONTENT_TYPE_BYTES

SENDFILE_MIN = 1 << 20      # replies at least this large go out with sendfile(2) from a memfd copy of them
READ_CHUNK = 2048           # one read outside a body (heads, small bodies, chunked framing): what a
                            # connection waiting for an upload slot holds of its body; the rest stays in the kernel

MAX_ACTIVE = 512            # requests in progress at once; further connections stop being read (backpressure)
__all__ = ("FastDeviceServer", "LISTEN_BACKLOG", "raise_nofile_limit")
TOO_MANY = errors.HTTP_TOO_MANY_CONNECTIONS.encode()
TIMED_OUT = errors.HTTP_REQUEST_TIMEOUT.encode()


# connection states
_HEAD, _WAIT_SLOT, _BODY, _CHUNKED, _BUSY, _CLOSED, _DRAIN = range(7)
DRAIN_MAX = 1 << 20         # after an error reply, this much more input is read and dropped before closing


class _MemfdCache:
    """memfd copies of the few large cached replies in use (the model replies of the current iteration), so
    they can be sent with sendfile(2): the kernel takes the pages instead of copying the bytes each time."""

    def __init__(self, size=4):
        self._entries = collections.OrderedDict()  # id(reply) -> (reply, fd); the reference keeps id unique
        self._size = size

    def fd_of(self, reply):
        entry = self._entries.get(id(reply))
        if entry is not None and entry[0] is reply:
            self._entries.move_to_end(id(reply))
            return entry[1]
        fd = os.memfd_create("msf-reply", os.MFD_CLOEXEC)
        view, pos = memoryview(reply), 0
        while pos < len(reply):
            pos += os.write(fd, view[pos:])
        self._entries[id(reply)] = (reply, fd)
        while len(self._entries) > self._size:
            os.close(self._entries.popitem(last=False)[1][1])
        return fd

    def close(self):
        while self._entries:
            os.close(self._entries.popitem()[1][1])


class _Connection(TlsSender, asyncio.BufferedProtocol):
    """One device connection: (admission) -> head -> (slot) -> body -> round -> reply, then the next one."""

    __slots__ = ("server", "api", "transport", "state", "buf", "req", "parser", "slot", "target", "pos",
                 "deadline", "got", "mark_time", "mark_got", "_slot_task", "_reply_task", "counted", "parked",
                 "outq", "write_paused", "close_after")

    def __init__(self, server):
        self.server = server
        self.api = server.api
        self.transport = None
        self.state = _HEAD
        self.buf = bytearray()         # unparsed bytes (head, chunked framing, pipelined requests)
        self.req = None
        self.parser = None             # llhttp on the request being read (head, then chunked framing)
        self.slot = None               # pooled upload buffer owned by this connection
        self.target = None             # writable view the body goes into
        self.pos = 0
        self.deadline = time.monotonic() + server.limits.idle_timeout   # of a head or an idle wait
        self.got = 0                   # bytes received (the body rate is measured on it)
        self.mark_time, self.mark_got = 0.0, 0   # start of the current body-rate window
        self._slot_task = None
        self._reply_task = None        # the running round (a strong reference: the loop keeps weak ones)
        self.counted = False           # this connection's request counts in server.active
        self.parked = False            # waiting in server.parked for room among the active requests
        self.outq = None               # TLS only: replies not yet handed to the transport (bounded pieces)
        self.write_paused = False      # the transport asked for no more writes (its buffer is full)
        self.close_after = False       # TLS only: close once outq is sent

    # ---- asyncio callbacks ------------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport
        if self.server.tls:
            self.outq = collections.deque()
            self.bound_tls_buffers(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if len(self.server.connections) >= self.server.max_connections:
            self.server.refused += 1
            self._finish(503, TEXT, TOO_MANY, close=True)  # refused cleanly: the reply, then EOF
        self.server.connections.add(self)

    def connection_lost(self, exc):
        self.server.connections.discard(self)
        if self.outq:
            self.outq.clear()
        busy = self.state == _BUSY
        self.state = _CLOSED
        self._end_request()
        if self._slot_task is not None:
            self._slot_task.cancel()
        if not busy:  # a running round gives its buffer back itself
            self._give_back()

    def get_buffer(self, sizehint):
        if self.state == _BODY:  # the hot path: straight from the socket into the body buffer
            return self.target[self.pos:]
        return self.server.scratch  # shared by every connection: what is kept is copied out at once

    def buffer_updated(self, nbytes):
        self.got += nbytes
        if self.state == _DRAIN:  # the rest of a refused request: dropped, so the close is not a reset
            self.pos += nbytes
            if self.pos > DRAIN_MAX:
                self.transport.close()
            return
        if self.state == _BODY:
            self.pos += nbytes
            if self.pos == self.req.length:
                self._dispatch()
                if self.state == _HEAD and self.buf:
                    self._advance()
            return
        self.buf += self.server.scratch_view[:nbytes]
        self._advance()

    def data_received(self, data):
        """For transports that do not use get_buffer (none of the loops here do; kept for completeness)."""
        self.got += len(data)
        if self.state == _BODY and not self.buf:
            data = self._fill(data)
            if self.state == _BODY:
                return
        if data:
            self.buf += data
        self._advance()

    # ---- request processing -----------------------------------------------------------------
    def _advance(self):
        try:
            while self.state in (_HEAD, _BODY, _CHUNKED) and (self.buf or self.state == _BODY):
                if self.state == _HEAD:
                    if self.parked or not (self.counted or self.server.admit(self)):
                        return
                    if not self._take_head():
                        return
                elif self.state == _BODY:
                    rest = self._fill(bytes(self.buf))
                    self.buf = bytearray(rest)
                    if self.state == _BODY:
                        return
                elif not self._take_chunks():
                    return
        except BadRequest as exc:
            logger.debug("bad request from a device: %s", exc)
            self._finish(400, TEXT, BAD_REQUEST_BODY, close=True)
        except BodyTooLarge:
            self._finish(500, JSON, ERROR_JSON, close=True)

    def _take_head(self):
        parser = self.parser
        if parser is None:  # the first bytes of a head: its clock starts
            parser = self.parser = RequestParser(self.api.max_body)
            self.deadline = time.monotonic() + self.server.limits.header_timeout
        end = self.buf.find(b"\r\n\r\n", max(0, parser.fed - 3))
        stop = len(self.buf) if end < 0 else end + 4
        if stop > MAX_HEAD:
            raise BadRequest("request head too large")
        req = parser.feed_head(self.buf, stop, end >= 0, self.api.routes)
        if req is None:
            return False
        del self.buf[:stop]
        self.req = req
        if not req.chunked or not req.name or req.length > self.api.max_body:
            self.parser = None   # llhttp reads a chunked body only when the body is read
        if req.name is None:
            if req.path == self.api.metrics_path:  # Prometheus scrape (metrics.path), answered at once
                self._finish(200, PROMETHEUS, self.api.metrics())
                return self.state == _HEAD
            self._finish(404, TEXT, b"Not Found", close=True)
            return False
        if req.name == "":
            self._finish(200, JSON, self.api.health())
            return self.state == _HEAD
        if req.length > self.api.max_body:
            self._finish(500, JSON, ERROR_JSON, close=True)  # the body is never read
            return False
        if req.upload:
            self.slot = self.api.uploads.try_acquire()
            if self.slot is None:  # admission: the body waits in the kernel until a slot is free
                self.state = _WAIT_SLOT
                self.transport.pause_reading()
                self._slot_task = asyncio.get_running_loop().create_task(self._wait_slot())
                return False
        self._start_body()
        return True

    async def _wait_slot(self):
        try:
            slot = await self.api.uploads.acquire()
        except asyncio.CancelledError:
            return
        self._slot_task = None
        if self.state == _CLOSED:
            self.api.uploads.release(slot)
            return
        self.slot = slot
        self._start_body()
        if not self.transport.is_closing():
            self.transport.resume_reading()
            self._advance()

    def _start_body(self):
        req = self.req
        if req.expect_continue and (req.chunked or req.length):
            (self.transport.write if self.outq is None else self._send)(CONTINUE)  # after a queued reply
        self.mark_time, self.mark_got = time.monotonic(), self.got  # the body's rate clock starts
        if req.chunked:
            self.state = _CHUNKED
            return
        if self.slot is not None:
            self.slot, self.target = self.api.uploads.view(self.slot, req.length)
        else:
            self.target = memoryview(bytearray(req.length))
        self.pos, self.state = 0, _BODY
        if req.length == 0:
            self._dispatch()

    def _fill(self, data):
        """Copies body bytes into the target; returns the bytes after the body (dispatching when complete)."""
        take = min(len(data), self.req.length - self.pos)
        self.target[self.pos:self.pos + take] = data[:take] if take < len(data) else data
        self.pos += take
        if self.pos == self.req.length:
            self._dispatch()
            return data[take:]
        return b""

    def _take_chunks(self):
        """Feeds chunked framing from self.buf to llhttp; True when the body is complete (and dispatched)."""
        parser = self.parser
        del self.buf[:parser.feed_chunked(self.buf)]
        if not parser.done:
            return False
        self.parser = None
        self.target = memoryview(parser.body)
        self.req.length = len(parser.body)
        self._dispatch()
        return True

    def time_out(self):
        """A head or body too slow, or an idle wait over: 408 (nothing when idle between requests), then closed
        at once; an upload slot held is given back now, not when the device finally goes."""
        if self.state == _DRAIN:
            self.state = _CLOSED
            (self.transport.abort if self.outq else self.transport.close)()  # TLS: unsent pieces are dropped
            return
        idle = self.state == _HEAD and self.parser is None and not self.buf
        self.server.timed_out += not idle
        self._end_request()
        if self.state != _BUSY:
            self._give_back()
        self.target, self.state = None, _CLOSED
        unsent = self.transport.get_write_buffer_size() or self.outq
        if not idle and not unsent:
            self.transport.write(response_head(408, TEXT, TIMED_OUT, False) + TIMED_OUT)
        if unsent:
            self.transport.abort()   # a device that reads nothing is not waited for
        else:
            self.transport.close()

    def check_clock(self, now, limits):
        """Called by the sweeper: ends this connection when its head, body or idle wait is over its limit."""
        state = self.state
        if self.parked or state in (_WAIT_SLOT, _BUSY, _CLOSED):
            return
        if state in (_BODY, _CHUNKED):
            if now - self.mark_time >= limits.body_timeout:
                if limits.body_too_slow(self.got - self.mark_got, now - self.mark_time):
                    self.time_out()
                else:
                    self.mark_time, self.mark_got = now, self.got
        elif now > self.deadline:
            self.time_out()

    def _dispatch(self):
        """The body is complete: answer at once when the round needs no waiting, else in a task."""
        self.state = _BUSY
        body, self.target = self.target, None
        try:
            reply = self.api.handle(self.req.name, body) if len(body) else None
        except Exception:  # noqa: BLE001 - the engine itself must never drop a device silently
            logger.exception("%s failed in the HTTP engine", self.req.name)
            reply = None
        if reply is None or isinstance(reply, bytes):
            self._done(body)
            self._reply(reply)  # the caller (_advance) goes on with pipelined requests
            return
        self.transport.pause_reading()  # pipelined requests wait (in self.buf and the kernel) for this reply
        self._reply_task = asyncio.get_running_loop().create_task(self._await_reply(reply, body))

    async def _await_reply(self, pending, body):
        try:
            reply = await pending
        except Exception:  # noqa: BLE001 - as above
            logger.exception("%s failed in the HTTP engine", self.req.name if self.req else "?")
            reply = None
        finally:
            self._done(body)
        if self.state != _BUSY:
            return  # the device went away meanwhile
        self._reply(reply)
        if self.state == _HEAD and not self.transport.is_closing():
            self.transport.resume_reading()
            self._advance()

    def _done(self, body):
        """The round is done with the body: views released, the upload buffer goes back to the pool."""
        if isinstance(body, memoryview):
            with contextlib.suppress(BufferError):
                body.release()
        self._give_back()

    def _reply(self, reply):
        if reply is None:
            self._finish(500, JSON, ERROR_JSON)
        else:
            self._finish(200, OCTETS, reply)

    def _send_large(self, head, body):
        """head, then as much of `body` as the socket takes now by sendfile(2); the rest through the transport
        (in order: sendfile is only used while the transport holds nothing unsent)."""
        transport = self.transport
        transport.write(head)
        sent = 0
        sock = transport.get_extra_info("socket")
        if sock is not None and transport.get_write_buffer_size() == 0:
            try:
                sent = os.sendfile(sock.fileno(), self.server.memfds.fd_of(body), 0, len(body))
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:  # e.g. sendfile unsupported here: never again for this server
                logger.info("sendfile unavailable (%s): large replies go through the transport", exc)
                self.server.memfds = None
                sent = 0
        if sent < len(body):
            transport.write(memoryview(body)[sent:])

    def _give_back(self):
        if self.slot is not None:
            self.api.uploads.release(self.slot)
            self.slot = None

    def _end_request(self):
        if self.counted:
            self.counted = False
            self.server.request_done()

    def _finish(self, status, ctype, body, close=False):
        self._end_request()
        req = self.req
        keep_alive = req is not None and req.keep_alive and not close
        head = response_head(status, ctype, body, keep_alive, req is not None and req.http10)
        if self.outq is not None:  # TLS: bounded pieces, so a waiting connection holds little ciphertext
            self._send(head, b"" if req is not None and req.method == b"HEAD" else body)
        elif req is not None and req.method == b"HEAD":
            self.transport.write(head)  # the head of the reply (its length included), never a body
        elif len(body) < 65536:
            self.transport.write(head + body)
        elif len(body) < SENDFILE_MIN or self.server.memfds is None:
            self.transport.writelines((head, body))  # the cached reply is sent as is, never copied
        else:
            self._send_large(head, body)
        self.req = None
        if keep_alive:
            self.state = _HEAD
            self.deadline = time.monotonic() + self.server.limits.idle_timeout
        elif close and self.transport.can_write_eof():
            self.state, self.pos = _DRAIN, 0   # half-close: the device reads the reply, then EOF
            self.deadline = time.monotonic() + DRAIN_S
            self.buf.clear()
            self.parser = None
            self.transport.write_eof()
            self.transport.resume_reading()
        elif self.outq:  # TLS: closed once the queued pieces are sent (a reader that stalls is timed out)
            self.state, self.pos, self.close_after = _DRAIN, 0, True
            self.deadline = time.monotonic() + self.server.limits.idle_timeout
            self.buf.clear()
        else:
            self.state = _CLOSED
            self.buf.clear()
            self.transport.close()


class FastDeviceServer:
    """The listening socket, its connections, and a sweeper that ends connections over their time limits."""

    def __init__(self, api, limits=None, max_active=MAX_ACTIVE):
        self.api = api
        self.limits = limits if limits is not None else HttpLimits()
        self.max_connections = self.limits.max_connections
        self.refused = 0                      # connections refused past max_connections
        self.timed_out = 0                    # heads or bodies ended by their time limits
        self.connections = set()
        self.memfds = None
        self.tls = False                      # replies go out in bounded pieces (_Connection._send)
        self.max_active = max_active
        self.active = 0                       # requests admitted and not yet answered
        self.parked = collections.deque()     # connections with a request waiting for admission (FIFO)
        self._unpark_soon = False
        self.scratch = bytearray(READ_CHUNK)
        self.scratch_view = memoryview(self.scratch)
        self._server = None
        self._sweeper = None

    async def start(self, host, port, ssl_context=None, backlog=LISTEN_BACKLOG):
        self.max_connections = self.limits.connection_cap(raise_nofile_limit())
        loop = asyncio.get_running_loop()
        self.tls = ssl_context is not None
        self._server = await loop.create_server(lambda: _Connection(self), host, port, backlog=backlog,
                                                reuse_address=True, ssl=ssl_context)
        if ssl_context is None and hasattr(os, "memfd_create") and hasattr(os, "sendfile"):
            self.memfds = _MemfdCache()
        self._sweeper = loop.create_task(self._sweep())

    def admit(self, conn):
        """True when `conn` may start its next request now; else it is parked with its reading paused, so
        a saturated loop leaves new requests in the kernel instead of taking on more work."""
        if self.active < self.max_active:
            self.active += 1
            conn.counted = True
            return True
        conn.parked = True
        conn.transport.pause_reading()
        self.parked.append(conn)
        return False

    def request_done(self):
        self.active -= 1
        if self.parked and not self._unpark_soon:
            self._unpark_soon = True
            asyncio.get_running_loop().call_soon(self._unpark)

    def _unpark(self):
        """Resumes parked connections in arrival order while there is room (from the loop, never nested)."""
        self._unpark_soon = False
        now = time.monotonic()
        while self.parked and self.active < self.max_active:
            conn = self.parked.popleft()
            conn.parked = False
            if conn.state == _CLOSED or conn.transport.is_closing():
                continue
            conn.deadline = now + self.limits.header_timeout
            conn.transport.resume_reading()
            conn._advance()  # pylint: disable=protected-access

    async def _sweep(self):
        limits = self.limits
        every = limits.sweep_every()
        while True:
            await asyncio.sleep(every)
            now = time.monotonic()
            for conn in list(self.connections):
                conn.check_clock(now, limits)

    async def stop(self):
        """Stops listening and closes every connection (requests still running have been drained by then)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
            for conn in list(self.connections):
                conn.transport.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None
        if self.memfds is not None:
            self.memfds.close()
            self.memfds = None
