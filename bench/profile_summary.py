"""Summarises a py-spy raw (collapsed-stack) server profile: on-CPU share by component, round and function."""
import argparse
import json
import re
import sys
from collections import Counter

# A sample whose innermost frames are one of these is a thread waiting, not working.
IDLE_MARKERS = ("epoll_wait", "epoll_pwait", "PyThread_acquire_lock", "_queue_SimpleQueue_get", "futex",
                "nanosleep", "pthread_cond_wait", "sem_wait", "select (", "accept (", "poll (libc")
SEND_SYSCALLS = ("write (libc", "writev (libc", "sendmsg (libc", "send (libc", "sendto (libc")
RECV_SYSCALLS = ("read (libc", "readv (libc", "recvmsg (libc", "recv (libc", "recvfrom (libc")

# (category, substrings of a frame): first rule matching the innermost frame that matches any rule wins.
# None = generic (interpreter, libc, numpy...): keep walking outwards for a more telling frame.
RULES = [
    ("C++ verify (_core.verify)", ("erif",), "_core"),
    ("C++ kernels (_core accumulate/all_finite/divide)", ("fl::", "_core.cpython"), None),
    ("aiohttp: request parsing & body read", ("_http_parser.c", "llhttp", "aiohttp/http_parser.py",
                                              "aiohttp/streams.py", "aiohttp/web_request.py",
                                              "aiohttp/multipart.py"), None),
    ("aiohttp: response building & writing", ("aiohttp/http_writer.py", "_http_writer.c",
                                              "aiohttp/web_response.py", "aiohttp/payload.py"), None),
    ("aiohttp: protocol & dispatch", ("aiohttp/", "_helpers_c.c", "multidict", "yarl/"), None),
    ("redis-py client (commands, pool, parser)", ("redis/", "hiredis"), None),
    ("flatbuffers", ("flatbuffers/", "schema/fbs/"), None),
    ("logging", ("logging/",), None),
    ("json", ("json/", "_json.c"), None),
    ("checkpoint saving", ("mindspore_federated/checkpoint",), None),
    ("fast HTTP engine (mindspore_federated/server/http_fast.py)", ("mindspore_federated/server/http_fast",), None),
    ("server Python logic (rounds/node/state/replies)", ("mindspore_federated/",), None),
    ("event loop (uvloop/libuv/asyncio)", ("loop.c", "uvloop", "core.c", "stream.c", "linux.c",
                                           "loop-watcher.c", "queue.h", "uv-common", "asyncio/",
                                           "_asynciomodule", "contextlib.py", "threading.py", "concurrent/"),
     None),
    (None, ("libpython", "object.h", "abstract.h", "ceval", "libc.so", "typing.py", "<frozen", "0x", "numpy",
            "_multiarray", "_struct", "hashtable", "obmalloc", "functools", "enum.py"), None),
]
ROUND_MARKERS = [
    ("startFLJob (rounds.start_fl_job)", "start_fl_job (mindspore_federated/server/rounds"),
    ("updateModel (rounds.update_model)", "update_model (mindspore_federated/server/rounds"),
    ("getModel (rounds.get_model)", "get_model (mindspore_federated/server/rounds"),
    ("handler outside the rounds (read body, gate, verify, Response)", "http_app.py"),
    ("HTTP engine + device API outside the rounds (parse, body, gate, verify, reply)", "http_fast.py"),
    ("HTTP engine + device API outside the rounds (parse, body, gate, verify, reply)", "device_api.py"),
    ("aggregation / iteration switch", "mindspore_federated/server/aggregation/"),
    ("aggregation / iteration switch", "aggregate (mindspore_federated/server/engine"),
    ("aggregation / iteration switch", "switch_iteration"),
    ("sync loop / heartbeat / events", "mindspore_federated/server/engine/sync"),
    ("sync loop / heartbeat / events", "mindspore_federated/server/engine/events"),
    ("summaries & checkpoints", "iteration_finished"),
    ("summaries & checkpoints", "mindspore_federated/checkpoint"),
    ("aiohttp connection handling outside the handler", "aiohttp/"),
]
_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")


def parse(path):
    """[(frames root->leaf, samples)] of a py-spy --format raw file."""
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = _LINE.match(line.rstrip("\n"))
            if m:
                out.append((m.group("stack").split(";"), int(m.group("count"))))
    return out


def is_idle(frames):
    tail = frames[-4:]
    return any(marker in frame for frame in tail for marker in IDLE_MARKERS)


def component(frames):
    """The component a sample's CPU time is charged to."""
    if any("gc_collect" in f for f in frames[-3:]):
        return "Python GC"
    leaf = frames[-1]
    if leaf.startswith(SEND_SYSCALLS):
        return ("kernel: socket send (Redis commands)" if any("redis/" in f for f in frames)
                else "kernel: socket send (HTTP replies)")
    if leaf.startswith(RECV_SYSCALLS):
        return "kernel: socket receive"
    for frame in reversed(frames):
        for category, needles, also in RULES:
            if any(n in frame for n in needles) and (also is None or also in frame):
                if category is None:
                    break  # generic frame: look further out
                if category == "flatbuffers":
                    return ("flatbuffers: reply encoding" if any("server/replies.py" in f for f in frames)
                            else "flatbuffers: request decoding")
                return category
    return "other (interpreter, libc, numpy)"


def round_of(frames):
    for name, marker in ROUND_MARKERS:
        if any(marker in f for f in frames):
            return name
    return "other"


def _python_leaf(frames):
    for frame in reversed(frames):
        m = re.match(r"^(.*) \((.*\.py):\d+\)$", frame)
        if m:
            return f"{m.group(1)} ({m.group(2)})"
    return "(no Python frame)"


def summarise(path, top=15):
    """Dict with on-CPU totals and shares by component, round and innermost Python function."""
    stacks = parse(path)
    busy = [(frames, n) for frames, n in stacks if not is_idle(frames)]
    total = sum(n for _, n in busy)
    idle = sum(n for _, n in stacks) - total
    comp, rounds, funcs = Counter(), Counter(), Counter()
    for frames, n in busy:
        comp[component(frames)] += n
        rounds[round_of(frames)] += n
        funcs[_python_leaf(frames)] += n

    def shares(counter, limit=None):
        return [(name, n, 100.0 * n / total if total else 0.0) for name, n in counter.most_common(limit)]
    return {"path": path, "samples": total, "idle_samples": idle, "components": shares(comp),
            "rounds": shares(rounds), "functions": shares(funcs, top)}


def format_summary(s):
    """Printable text of `summarise`."""
    head = f"server profile ({s['path']}): {s['samples']} on-CPU samples ({s['idle_samples']} idle dropped)"
    lines = [head]
    for title, key in (("by component", "components"), ("by request / activity (inclusive)", "rounds"),
                       ("innermost Python function (self)", "functions")):
        lines.append(f"  {title}:")
        lines.extend(f"    {pct:5.1f}%  {name}" for name, _, pct in s[key])
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("raw", help="py-spy record --format raw output")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    s = summarise(args.raw, args.top)
    print(json.dumps(s, indent=1) if args.json else format_summary(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
