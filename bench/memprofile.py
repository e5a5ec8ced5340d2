"""Runs `python -m mindspore_federated.server` under tracemalloc; SIGUSR2 writes a snapshot (herd_run.py)."""
import os
import runpy
import signal
import sys
import time
import tracemalloc


def _dump(_signum, _frame):
    out = os.environ.get("MSF_TRACEMALLOC_DIR", ".")
    path = os.path.join(out, f"snap_{time.monotonic():.3f}.tracemalloc")
    tracemalloc.take_snapshot().dump(path)
    print(f"SNAPSHOT {path}", flush=True)


def compare(before, after, top=15):
    """Lines of the largest growths by allocation site (file:line) from snapshot `before` to `after`."""
    a = tracemalloc.Snapshot.load(before).filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    b = tracemalloc.Snapshot.load(after).filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    stats = b.compare_to(a, "lineno")
    total = sum(s.size_diff for s in stats)
    lines = [f"traced Python heap growth: {total / 2**20:.1f} MiB"]
    for s in stats[:top]:
        frame = s.traceback[0]
        lines.append(f"  {s.size_diff / 2**20:8.2f} MiB {s.count_diff:+8d} blocks  "
                     f"{frame.filename}:{frame.lineno}")
    return lines


if __name__ == "__main__":
    tracemalloc.start(1)
    signal.signal(signal.SIGUSR2, _dump)
    sys.argv[0] = "mindspore_federated.server"
    runpy.run_module("mindspore_federated.server", run_name="__main__", alter_sys=True)
