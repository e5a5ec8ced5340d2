"""Memory of the fast HTTP engine is flat in connections: many slow readers of one cached reply share it, and
uploads waiting for a slot hold a small read each (the rest of their bodies waits in the kernel)."""
import json
import os
import socket
import subprocess
import sys
import urllib.request

import pytest

from tests.utils.wait import wait_for

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
PER_CONNECTION = 24 * 1024          # allowed RSS growth per connection (the reply or a body is >= 256 KiB)
CONSTANT = 12 * 1024 * 1024         # allocator and loop noise

# The engine with a stand-in device API: getModel answers one cached 512 KiB reply, updateModel holds its
# upload slot until the process ends (2 slots), /healthz reports what the engine is doing.
SERVER = r"""
import asyncio, json, sys
from mindspore_federated.server.device_api import UploadPool
from mindspore_federated.server import http_fast

REPLY = bytes(range(256)) * 2048


class Api:
    routes = {"/getModel": "getModel", "/updateModel": "updateModel"}
    max_body = 4 << 20

    def __init__(self):
        self.uploads = UploadPool(2)
        self.handled = 0
        self.held = []
        self.server = None

    def health(self):
        conns = self.server.connections
        return json.dumps({"handled": self.handled, "connections": len(conns),
                           "waiting": sum(c.state == http_fast._WAIT_SLOT for c in conns)}).encode()

    def handle(self, name, body):
        self.handled += 1
        if name == "getModel":
            return REPLY
        self.held.append(asyncio.get_running_loop().create_future())
        return self.held[-1]


async def main():
    api = Api()
    api.server = http_fast.FastDeviceServer(api)
    await api.server.start("127.0.0.1", 0)
    print("PORT", api.server._server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

try:
    import uvloop
    uvloop.run(main())
except ImportError:
    asyncio.run(main())
"""


def _rss(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def engine():
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, env=env, text=True)
    try:
        line = wait_for(lambda: proc.stdout.readline(), 30, what="engine port")
        assert line.startswith("PORT"), line
        yield proc, int(line.split()[1])
    finally:
        proc.kill()
        proc.wait(10)
        proc.stdout.close()


def _health(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
        return json.loads(resp.read())


def _connect(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a slow reader: the kernel takes little
    s.connect(("127.0.0.1", port))
    return s


def _request(path, body):
    return b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (path, len(body)) + body


def test_slow_readers_of_one_cached_reply_share_it(engine):
    proc, port = engine
    n = 300
    warm = _connect(port)
    warm.sendall(_request(b"/getModel", b"x"))
    wait_for(lambda: _health(port)["handled"] == 1, 10, what="warm-up request")
    before = _rss(proc.pid)
    socks = [_connect(port) for _ in range(n)]
    try:
        for s in socks:
            s.sendall(_request(b"/getModel", b"x"))   # and never read the 512 KiB reply
        wait_for(lambda: _health(port)["handled"] == n + 1, 30, what="every request answered")
        grown = _rss(proc.pid) - before
        assert grown < CONSTANT + n * PER_CONNECTION, f"{grown / n / 1024:.0f} KiB per slow reader"
    finally:
        for s in [warm, *socks]:
            s.close()


def test_uploads_waiting_for_a_slot_hold_a_small_read_each(engine):
    proc, port = engine
    n = 200
    body = bytes(256 * 1024)
    holders = [_connect(port) for _ in range(2)]
    for s in holders:
        s.sendall(_request(b"/updateModel", body))     # these take both slots and keep them
    wait_for(lambda: _health(port)["handled"] == 2, 10, what="both slots taken")
    before = _rss(proc.pid)
    socks = [_connect(port) for _ in range(n)]
    try:
        for s in socks:
            s.setblocking(False)
            data = _request(b"/updateModel", body)
            try:
                s.send(data)   # as much as the kernel takes now; the server reads only what it must
            except BlockingIOError:
                pass
        wait_for(lambda: _health(port)["waiting"] == n, 30, what="every upload waiting for a slot")
        grown = _rss(proc.pid) - before
        assert grown < CONSTANT + n * PER_CONNECTION, f"{grown / n / 1024:.0f} KiB per waiting upload"
    finally:
        for s in [*holders, *socks]:
            s.close()
