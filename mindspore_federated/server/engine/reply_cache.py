"""Reply cache: the success replies of the current iteration, built once and served as the same bytes."""
import asyncio

REPLY_CACHE_LIMIT = 16


class ReplyCache:
    """key -> reply bytes; cleared whenever what the replies say changes (iteration, model, windows)."""

    def __init__(self, limit=REPLY_CACHE_LIMIT):
        self._limit = limit
        self._replies = {}
        self._pending = {}  # key -> the running build of an async_get miss

    def get(self, key, build):
        """The cached reply for `key`, built by `build()` on a miss (the whole cache is dropped when full)."""
        reply = self._replies.get(key)
        if reply is None:
            if len(self._replies) > self._limit:
                self._replies.clear()
            reply = self._replies[key] = build()
        return reply

    async def async_get(self, key, build):
        """Like get, `build` a coroutine function: concurrent misses of one key await the same build."""
        reply = self._replies.get(key)
        if reply is not None:
            return reply
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = asyncio.ensure_future(build())
            pending.add_done_callback(lambda done: self._forget(key, done))
        reply = await asyncio.shield(pending)  # a cancelled waiter does not cancel the others' build
        return self.get(key, lambda: reply)

    def _forget(self, key, build):
        if self._pending.get(key) is build:
            del self._pending[key]

    def peek(self, key):
        """The cached reply for `key`, or None."""
        return self._replies.get(key)

    def clear(self):
        self._replies.clear()
        self._pending.clear()

    def __len__(self):
        return len(self._replies)
