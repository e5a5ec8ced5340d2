"""Round windows and their timers: when each round of the iteration opened, and what its timeout does."""
import asyncio
from dataclasses import dataclass

from mindspore_federated import errors
from mindspore_federated.clock import now_ms


@dataclass(frozen=True)
class Window:
    """A round's time window. When it expires before the round reached its threshold, the iteration fails.

    `guard` names the count the timeout checks in the cluster state ('none', 'field:<round>' for the round's
    own count, 'sum' for the updates accepted by all servers) and `threshold` the EngineContext attribute it
    is compared with. The window that `opens_iteration` also starts the iteration's global window."""

    name: str
    hp_key: str
    guard: str = "none"
    threshold: str = ""
    opens_iteration: bool = False


GLOBAL = Window("global", "global_iteration_time_window")


class RoundWindows:
    """Start times of this iteration's windows (read from the cluster or opened here) and their timers."""

    def __init__(self, ctx, windows):
        self.ctx = ctx
        self.windows = tuple(windows) + (GLOBAL,)
        self.opening = next((w.name for w in self.windows if w.opens_iteration), GLOBAL.name)
        self.starts = {}
        self.base_ms = now_ms()
        self._timers = {}
        self.on_opened = None    # (name) -> None: a request of this server opened the window
        self.on_expired = None   # async (iteration, success, reason, guard, threshold): ends the iteration

    def next_req_time(self):
        """When devices should come back: the end of the iteration's first windows."""
        return self.starts.get(self.opening, self.base_ms) + self.ctx.iteration_window_ms

    def started(self, name, start_ms):
        """A request of this server counted first in round `name` this iteration: record it and announce it
        so the other servers' timers start together (they read the exact start time from the cluster)."""
        if self.open(name, start_ms) and self.on_opened is not None:
            self.on_opened(name)

    def open(self, name, start_ms):
        """Records the start of `name`'s window and arms its timers; False when it was known already."""
        if name in self.starts:
            return False
        start = start_ms if start_ms is not None else now_ms()
        self.starts[name] = start
        if name == self.opening:
            self.starts.setdefault(GLOBAL.name, start)
            self.ctx.stats.start_ms = self.ctx.stats.start_ms or start
            self.ctx.replies.clear()
        self.arm()
        return True

    def complete(self, name):
        """Round `name` reached its threshold: its timeout no longer applies."""
        handle = self._timers.pop(name, None)
        if handle is not None:
            handle.cancel()

    def arm(self):
        loop = asyncio.get_running_loop()
        for window in self.windows:
            start = self.starts.get(window.name)
            if start is None or window.name in self._timers:
                continue
            delay = max(0.0, (start + int(self.ctx.hp[window.hp_key]) - now_ms()) / 1000.0)
            threshold = getattr(self.ctx, window.threshold) if window.threshold else 0
            self._timers[window.name] = loop.call_later(delay, self._expire, window, self.ctx.iteration,
                                                        threshold)

    def _expire(self, window, iteration, threshold):
        reason = (errors.ITER_GLOBAL_TIMEOUT if window is GLOBAL
                  else errors.ITER_ROUND_TIMEOUT.format(name=window.name))
        self.ctx.tasks.spawn(self.on_expired(iteration, False, reason, window.guard, threshold))

    def cancel(self):
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    def reset(self):
        """A new iteration: no window is open yet."""
        self.starts.clear()
        self.cancel()
        self.base_ms = now_ms()
