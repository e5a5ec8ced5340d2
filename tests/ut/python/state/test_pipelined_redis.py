"""PipelinedRedis against a real redis-server: replies equal redis-py's, batching, errors, loss, stall."""
import asyncio
import signal
import time
import uuid

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from mindspore_federated.state import pipelined
from mindspore_federated.state.clients import make_client
from mindspore_federated.state.pipelined import PipelinedRedis, pack_command
from tests.utils.wait import BUSY_SLACK_S

pytestmark = pytest.mark.skipif(not pipelined.HAVE_HIREDIS, reason="hiredis not installed")

TEST_DEADLINE_S = 30.0
TIMEOUT_S = 0.5                 # the reply timeout of the tests about timing out
REPLY_DEADLINE_S = BUSY_SLACK_S  # everywhere else: calls that must succeed, however busy the machine


_loop_factory = [asyncio.new_event_loop]


@pytest.fixture(autouse=True, params=["asyncio", "uvloop"])
def event_loop_kind(request):
    """Every test runs on the stock loop and on uvloop (which the server uses when installed)."""
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        _loop_factory[0] = uvloop.new_event_loop
    yield request.param
    _loop_factory[0] = asyncio.new_event_loop


def run(coro):
    """Runs `coro` in a fresh loop with an overall deadline."""
    async def bounded():
        return await asyncio.wait_for(coro, TEST_DEADLINE_S)
    with asyncio.Runner(loop_factory=_loop_factory[0]) as runner:
        return runner.run(bounded())


def key():
    return f"pipelined:{uuid.uuid4().hex}"


class WriteCounter:
    """Stands in for the transport of a PipelinedRedis's open connection, counting its write calls."""

    def __init__(self, fast):
        self.count = 0
        self._transport = fast._conn.transport
        fast._conn.transport = self

    def write(self, data):
        self.count += 1
        self._transport.write(data)

    def __getattr__(self, name):
        return getattr(self._transport, name)


async def with_clients(address, body, timeout=REPLY_DEADLINE_S, protocol=None):
    fast = PipelinedRedis(address, timeout=timeout)
    client = make_client(address)
    if protocol is not None:
        client.connection_pool.connection_kwargs["protocol"] = protocol
    try:
        return await body(fast, client)
    finally:
        await fast.aclose()
        await client.aclose(close_connection_pool=True)


@pytest.mark.parametrize("pack", [pack_command, pipelined._pack_py])
def test_pack_command_encodes_like_redis_py(pack):
    assert pack(("SET", b"k", "v\u00e9", 7, 1.5)) == (
        b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\xc3\xa9\r\n$1\r\n7\r\n$3\r\n1.5\r\n")
    assert pack(("X", 0.1, 1e20, -3, 10**30, bytearray(b"ab"), memoryview(b"cd"))) == (
        b"*7\r\n$1\r\nX\r\n$3\r\n0.1\r\n$5\r\n1e+20\r\n$2\r\n-3\r\n$31\r\n1" + b"0" * 30
        + b"\r\n$2\r\nab\r\n$2\r\ncd\r\n")
    args = ("EVALSHA", "f" * 40, 2, "k\u00e9", b"\x00\r\n", 0, -1, 2.5, 1e-7)
    redis_py = redis.connection.Connection()  # its packer, for comparison (nothing is connected)
    assert pack(args) == b"".join(redis_py.pack_command(*args))
    for bad in (None, object(), True, [1]):
        with pytest.raises(TypeError):
            pack(("SET", "k", bad))


def commands_on(prefix, sha, script):
    k, n, h = f"{prefix}:k", f"{prefix}:n", f"{prefix}:h"
    return [("SET", k, "v\u00e9"), ("GET", k), ("GET", f"{prefix}:missing"), ("INCR", n), ("INCRBY", n, 41),
            ("HSET", h, "a", 1, "b", 2.5), ("HGETALL", h), ("LRANGE", f"{prefix}:l", 0, -1),
            ("EVAL", script, 1, k, "x", 3), ("EVALSHA", sha, 1, k, b"\x00\xff", 10),
            ("EVAL", "return redis.status_reply('FINE')", 0), ("PING",), ("DEL", k, n, h)]


def test_replies_equal_redis_py(redis_server):
    """Same commands through PipelinedRedis and through redis-py's execute_command (response callbacks off
    and RESP2, so both give the raw decode-off replies)."""
    async def body(fast, client):
        client.response_callbacks.clear()
        script = "return {ARGV[1], tonumber(ARGV[2]) + 1, redis.call('GET', KEYS[1]), false}"
        sha = await client.script_load(script)
        got_fast = [await fast.execute(*cmd) for cmd in commands_on(key(), sha, script)]
        got_py = [await client.execute_command(*cmd) for cmd in commands_on(key(), sha, script)]
        assert got_fast == got_py
        return got_fast

    replies = run(with_clients(redis_server.address, body, protocol=2))
    assert replies[:5] == [b"OK", "v\u00e9".encode(), None, 1, 42]
    assert replies[6] == [b"a", b"1", b"b", b"2.5"] and replies[7] == []
    assert replies[8] == [b"x", 4, "v\u00e9".encode(), None]  # Lua false is a nil bulk in RESP2
    assert replies[9][:2] == [b"\x00\xff", 11]
    assert replies[10:] == [b"FINE", b"PONG", 3]


def test_evalsha_equals_redis_py_execute_command(redis_server):
    async def body(fast, client):
        script = "return {tonumber(ARGV[1]) * 2, ARGV[2], redis.call('INCR', KEYS[1])}"
        sha = await client.script_load(script)
        k = key()
        a = await client.execute_command("EVALSHA", sha, 1, k, 21, "s")
        b = await fast.execute("EVALSHA", sha, 1, k, 21, "s")
        assert a == [42, b"s", 1] and b == [42, b"s", 2]
        assert await fast.execute("SET", k, "x") == b"OK"
        assert await fast.execute("GET", k) == await client.execute_command("GET", k) == b"x"

    run(with_clients(redis_server.address, body))


def test_concurrent_calls_are_batched_and_in_order(redis_server):
    async def body(fast, client):
        base = key()
        await fast.execute("PING")  # opens the connection
        counter = WriteCounter(fast)
        n = 2000
        results = await asyncio.gather(*(fast.execute("EVAL", "return {ARGV[1], redis.call('INCR', KEYS[1])}",
                                                      1, base, str(i)) for i in range(n)))
        assert [r[0] for r in results] == [str(i).encode() for i in range(n)]
        assert [r[1] for r in results] == list(range(1, n + 1))  # executed in issue order
        assert counter.count == 1  # every caller started in the same loop iteration: one write
        sets = await asyncio.gather(*(fast.execute("SET", f"{base}:{i}", i) for i in range(n)))
        assert sets == [b"OK"] * n
        gets = await asyncio.gather(*(fast.execute("GET", f"{base}:{i}") for i in range(n)))
        assert gets == [str(i).encode() for i in range(n)]
        assert counter.count == 3
        # callers spread over iterations: one write per iteration, never one per command
        async def trickle(i):
            for _ in range(i % 5):
                await asyncio.sleep(0)
            return await fast.execute("GET", f"{base}:{i}")
        counter.count = 0
        assert await asyncio.gather(*(trickle(i) for i in range(n))) == gets
        assert 1 <= counter.count <= 10, counter.count
        await client.delete(base, *(f"{base}:{i}" for i in range(n)))

    run(with_clients(redis_server.address, body))


def test_noscript_then_connection_still_works(redis_server):
    async def body(fast, client):
        k = key()
        missing = "0" * 40
        results = await asyncio.gather(fast.execute("SET", k, "1"), fast.execute("EVALSHA", missing, 0),
                                       fast.execute("GET", k), return_exceptions=True)
        assert results[0] == b"OK" and results[2] == b"1"
        assert isinstance(results[1], NoScriptError)
        assert "No matching script" in str(results[1])
        with pytest.raises(NoScriptError):
            await fast.execute("EVALSHA", missing, 0)
        assert await fast.execute("INCR", k) == 2

    run(with_clients(redis_server.address, body))


def test_error_reply_fails_only_that_call(redis_server):
    async def body(fast, client):
        k, s = key(), key()
        await client.set(s, "not a number")
        results = await asyncio.gather(fast.execute("INCR", k), fast.execute("INCR", s),
                                       fast.execute("INCR", k),
                                       fast.execute("EVAL", "return redis.error_reply('BOOM')", 0),
                                       fast.execute("NOSUCHCOMMAND"), fast.execute("INCR", k),
                                       return_exceptions=True)
        assert results[0] == 1 and results[2] == 2 and results[5] == 3
        for i in (1, 3, 4):
            assert type(results[i]) is ResponseError, results[i]
        with pytest.raises(redis.ResponseError) as py_error:
            await client.execute_command("INCR", s)
        assert str(results[1]) == str(py_error.value)  # same text as redis-py
        assert str(results[3]) == "BOOM"

    run(with_clients(redis_server.address, body))


def test_cancelled_caller_does_not_desync(redis_server):
    async def body(fast, client):
        lst, k = key(), key()
        await client.set(k, "mine")
        # BLPOP blocks the connection; the commands behind it wait for its reply
        blocked = asyncio.ensure_future(fast.execute("BLPOP", lst, 5))
        await asyncio.sleep(0.1)
        blocked.cancel()
        behind = asyncio.ensure_future(fast.execute("GET", k))
        await asyncio.sleep(0.05)
        assert not behind.done()
        await client.rpush(lst, "popped")  # BLPOP now answers [lst, popped]: it must be dropped
        assert await behind == b"mine"
        with pytest.raises(asyncio.CancelledError):
            await blocked
        # cancel a batch of callers in the middle of a burst
        tasks = [asyncio.ensure_future(fast.execute("ECHO", str(i))) for i in range(100)]
        await asyncio.sleep(0)
        for t in tasks[::3]:
            t.cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        for i, r in enumerate(done):
            assert isinstance(r, asyncio.CancelledError) if i % 3 == 0 else r == str(i).encode()
        assert await fast.execute("ECHO", "last") == b"last"

    run(with_clients(redis_server.address, body))


def test_killed_redis_gives_connection_error_then_reconnects(fresh_redis):
    async def body(fast, client):
        k = key()
        assert await fast.execute("SET", k, "1") == b"OK"
        lst = key()
        waiting = asyncio.ensure_future(fast.execute("BLPOP", lst, 10))
        await asyncio.sleep(0.1)
        fresh_redis.kill()
        with pytest.raises(RedisConnectionError):
            await waiting
        for _ in range(3):  # refused while redis is down, every time
            with pytest.raises(RedisConnectionError):
                await fast.execute("GET", k)
        await asyncio.get_running_loop().run_in_executor(None, fresh_redis.start)
        assert await fast.execute("SET", k, "2") == b"OK"
        assert await fast.execute("GET", k) == b"2"
        # concurrent callers share one reconnect
        fresh_redis.restart()
        with pytest.raises(RedisConnectionError):
            await fast.execute("GET", k)
        connects = []
        original = fast._connect

        async def counting_connect():
            connects.append(1)
            return await original()

        fast._connect = counting_connect
        results = await asyncio.gather(*(fast.execute("INCR", k) for _ in range(50)))
        assert results == list(range(1, 51))
        assert len(connects) == 1

    run(with_clients(fresh_redis.address, body))


def test_sigstop_gives_timeout_then_works_after_sigcont(fresh_redis):
    async def body(fast, client):
        k = key()
        assert await fast.execute("SET", k, "1") == b"OK"
        fresh_redis.kill(signal.SIGSTOP)
        try:
            start = time.monotonic()
            results = await asyncio.gather(*(fast.execute("INCR", k) for _ in range(20)),
                                           return_exceptions=True)
            elapsed = time.monotonic() - start
            assert all(isinstance(r, RedisTimeoutError) for r in results), results
            assert TIMEOUT_S * 0.9 <= elapsed < TIMEOUT_S + BUSY_SLACK_S, elapsed
            # a later call while still stopped: a new connection (the kernel accepts it) and a new timeout
            start = time.monotonic()
            with pytest.raises(RedisTimeoutError):
                await fast.execute("GET", k)
            assert time.monotonic() - start < TIMEOUT_S + BUSY_SLACK_S
        finally:
            fresh_redis.kill(signal.SIGCONT)
        # the INCRs sent on the aborted connections may still run now; the next calls use a fresh one
        k2 = key()
        assert await fast.execute("SET", k2, "5") == b"OK"
        assert await fast.execute("INCR", k2) == 6

    run(with_clients(fresh_redis.address, body, timeout=TIMEOUT_S))


def test_calls_after_aclose_reconnect(redis_server):
    async def body():
        fast = PipelinedRedis(redis_server.address, timeout=REPLY_DEADLINE_S)
        try:
            await fast.aclose()  # nothing open yet
            assert await fast.execute("PING") == b"PONG"
            await fast.aclose()
            assert await fast.execute("PING") == b"PONG"
        finally:
            await fast.aclose()

    run(body())


def test_unix_socket_address(tmp_path):
    import shutil
    import subprocess

    from tests.utils.wait import wait_for

    sock = tmp_path / "r.sock"
    proc = subprocess.Popen([shutil.which("redis-server"), "--port", "0", "--unixsocket", str(sock),
                             "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(sock.exists, 10.0, what="redis unix socket")

        async def body():
            fast = PipelinedRedis(f"unix:{sock}", timeout=REPLY_DEADLINE_S)
            try:
                results = await asyncio.gather(*(fast.execute("ECHO", i) for i in range(100)))
                assert results == [str(i).encode() for i in range(100)]
            finally:
                await fast.aclose()

        run(body())
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def hot_path(state):
    """The three EVALSHA verbs of a round, with their accept and reject branches."""
    inst = await state.ensure_instance()
    out = [await state.start_fl_job(inst, 1, 2, "dev-a", b'{"d": "a"}', 1000),
           await state.start_fl_job(inst, 1, 2, "dev-a", b'{"d": "a"}', 1001),
           await state.start_fl_job(inst, 1, 2, "dev-b", b'{"d": "b"}', 1002),
           await state.start_fl_job(inst, 1, 2, "dev-c", b'{"d": "c"}', 1003),
           await state.start_fl_job(inst, 2, 2, "dev-d", b'{"d": "d"}', 1004),
           await state.update_model(inst, 1, 2, "dev-a", "node-a", 1, 0, 1100),
           await state.update_model(inst, 1, 2, "dev-a", "node-a", 1, 0, 1101),
           await state.update_model(inst, 1, 2, "dev-x", "node-a", 1, 0, 1102),
           await state.update_model(inst, 1, 2, "dev-b", "node-a", 1, 0, 1103, count_now=True),
           await state.count_for_aggregation(inst, 1, "node-a"),
           await state.count_for_aggregation(inst, 2, "node-a")]
    return out


def test_server_state_eval_uses_fast_path_and_reloads_scripts(redis_server, fl_name):
    """RedisClusterState with the pipelined connection gives what it gives on redis-py's default client
    (whatever RESP version that speaks), and reloads flushed scripts over the pipelined connection too (a
    herd of first calls must not need a pooled redis-py connection each)."""
    from mindspore_federated.state.redis_state import RedisClusterState

    async def body(fast, client):
        state = RedisClusterState(client, fl_name, 6000, fast=fast)
        calls = []
        original = fast.execute

        async def spy(*args):
            calls.append(args[0])
            return await original(*args)

        fast.execute = spy
        await client.script_flush()  # the first EVALSHA gets NOSCRIPT and falls back to EVAL
        got_fast = await hot_path(state)
        loads = calls.count("EVAL")  # the NOSCRIPT fallback: one EVAL (runs and caches the script)
        assert loads >= 1 and calls.count("EVALSHA") == len(got_fast)
        assert set(calls) == {"EVALSHA", "EVAL"}
        got_py = await hot_path(RedisClusterState(client, fl_name + "x", 6000))
        assert got_fast == got_py
        assert any(getattr(reply, "meta", None) == {"d": "a"} for reply in got_fast)  # a bulk reply, decoded
        assert len({repr(r) for r in got_fast}) > 4  # the branches differ

    run(with_clients(redis_server.address, body))
