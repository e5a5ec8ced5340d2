"""Clocks: epoch milliseconds, monotonic seconds and the time strings of node ids and summaries."""
import datetime
import re
import time

from mindspore_federated import clock


def test_now_ms_is_epoch_milliseconds():
    before = time.time_ns() // 1_000_000
    now = clock.now_ms()
    after = time.time_ns() // 1_000_000
    assert isinstance(now, int) and before <= now <= after
    text = clock.now_ms_text()
    assert text.isdigit() and before <= int(text) <= time.time_ns() // 1_000_000


def test_monotonic_never_goes_back():
    values = [clock.monotonic() for _ in range(1000)]
    assert values == sorted(values)


def test_time_string_format_and_value():
    epoch_us = 1_700_000_000_123_456
    local = datetime.datetime.fromtimestamp(epoch_us // 1_000_000)
    assert clock.time_string(epoch_us) == f"{local:%Y-%m-%d-%H:%M:%S}.123.456"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d-\d\d:\d\d:\d\d\.\d{3}\.\d{3}", clock.time_string())


def test_local_time_ms():
    ms = 1_700_000_000_007
    local = datetime.datetime.fromtimestamp(ms // 1000)
    assert clock.local_time_ms(ms) == f"{local:%Y-%m-%d %H:%M:%S}.007"
