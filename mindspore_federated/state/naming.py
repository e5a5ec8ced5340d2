"""Instance names and the reference's time stamps (`YYYY-MM-DD-HH:MM:SS.mmm.uuu`)."""
import datetime
import time

_last_name_us = 0


def time_string():
    """`YYYY-MM-DD-HH:MM:SS.mmm.uuu` (the reference's time format for ids and instance names)."""
    now = time.time()
    us = int(now * 1e6) % 1_000_000
    return time.strftime("%Y-%m-%d-%H:%M:%S", time.localtime(now)) + f".{us // 1000:03d}.{us % 1000:03d}"


def new_instance_name(current: str = "") -> str:
    """`i_<YYYY-MM-DD-HH:MM:SS.mmm.uuu>` (local time), strictly later than any name made before."""
    global _last_name_us
    now_us = max(time.time_ns() // 1000, _last_name_us + 1)
    while True:
        _last_name_us = now_us
        stamp = datetime.datetime.fromtimestamp(now_us / 1e6)
        name = f"i_{stamp:%Y-%m-%d-%H:%M:%S}.{stamp.microsecond // 1000:03d}.{stamp.microsecond % 1000:03d}"
        if name != current:
            return name
        now_us += 1
