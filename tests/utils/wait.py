"""Bounded polling: wait_for(predicate, timeout) and its async twin, reporting the last failure."""
import asyncio
import time

# The most a busy machine (other test runs, CPU hogs) may add to a step that is prompt when idle: deadlines
# of "this must not hang / must not wait for a long timeout" checks are the step's own bound plus this.
BUSY_SLACK_S = 10.0


class WaitTimeout(AssertionError):
    """A condition did not hold before its deadline."""


def wait_for(predicate, timeout=10.0, interval=0.02, what="condition"):
    """Polls `predicate()` until it returns a truthy value (returned) or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - reported below
            last_exc = exc
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout}s waiting for {what}; last error: {last_exc!r}")
        time.sleep(interval)


async def async_wait_for(predicate, timeout=10.0, interval=0.02, what="condition"):
    """Async twin of wait_for; `predicate` may be a coroutine function."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
        except Exception as exc:  # noqa: BLE001
            last_exc = exc
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout}s waiting for {what}; last error: {last_exc!r}")
        await asyncio.sleep(interval)
