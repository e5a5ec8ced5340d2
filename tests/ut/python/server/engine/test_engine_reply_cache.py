"""ReplyCache: one build per key, the same bytes on every hit, bounded size."""
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
