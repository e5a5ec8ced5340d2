"""Clocks: epoch milliseconds for the protocol and Redis, monotonic seconds for deadlines, time strings."""
import datetime
import time

__all__ = ["now_ms", "now_ms_text", "monotonic", "time_string", "local_time_ms"]


def now_ms():
    """Current epoch time in whole milliseconds."""
    return time.time_ns() // 1_000_000


def now_ms_text():
    """Current epoch time in milliseconds as the decimal string the device protocol carries."""
    return str(now_ms())


def monotonic():
    """Seconds on a clock that never goes back (deadlines, timeouts, rates)."""
    return time.monotonic()


def time_string(epoch_us=None):
    """`YYYY-MM-DD-HH:MM:SS.mmm.uuu` in local time, as in node ids and instance names (default: now)."""
    if epoch_us is None:
        epoch_us = time.time_ns() // 1000
    stamp = datetime.datetime.fromtimestamp(epoch_us // 1_000_000).replace(microsecond=epoch_us % 1_000_000)
    micro = stamp.microsecond
    return f"{stamp:%Y-%m-%d-%H:%M:%S}.{micro // 1000:03d}.{micro % 1000:03d}"


def local_time_ms(ms):
    """`YYYY-mm-dd HH:MM:SS.mmm` in local time for epoch milliseconds `ms`."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) + f".{int(ms) % 1000:03d}"
