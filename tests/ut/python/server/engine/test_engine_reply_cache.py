"""ReplyCache: one build per key, the same bytes on every hit, bounded size."""
import asyncio

import pytest

from mindspore_federated.server.engine.reply_cache import REPLY_CACHE_LIMIT, ReplyCache


def test_a_reply_is_built_once_and_served_as_the_same_object():
    cache, builds = ReplyCache(), []

    def build():
        builds.append(1)
        return bytearray(b"reply")

    first = cache.get(("fl", 1), build)
    assert cache.get(("fl", 1), build) is first
    assert len(builds) == 1


def test_clear_forces_a_rebuild():
    cache = ReplyCache()
    first = cache.get("k", lambda: bytearray(b"old"))
    cache.clear()
    assert cache.get("k", lambda: bytearray(b"new")) == b"new"
    assert first == b"old"


def test_the_cache_stays_bounded():
    cache = ReplyCache()
    for i in range(10 * REPLY_CACHE_LIMIT):
        assert cache.get(i, lambda i=i: str(i).encode()) == str(i).encode()
        assert len(cache) <= REPLY_CACHE_LIMIT + 1


def test_concurrent_async_misses_share_one_build():
    cache, builds = ReplyCache(), []

    async def build():
        builds.append(1)
        await asyncio.sleep(0.01)
        return bytearray(b"keys")

    async def main():
        return await asyncio.wait_for(asyncio.gather(*(cache.async_get("k", build) for _ in range(5))), 10)

    replies = asyncio.run(main())
    assert all(r is replies[0] for r in replies) and replies[0] == b"keys"
    assert len(builds) == 1


def test_a_failed_async_build_is_not_cached():
    cache = ReplyCache()

    async def broken():
        raise ConnectionError("redis gone")

    async def fine():
        return b"ok"

    async def main():
        with pytest.raises(ConnectionError):
            await cache.async_get("k", broken)
        return await asyncio.wait_for(cache.async_get("k", fine), 10)

    assert asyncio.run(main()) == b"ok"


def test_a_cancelled_waiter_does_not_cancel_the_others_build():
    cache = ReplyCache()

    async def build():
        await asyncio.sleep(0.05)
        return b"list"

    async def main():
        first = asyncio.ensure_future(cache.async_get("k", build))
        second = asyncio.ensure_future(cache.async_get("k", build))
        await asyncio.sleep(0)
        first.cancel()
        return await asyncio.wait_for(second, 10)

    assert asyncio.run(main()) == b"list"
