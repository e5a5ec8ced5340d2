"""The in-process data behind MemoryClusterState: named values with expiry on a clock, and event channels."""
import asyncio
import json
import time

from mindspore_federated.state.base import Subscription


class MemoryStore:
    """Values (str, dict or set) under the same key names as in Redis, each with an optional deadline on
    `clock` (seconds); several MemoryClusterState objects sharing one store act like servers sharing Redis.
    Every method is synchronous, so each verb built on them is atomic on one event loop."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._values = {}
        self._deadlines = {}
        self._channels = {}

    def get(self, key):
        """The live value of `key`, or None (an expired value is dropped here)."""
        deadline = self._deadlines.get(key)
        if deadline is not None and self.clock() >= deadline:
            self.delete(key)
        return self._values.get(key)

    def exists(self, key) -> bool:
        return self.get(key) is not None

    def put(self, key, value, ttl=None, only_new=False) -> bool:
        """Sets `key` (SET [NX] [EX]); False when only_new and the key exists."""
        if only_new and self.exists(key):
            return False
        self._values[key] = value
        self._deadlines.pop(key, None)
        if ttl is not None:
            self.expire(key, ttl)
        return True

    def expire(self, key, ttl):
        """Gives an existing key `ttl` more seconds (EXPIRE); no-op on a missing one."""
        if self.exists(key):
            self._deadlines[key] = self.clock() + float(ttl)

    def ttl(self, key):
        """Seconds `key` has left (TTL); None when it has no deadline or does not exist."""
        if not self.exists(key) or key not in self._deadlines:
            return None
        return self._deadlines[key] - self.clock()

    def delete(self, *keys):
        for key in keys:
            self._values.pop(key, None)
            self._deadlines.pop(key, None)

    def hash(self, key) -> dict:
        """The dict at `key`, created empty (without a deadline) if missing; drop it again when left empty."""
        value = self.get(key)
        if value is None:
            value = self._values[key] = {}
        return value

    def members(self, key) -> set:
        """The set at `key`, created empty if missing."""
        value = self.get(key)
        if value is None:
            value = self._values[key] = set()
        return value

    def drop_if_empty(self, key):
        """Redis removes a hash or set whose last field went: so does the store."""
        if not self._values.get(key, True):
            self.delete(key)

    # ---- events ---------------------------------------------------------------------------------
    def publish(self, channel, event: dict):
        """Delivers a copy of `event` to every subscriber of `channel`."""
        text = json.dumps(event)
        for queue in list(self._channels.get(channel, ())):
            queue.put_nowait(text)

    def subscribe(self, channel) -> "MemorySubscription":
        queue = asyncio.Queue()
        self._channels.setdefault(channel, set()).add(queue)
        return MemorySubscription(self, channel, queue)

    def unsubscribe(self, channel, queue):
        self._channels.get(channel, set()).discard(queue)


class MemorySubscription(Subscription):
    """One subscriber's queue of a MemoryStore channel."""

    def __init__(self, store, channel, queue):
        self.store, self.channel, self.queue = store, channel, queue

    async def get(self, timeout):
        try:
            text = await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return None
        return json.loads(text)

    async def aclose(self):
        self.store.unsubscribe(self.channel, self.queue)
