"""Redis round trips and errors of both Redis clients, counted against a real redis-server and a closed port."""
import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from mindspore_federated.metrics.registry import HOT_COMMANDS, HOT_ERRORS, HOT_TRIPS, PY_ERRORS, PY_TRIPS
from mindspore_federated.state.clients import make_client, make_pipelined
from tests.utils.redis_server import free_port


def counts():
    return {name: c.value for name, c in (("hot_trips", HOT_TRIPS), ("hot_commands", HOT_COMMANDS),
                                                 ("hot_errors", HOT_ERRORS), ("py_trips", PY_TRIPS),
                                                 ("py_errors", PY_ERRORS))}


def delta(before, after):
    return {k: after[k] - before[k] for k in before}


def test_redis_py_client_counts(redis_server):
    async def scenario():
        client = make_client(redis_server.address)
        try:
            await client.ping()   # the connection and its set-up commands are counted too, not measured here
            before = counts()
            await client.set("obs:k", "1")
            pipe = client.pipeline(transaction=False)
            pipe.get("obs:k")
            pipe.incr("obs:n")
            await pipe.execute()
            return delta(before, counts())
        finally:
            await client.aclose()
    d = asyncio.run(scenario())
    assert d["py_trips"] == 2 and d["py_errors"] == 0   # one command, one pipeline


def test_pipelined_client_counts(redis_server):
    pytest.importorskip("hiredis")

    async def scenario():
        client = make_pipelined(redis_server.address)
        try:
            before = counts()
            await asyncio.gather(*(client.execute("INCR", "obs:p") for _ in range(10)))
            return delta(before, counts())
        finally:
            await client.aclose()
    d = asyncio.run(scenario())
    assert d["hot_commands"] == 10 and d["hot_trips"] == 1 and d["hot_errors"] == 0   # one write for the batch


def test_errors_are_counted():
    address = f"127.0.0.1:{free_port()}"   # nothing listens there

    async def scenario():
        before = counts()
        client = make_client(address, timeout=1.0)
        with pytest.raises((RedisConnectionError, OSError)):
            await client.ping()
        await client.aclose()
        fast = make_pipelined(address, timeout=1.0)
        if fast is not None:
            with pytest.raises(RedisConnectionError):
                await fast.execute("PING")
            await fast.aclose()
        return delta(before, counts()), fast is not None
    d, have_fast = asyncio.run(scenario())
    assert d["py_errors"] >= 1
    assert d["hot_errors"] == (1 if have_fast else 0)
