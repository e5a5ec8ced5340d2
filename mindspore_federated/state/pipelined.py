"""An auto-pipelining asyncio Redis connection for the hot path: one socket, one write per loop iteration."""
import asyncio
import collections

from redis.exceptions import AuthenticationError, NoScriptError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

try:
    import hiredis
except ImportError:  # an optional extra ("fast"); the server then stays on redis-py
    hiredis = None

from mindspore_federated.metrics.registry import HOT_COMMANDS, HOT_ERRORS, HOT_TRIPS

HAVE_HIREDIS = hiredis is not None
_hiredis_pack = getattr(hiredis, "pack_command", None)

_CRLF = b"\r\n"
# A device's round waits this long for its Redis reply: a burst Redis (or this loop) works through slowly
# is backpressure, well inside any round window; a dead Redis still fails the calls (and a lost connection
# at once), while the sync loop's own, shorter timeouts put the server in safe mode.
HOT_PATH_TIMEOUT_S = 15.0


def _encode(arg):
    """One argument as bytes, like redis-py's Encoder (decode off)."""
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, bool):  # redis-py refuses bools too (they are ints, but "True" is rarely meant)
        raise TypeError("Invalid input of type: 'bool'. Convert to a bytes, string, int or float first.")
    if isinstance(arg, int):
        return str(arg).encode()
    if isinstance(arg, float):
        return repr(arg).encode()
    if isinstance(arg, (bytearray, memoryview)):
        return bytes(arg)
    raise TypeError(f"Invalid input of type: '{type(arg).__name__}'. "
                    "Convert to a bytes, string, int or float first.")


def pack_command(args):
    """The RESP encoding of one command (a tuple): hiredis's C packer when it has one (hiredis >= 2.1),
    which encodes exactly as _pack_py."""
    if _hiredis_pack is not None:
        try:
            return _hiredis_pack(args)
        except TypeError:  # e.g. a bytearray: _pack_py accepts it or names the bad type
            pass
    return _pack_py(args)


def _pack_py(args):
    parts = [b"*%d\r\n" % len(args)]
    append = parts.append
    for arg in args:
        data = _encode(arg)
        append(b"$%d\r\n" % len(data))
        append(data)
        append(_CRLF)
    return b"".join(parts)


def _hello_commands(username, password, db):
    """The commands that open every connection: AUTH [user] password, SELECT db."""
    out = []
    if password is not None:
        out.append(("AUTH", username, password) if username else ("AUTH", password))
    if db:
        out.append(("SELECT", db))
    return out


def _error_from_reply(reply):
    """A hiredis error reply as the redis-py exception (message text as redis-py gives it)."""
    text = str(reply)
    if text.startswith("NOSCRIPT"):
        return NoScriptError(text[9:])
    if text.startswith("ERR "):
        return ResponseError(text[4:])
    return ResponseError(text)


class _Connection(asyncio.Protocol):
    """One Redis connection: FIFO of caller futures, a per-iteration write buffer, a deadline watchdog."""

    def __init__(self, loop, timeout, on_dead):
        self.loop = loop
        self.timeout = timeout
        self.on_dead = on_dead
        self.transport = None
        self.reader = hiredis.Reader()
        self.pending = collections.deque()  # (future, loop time of the command's batch)
        self.wbuf = []
        self.batch_time = 0.0
        self.flush_handle = None
        self.watchdog = None
        self.dead = False
        self.last_reply = 0.0  # loop time when Redis last sent something
        self.suspect = False   # the watchdog saw no progress once and looks again after the next read phase
        self.closed = loop.create_future()

    # ---- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        reader = self.reader
        reader.feed(data)
        self.last_reply = self.loop.time()
        pending = self.pending
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:
                self._fail(RedisConnectionError(f"Redis protocol error: {exc}"))
                return
            if reply is False:
                return
            if not pending:
                self._fail(RedisConnectionError("Redis sent a reply nobody asked for"))
                return
            fut = pending.popleft()[0]
            if fut.done():  # the caller was cancelled: its slot is consumed, the reply dropped
                continue
            if isinstance(reply, hiredis.ReplyError):
                fut.set_exception(_error_from_reply(reply))
            else:
                fut.set_result(reply)

    def connection_lost(self, exc):
        if exc is not None:
            reason = f"Connection to Redis lost: {exc}"
        else:
            reason = "Connection to Redis closed." if self.dead else "Connection closed by Redis."
        self._fail(RedisConnectionError(reason))
        if not self.closed.done():
            self.closed.set_result(None)

    # ---- sending ------------------------------------------------------------------------------
    def send(self, args):
        """Queues one command; the returned future gets its reply."""
        if self.dead:
            raise RedisConnectionError("Connection to Redis lost.")
        data = pack_command(args)
        fut = self.loop.create_future()
        if self.flush_handle is None:
            self.batch_time = self.loop.time()
            self.flush_handle = self.loop.call_soon(self._flush)
        self.wbuf.append(data)
        self.pending.append((fut, self.batch_time))
        if self.watchdog is None:
            self.watchdog = self.loop.call_at(self.batch_time + self.timeout, self._check_deadline)
        return fut

    def _flush(self):
        self.flush_handle = None
        buf = self.wbuf
        self.wbuf = []
        if not self.dead and buf:
            HOT_TRIPS.inc()
            self.transport.write(buf[0] if len(buf) == 1 else b"".join(buf))

    def _check_deadline(self):
        """Fails the connection when Redis sent nothing for `timeout` seconds since the oldest unanswered
        call was queued, seen twice with one event-loop read phase between: replies a busy loop has not read
        yet, or a long queue Redis is still working through, are progress, not a dead connection."""
        self.watchdog = None
        if not self.pending or self.dead:
            return
        now = self.loop.time()
        since = max(self.pending[0][1], self.last_reply)
        if now - since < self.timeout:
            self.suspect = False
            self.watchdog = self.loop.call_at(since + self.timeout, self._check_deadline)
        elif not self.suspect:
            self.suspect = True
            self.watchdog = self.loop.call_later(0.01, self._check_deadline)
        else:
            self._fail(RedisTimeoutError(f"Timeout reading from Redis (no reply within {self.timeout} s)"))

    # ---- teardown -----------------------------------------------------------------------------
    def _fail(self, error):
        """Fails every pending call with `error` and drops the connection (later replies would be out of
        sync). New calls go to a new connection."""
        if not self.dead:
            self.dead = True
            self.on_dead(self)
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        if self.flush_handle is not None:
            self.flush_handle.cancel()
            self.flush_handle = None
        self.wbuf = []
        pending = self.pending
        self.pending = collections.deque()
        for fut, _ in pending:
            if not fut.done():
                fut.set_exception(error)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    def close(self):
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()  # flushes what was written; connection_lost fails what is unanswered
        if not self.dead:
            self.dead = True
            self.on_dead(self)


class PipelinedRedis:
    """Auto-pipelining Redis client for `ip:port` or `unix:<path>`, or for the address `resolve()` answers
    (an async callable giving (host, port), e.g. a Sentinel master discovery) before every (re)connect.

    `await execute(*args)` returns the raw reply (bytes, int, list, None) like redis-py's execute_command
    with decode off. Commands issued during one event-loop iteration go out in one write; replies resolve
    the callers in order. Errors are redis-py's: ResponseError / NoScriptError for error replies (the
    connection stays usable), ConnectionError when the connection is lost or refused, TimeoutError when the
    oldest unanswered call is older than `timeout` (the connection is then dropped). The connection is
    opened lazily and re-opened lazily after a loss. Use from one event loop only."""

    def __init__(self, address, timeout=HOT_PATH_TIMEOUT_S, *, ssl_context=None, server_name=None,
                 username=None, password=None, db=0, resolve=None):
        if hiredis is None:
            raise RuntimeError("PipelinedRedis needs the hiredis package")
        self.address = address
        self.timeout = float(timeout)
        self._ssl = ssl_context       # TLS on every connection when set (never a plain fallback)
        self._server_name = server_name
        self._hello = _hello_commands(username, password, db)  # AUTH / SELECT on every (re)connect
        self._resolve = resolve
        self._conn = None
        self._connecting = None

    async def execute(self, *args):
        HOT_COMMANDS.inc()
        try:
            conn = self._conn
            if conn is None:
                conn = await self._connect_shared()
            return await conn.send(args)
        except ResponseError as exc:  # an error reply (NOSCRIPT: the caller retries) is not a failure
            if self._resolve is not None and str(exc).startswith("READONLY") and conn is self._conn is not None:
                self._conn = None  # a demoted primary: the next call re-discovers the primary
                conn.close()
            raise
        except RedisError:
            HOT_ERRORS.inc()
            raise

    async def _connect_shared(self):
        """The live connection, opening one if needed; concurrent callers share one connect attempt."""
        task = self._connecting
        if task is None:
            task = self._connecting = asyncio.get_running_loop().create_task(self._connect())
            task.add_done_callback(self._connect_done)
        return await asyncio.shield(task)

    def _connect_done(self, task):
        if self._connecting is task:
            self._connecting = None
        if not task.cancelled():
            task.exception()  # retrieved here so that a failed attempt nobody awaits is not logged

    async def _connect(self):
        loop = asyncio.get_running_loop()
        conn = _Connection(loop, self.timeout, self._on_dead)
        try:
            if self._resolve is not None:
                host, port = await asyncio.wait_for(self._resolve(), self.timeout)
                self.address = f"{host}:{port}"
            if self.address.startswith("unix:"):
                coro = loop.create_unix_connection(lambda: conn, self.address[5:])
            else:
                host, _, port = self.address.rpartition(":")
                tls = {} if self._ssl is None else {"ssl": self._ssl,
                                                    "server_hostname": self._server_name or host}
                coro = loop.create_connection(lambda: conn, host, int(port), **tls)
            await asyncio.wait_for(coro, self.timeout)
        except asyncio.TimeoutError:
            raise RedisTimeoutError(f"Timeout connecting to Redis at {self.address}") from None
        except OSError as exc:  # ssl.SSLError included: a failed handshake never falls back to plain TCP
            raise RedisConnectionError(f"Error connecting to Redis at {self.address}: {exc}") from None
        if conn.dead:  # lost before this coroutine resumed: on_dead did not know it yet
            raise RedisConnectionError(f"Connection to Redis at {self.address} lost at once.")
        await self._greet(conn)
        self._conn = conn
        return conn

    async def _greet(self, conn):
        """AUTH and SELECT before the connection carries anything else; a refusal closes it."""
        if not self._hello:
            return
        replies = [conn.send(args) for args in self._hello]
        try:
            for reply in replies:
                await reply
        except ResponseError as exc:
            text = str(exc)
            error = AuthenticationError(text) if text.startswith(("WRONGPASS", "NOAUTH", "AUTH", "invalid")) else exc
            conn._fail(error)
            try:
                await asyncio.wait_for(asyncio.shield(conn.closed), self.timeout)
            except asyncio.TimeoutError:
                pass
            raise error from None

    def _on_dead(self, conn):
        if self._conn is conn:
            self._conn = None

    async def aclose(self):
        """Closes the connection; calls still unanswered fail with ConnectionError."""
        task = self._connecting
        if task is not None:
            task.cancel()
            await asyncio.wait([task], timeout=self.timeout)  # never raises; its outcome does not matter
        conn = self._conn
        if conn is None:
            return
        conn.close()
        try:
            await asyncio.wait_for(asyncio.shield(conn.closed), self.timeout)
        except asyncio.TimeoutError:
            conn.transport.abort()


__all__ = ["PipelinedRedis", "HAVE_HIREDIS", "pack_command"]
