"""How late this event loop runs its callbacks: a Redis timeout while the loop lags is overload, not an outage."""
import asyncio

TICK_S = 0.1
LATE_S = 0.5        # a tick this late means requests are queueing in the loop itself


class LoopLag:
    """A periodic callback that remembers when it last ran late."""

    def __init__(self):
        self._loop = None
        self._handle = None
        self._due = 0.0
        self.late_at = float("-inf")  # loop time of the last late tick

    def start(self):
        self._loop = asyncio.get_running_loop()
        self._due = self._loop.time() + TICK_S
        self._handle = self._loop.call_at(self._due, self._tick)

    def _tick(self):
        now = self._loop.time()
        if now - self._due >= LATE_S:
            self.late_at = now
        self._due = now + TICK_S
        self._handle = self._loop.call_at(self._due, self._tick)

    def lagged_within(self, seconds):
        """True when the loop ran late at some point in the last `seconds` (or is late right now)."""
        if self._loop is None:
            return False
        now = self._loop.time()
        return now - self.late_at <= seconds or now - self._due >= LATE_S

    def stop(self):
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
