"""_core aggregation kernels against numpy, dtype/layout strictness, GIL behaviour."""
import numpy as np
import pytest

from mindspore_federated import _core

SIZES = [0, 1, 7, 4096, 1_000_000]


def _rand(n, seed):
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32)


@pytest.mark.parametrize("n", SIZES)
def test_accumulate_matches_numpy(n):
    # Prepare
    acc, src = _rand(n, 1), _rand(n, 2)
    expect = acc + src
    # Execute
    _core.accumulate(acc, src)
    # Assert
    np.testing.assert_array_equal(acc, expect)


@pytest.mark.parametrize("n", SIZES)
def test_accumulate_scaled_matches_numpy(n):
    acc, src = _rand(n, 3), _rand(n, 4)
    expect = acc + np.float32(0.25) * src
    _core.accumulate_scaled(acc, src, 0.25)
    np.testing.assert_allclose(acc, expect, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("n", SIZES)
def test_scale_and_divide(n):
    x = _rand(n, 5)
    y = x.copy()
    _core.scale(x, 2.0)
    _core.divide(y, 3.0)
    np.testing.assert_array_equal(x, _rand(n, 5) * np.float32(2.0))
    np.testing.assert_allclose(y, _rand(n, 5).astype(np.float64) / 3.0, rtol=1e-7)


@pytest.mark.parametrize("n", [1, 7, 4096, 1_000_000])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_all_finite(n, bad):
    x = _rand(n, 6)
    assert _core.all_finite(x)
    x[n // 2] = bad
    assert not _core.all_finite(x)
    assert _core.all_finite(np.zeros(0, np.float32))


def test_float64_and_strided_inputs_are_type_errors():
    acc = np.zeros(8, np.float32)
    with pytest.raises(TypeError):
        _core.accumulate(acc, np.zeros(8, np.float64))
    with pytest.raises(TypeError):
        _core.accumulate(acc, np.zeros(16, np.float32)[::2])
    with pytest.raises(TypeError):
        _core.accumulate(np.zeros(8, np.float64), np.zeros(8, np.float32))


def test_size_mismatch_and_readonly_are_value_errors():
    with pytest.raises(ValueError):
        _core.accumulate(np.zeros(3, np.float32), np.zeros(4, np.float32))
    ro = np.zeros(4, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError):
        _core.accumulate(ro, np.zeros(4, np.float32))
    with pytest.raises(ValueError):
        _core.divide(np.zeros(4, np.float32), 0.0)


def test_readonly_source_view_is_accepted_without_copy():
    body = np.arange(10, dtype=np.float32).tobytes()
    view = np.frombuffer(body, dtype=np.float32)  # read-only, like a flatbuffers vector view
    acc = np.zeros(10, np.float32)
    _core.accumulate(acc, view)
    np.testing.assert_array_equal(acc, np.arange(10, dtype=np.float32))


def test_large_kernel_releases_the_gil():
    import sys
    import threading
    import time

    acc, src = np.zeros(20_000_000, np.float32), np.ones(20_000_000, np.float32)
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    # With a huge switch interval this thread keeps the GIL between kernel calls, so the ticker can only
    # run while a kernel call has released it: the ticks must grow before the deadline, however busy the CPU.
    interval = sys.getswitchinterval()
    t = threading.Thread(target=ticker)
    t.start()
    calls = 0
    sys.setswitchinterval(1000.0)
    try:
        baseline = len(ticks)
        deadline = time.monotonic() + 60.0
        while len(ticks) < baseline + 3 and time.monotonic() < deadline:
            _core.accumulate(acc, src)
            calls += 1
        grown = len(ticks) - baseline
    finally:
        sys.setswitchinterval(interval)
        stop.set()
        t.join()
    assert acc[0] == float(calls)
    assert grown >= 3, "the ticker never ran during a kernel call: the kernel holds the GIL"
