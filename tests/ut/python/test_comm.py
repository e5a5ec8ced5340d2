"""_core.Communicator and comm.py: asyncio serving, error mapping, all-reduce in threads and processes."""
import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from mindspore_federated import _core, comm
from tests.utils.wait import BUSY_SLACK_S

TIMEOUT = 0.5

# A child process: prints its address, reads the group from stdin, then either all-reduces
# (integer-valued data, rank 1) or just idles with an unanswered request queue.
CHILD = textwrap.dedent(
    """
    import sys, numpy as np
    from mindspore_federated import _core
    with _core.Communicator() as c:
        print(c.address, flush=True)
        line = sys.stdin.readline().split()
        if line[0] == "allreduce":
            group, n = line[1].split(","), int(line[2])
            x = np.arange(n, dtype=np.float32) % 1000 + 1
            c.allreduce(group, 1, x, 7, 10.0)
            print(float(x.sum()), flush=True)
        sys.stdin.readline()
    """
)


def _unused_address():
    with _core.Communicator() as probe:
        return probe.address  # nothing listens there once stopped


def _spawn_child():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env)
    return proc, proc.stdout.readline().strip()


async def _echo(peer, msg_type, payload):
    if msg_type == 99:
        raise RuntimeError("handler refused: " + payload.decode())
    await asyncio.sleep(0)
    return b"%d:" % msg_type + payload


def test_request_reply_through_asyncio_add_reader():
    async def main(server, client):
        serving = asyncio.create_task(comm.serve_requests(server, _echo))
        try:
            replies = await asyncio.wait_for(asyncio.gather(
                *(comm.request(client, server.address, i, b"p%d" % i, 5.0) for i in range(20))), 10)
            assert replies == [b"%d:p%d" % (i, i) for i in range(20)]
            with pytest.raises(_core.CommError, match="^handler refused: no$") as info:
                await comm.request(client, server.address, 99, b"no", 5.0)
            assert not isinstance(info.value, _core.CommTimeoutError)
        finally:
            serving.cancel()
            with pytest.raises(asyncio.CancelledError):
                await serving

    with _core.Communicator() as server, _core.Communicator() as client:
        asyncio.run(main(server, client))


def test_poll_requests_and_peer_naming():
    with _core.Communicator() as server, _core.Communicator() as client:
        t = threading.Thread(target=lambda: pytest.raises(_core.CommTimeoutError, client.request,
                                                          server.address, 3, b"x", TIMEOUT))
        t.start()
        deadline = time.monotonic() + 5
        reqs = []
        while not reqs and time.monotonic() < deadline:
            reqs = server.poll_requests(max=8)
            time.sleep(0.005)
        t.join(5)
        assert len(reqs) == 1
        request_id, peer, msg_type, payload = reqs[0]
        assert (peer, msg_type, payload) == (client.address, 3, b"x")
        assert server.poll_requests() == []
        with pytest.raises(ValueError):
            server.reply(request_id + 1000, b"")


def test_error_mapping_timeout_and_refused():
    assert issubclass(_core.CommTimeoutError, _core.CommError)
    assert issubclass(_core.CommTimeoutError, TimeoutError)  # the builtin: `except TimeoutError` catches it
    assert not issubclass(_core.CommError, TimeoutError)
    assert issubclass(_core.CommError, ConnectionError)
    with _core.Communicator() as silent, _core.Communicator() as client:
        start = time.monotonic()
        with pytest.raises(TimeoutError, match=silent.address) as info:
            client.request(silent.address, 1, b"", TIMEOUT)
        assert isinstance(info.value, _core.CommTimeoutError) and isinstance(info.value, _core.CommError)
        assert TIMEOUT * 0.9 <= time.monotonic() - start < TIMEOUT + BUSY_SLACK_S  # not early, no hang
        dead = _unused_address()
        with pytest.raises(_core.CommError, match=dead):
            client.request(dead, 1, b"", TIMEOUT)
    with pytest.raises(_core.CommError, match="stopped"):
        client.request(silent.address, 1, b"", TIMEOUT)


def test_lifecycle_and_properties():
    c = _core.Communicator("127.0.0.1", 0, max_connections=4, max_frame_bytes=1 << 20)
    assert c.port > 0 and c.address == f"127.0.0.1:{c.port}"
    assert not c.running
    with pytest.raises(ValueError):
        c.request(c.address, 1, b"", 1.0)
    c.start()
    assert c.running
    c.stop()
    c.stop()
    assert not c.running
    with pytest.raises(ValueError):
        _core.Communicator(port=70000)


def test_broadcast():
    async def main(a, b, client, dead):
        tasks = [asyncio.create_task(comm.serve_requests(s, _echo)) for s in (a, b)]
        loop = asyncio.get_running_loop()
        try:
            peers = [a.address, dead, b.address]
            return await loop.run_in_executor(None, client.broadcast, peers, 4, b"hi", 5.0)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    dead = _unused_address()
    with _core.Communicator() as a, _core.Communicator() as b, _core.Communicator() as client:
        results = asyncio.run(main(a, b, client, dead))
    assert results[0] == (a.address, b"4:hi", "")
    assert results[1][0] == dead and results[1][1] is None and dead in results[1][2]
    assert results[2] == (b.address, b"4:hi", "")


def test_oversize_frame_rejected():
    with _core.Communicator(max_frame_bytes=1024) as small, _core.Communicator() as client:
        with pytest.raises(_core.CommError) as info:
            client.request(small.address, 1, b"x" * 4096, 5.0)
        assert not isinstance(info.value, _core.CommTimeoutError)  # refused, not left to time out
        with pytest.raises(ValueError, match="max_frame_bytes"):
            small.request(client.address, 1, b"x" * 4096, 5.0)


def _allreduce_threads(n, make, fn_name, count=10_000, tag=1):
    comms = [_core.Communicator().__enter__() for _ in range(n)]
    group = [c.address for c in comms]
    data = [make(count, r) for r in range(n)]
    errors = []

    def run(r):
        try:
            getattr(comms[r], fn_name)(group, r, data[r], tag, 10.0)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for c in comms:
        c.stop()
    assert not errors
    return data


@pytest.mark.parametrize("count", [0, 1, 2, 7, 4096, 100_003])
def test_allreduce_three_threads(count):
    data = _allreduce_threads(3, lambda n, r: (np.arange(n, dtype=np.float32) % 1000) + r, "allreduce", count)
    expect = 3 * (np.arange(count, dtype=np.float32) % 1000) + 3
    for d in data:
        np.testing.assert_array_equal(d, expect)


def test_allreduce_f64():
    data = _allreduce_threads(3, lambda n, r: np.full(n, 0.25 * (r + 1)), "allreduce_f64", 5000)
    for d in data:
        assert d.dtype == np.float64
        np.testing.assert_array_equal(d, np.full(5000, 1.5))


def test_allreduce_dtype_and_layout_strictness():
    with _core.Communicator() as c:
        group = [c.address]
        with pytest.raises(TypeError):
            c.allreduce(group, 0, np.zeros(8, dtype=np.float64), 1, 1.0)
        with pytest.raises(TypeError):
            c.allreduce(group, 0, np.zeros(16, dtype=np.float32)[::2], 1, 1.0)
        with pytest.raises(TypeError):
            c.allreduce_f64(group, 0, np.zeros(8, dtype=np.float32), 1, 1.0)
        frozen = np.zeros(8, dtype=np.float32)
        frozen.setflags(write=False)
        with pytest.raises(ValueError):
            c.allreduce(group, 0, frozen, 1, 1.0)
        x = np.ones(8, dtype=np.float32)
        c.allreduce(group, 0, x, 1, 1.0)  # group of one: no-op
        np.testing.assert_array_equal(x, 1)


def test_allreduce_async_helper():
    async def main(comms, group, data):
        await asyncio.gather(*(comm.allreduce(c, group, r, data[r], 3, 10.0) for r, c in enumerate(comms)))

    with _core.Communicator() as a, _core.Communicator() as b:
        data = [np.full(100, 1.0, dtype=np.float32), np.full(100, 2.0, dtype=np.float32)]
        asyncio.run(main([a, b], [a.address, b.address], data))
    for d in data:
        np.testing.assert_array_equal(d, 3.0)


def test_allreduce_two_processes():
    n = 250_000
    proc, child_addr = _spawn_child()
    with proc, _core.Communicator() as c:
        group = [c.address, child_addr]
        proc.stdin.write(f"allreduce {','.join(group)} {n}\n")
        proc.stdin.flush()
        x = np.arange(n, dtype=np.float32) % 1000
        c.allreduce(group, 0, x, 7, 10.0)
        expect = 2 * (np.arange(n, dtype=np.float32) % 1000) + 1
        np.testing.assert_array_equal(x, expect)
        assert float(proc.stdout.readline()) == float(expect.sum())
        proc.stdin.write("bye\n")
        proc.stdin.close()
        assert proc.wait(10) == 0


def test_killed_peer_fails_inflight_request_at_once():
    proc, child_addr = _spawn_child()
    with proc, _core.Communicator() as c:
        timer = threading.Timer(0.3, os.kill, (proc.pid, signal.SIGKILL))
        timer.start()
        try:
            with pytest.raises(_core.CommError, match=child_addr) as info:
                c.request(child_addr, 1, b"never answered", 10.0)
        finally:
            timer.join()
            proc.stdin.close()
            proc.wait(10)
        assert not isinstance(info.value, _core.CommTimeoutError)  # failed on the dead peer, not the timeout
