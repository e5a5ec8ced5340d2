"""FedAvg kernel GB/s: _core.accumulate / accumulate_scaled next to numpy `acc += w*x` and `acc += x`."""
import argparse
import json
import sys
import time

import numpy as np

from mindspore_federated import _core

SIZES = (61_706, 617_060, 10_000_000)
WEIGHT = np.float32(3.0)


def _time_per_call(fn, min_seconds, repeats=5):
    """Best-of-`repeats` seconds per call, each repeat running for at least `min_seconds`."""
    fn()  # warm-up: page faults, caches
    calls = 1
    while True:  # calibrate the number of calls per repeat
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds / repeats or calls >= 1 << 20:
            break
        calls *= 2
    best = elapsed / calls
    for _ in range(repeats - 1):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


POOL_BYTES = 96 << 20   # "cold" sources rotate through this much memory (more than any cache here)


def _arrays(n, cold, seed=0):
    """(acc, list of sources): one source (cache-resident when small) or enough to exceed the caches."""
    rng = np.random.default_rng(seed)
    count = max(2, -(-POOL_BYTES // (n * 4))) if cold else 1
    base = rng.standard_normal(n, dtype=np.float32)
    return np.zeros(n, np.float32), [base.copy() for _ in range(count)]


def kernel_fns(acc, sources):
    """name -> zero-argument callable accumulating the next source into `acc` (sources are used in turn)."""
    state = {"i": 0}

    def nxt():
        state["i"] = i = (state["i"] + 1) % len(sources)
        return sources[i]

    def numpy_axpy():
        acc.__iadd__(WEIGHT * nxt())

    def numpy_add():
        acc.__iadd__(nxt())

    return {
        "numpy acc += w*x": numpy_axpy,
        "numpy acc += x": numpy_add,
        "_core.accumulate_scaled": lambda: _core.accumulate_scaled(acc, nxt(), float(WEIGHT)),
        "_core.accumulate": lambda: _core.accumulate(acc, nxt()),
    }


def update_gbps(seconds, n):
    """GB/s of update processed (bytes of `x`, the convention of the performance anchors)."""
    return n * 4 / seconds / 1e9


def numpy_axpy_gbps(n, min_seconds=0.3, cold=True):
    """The machine's memory-bound reference: numpy `acc += w*x` GB/s of update for `n` float32 elements
    (cold: every call reads a different source, as a freshly received update would be)."""
    acc, sources = _arrays(n, cold)
    return update_gbps(_time_per_call(kernel_fns(acc, sources)["numpy acc += w*x"], min_seconds), n)


def core_accumulate_gbps(n, min_seconds=0.3, cold=True):
    """GB/s of update of the server's FedAvg kernel, `_core.accumulate`, measured like numpy_axpy_gbps."""
    acc, sources = _arrays(n, cold)
    return update_gbps(_time_per_call(kernel_fns(acc, sources)["_core.accumulate"], min_seconds), n)


def run(sizes=SIZES, min_seconds=0.3, modes=("cold", "hot")):
    """[{size, mode, kernel, us_per_call, gbps, traffic_gbps, vs_numpy_axpy}] for every size, mode, kernel."""
    rows = []
    for n in sizes:
        for mode in modes:
            acc, sources = _arrays(n, mode == "cold")
            fns = kernel_fns(acc, sources)
            per_call = {name: _time_per_call(fn, min_seconds) for name, fn in fns.items()}
            ref = update_gbps(per_call["numpy acc += w*x"], n)
            for name, sec in per_call.items():
                gbps = update_gbps(sec, n)
                rows.append({"size": n, "mode": mode, "kernel": name, "us_per_call": sec * 1e6, "gbps": gbps,
                             "traffic_gbps": 3 * gbps, "vs_numpy_axpy": gbps / ref})
            del acc, sources, fns
    return rows


def format_rows(rows):
    """The printed table."""
    head = (f"{'elements':>11} {'src':<5}{'kernel':<24} {'us/call':>10} {'GB/s update':>12} "
            f"{'GB/s traffic':>13} {'x numpy w*x':>12}")
    lines = [head]
    for r in rows:
        lines.append(f"{r['size']:>11,} {r['mode']:<5}{r['kernel']:<24} {r['us_per_call']:>10.1f} "
                     f"{r['gbps']:>12.2f} {r['traffic_gbps']:>13.2f} {r['vs_numpy_axpy']:>12.2f}")
    lines.append("GB/s update = bytes of the accumulated array per second; traffic = 3x (read acc, read x, "
                 "write acc).\nsrc cold = each call reads another source array (96 MiB pool, like a freshly "
                 "received update);\nhot = the same source every call (cache-resident below ~1 MB).")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", default=",".join(str(s) for s in SIZES), help="comma-separated element counts")
    p.add_argument("--min-seconds", type=float, default=0.3, help="time spent per measurement")
    p.add_argument("--json", help="also write the rows to this file")
    args = p.parse_args(argv)
    rows = run([int(s) for s in args.sizes.split(",")], args.min_seconds)
    print(format_rows(rows), flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
