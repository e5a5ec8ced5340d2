"""Reply cache: the success replies of the current iteration, built once and served as the same bytes."""

REPLY_CACHE_LIMIT = 16


class ReplyCache:
    """key -> reply bytes; cleared whenever what the replies say changes (iteration, model, windows)."""

    def __init__(self, limit=REPLY_CACHE_LIMIT):
        self._limit = limit
        self._replies = {}

    def get(self, key, build):
        """The cached reply for `key`, built by `build()` on a miss (the whole cache is dropped when full)."""
        reply = self._replies.get(key)
        if reply is None:
            if len(self._replies) > self._limit:
                self._replies.clear()
            reply = self._replies[key] = build()
        return reply

    def peek(self, key):
        """The cached reply for `key`, or None."""
        return self._replies.get(key)

    def clear(self):
        self._replies.clear()

    def __len__(self):
        return len(self._replies)
