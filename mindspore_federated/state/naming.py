"""Instance names (`i_<YYYY-MM-DD-HH:MM:SS.mmm.uuu>`), strictly later than any made before in this process."""
import datetime
import time

_last_name_us = 0


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
