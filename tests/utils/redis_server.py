"""A real redis-server on a free 127.0.0.1 port, started and stopped by PID."""
import os
import shutil
import signal
import socket
import subprocess
import time

from tests.utils.wait import wait_for


def free_port():
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def consecutive_free_ports(count=2):
    """A port p such that p..p+count-1 were free on 127.0.0.1 a moment ago."""
    for _ in range(50):
        base = free_port()
        socks = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no consecutive free ports")


def _ping(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """redis-server --save "" --appendonly no on loopback; restartable on the same port."""

    def __init__(self, workdir, port=None):
        self.workdir = str(workdir)
        self.port = port or free_port()
        self.proc = None

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, timeout=10.0):
        exe = shutil.which("redis-server")
        assert exe, "redis-server not installed (run ./build.sh)"
        os.makedirs(self.workdir, exist_ok=True)
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.workdir, "--logfile", os.path.join(self.workdir, "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: _ping(self.port), timeout, what=f"redis-server on {self.port}")
        return self

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            if sig in (signal.SIGKILL, signal.SIGTERM):
                self.proc.wait(timeout=10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def restart(self, timeout=10.0):
        self.kill()
        deadline = time.monotonic() + timeout
        while True:  # the port may linger briefly after SIGKILL
            try:
                return self.start(timeout=max(0.5, deadline - time.monotonic()))
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
