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
            # +PONG, or -NOAUTH from a Redis that wants a password: either way it serves
            return s.recv(16).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


def _tls_ping(port, context):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


def stop_process(proc):
    """SIGTERM to a process this test started (by its Popen), SIGKILL if it is still there after 5 s."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class RedisServer:
    """redis-server --save "" --appendonly no on loopback; restartable on the same port."""

    def __init__(self, workdir, port=None, extra_args=(), tls=None):
        """`extra_args`: more redis-server options (e.g. --requirepass); `tls`: a RedisTls for a TLS-only
        server (--port 0 --tls-port `port`)."""
        self.workdir = str(workdir)
        self.port = port or free_port()
        self.proc = None
        self.extra_args = tuple(extra_args)
        self.tls = tls

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
        ports = ["--port", str(self.port)] if self.tls is None else ["--port", "0", *self.tls.args(self.port)]
        self.proc = subprocess.Popen(
            [exe, *ports, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.workdir, "--logfile", os.path.join(self.workdir, "redis.log"), *self.extra_args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(self._serves, timeout, what=f"redis-server on {self.port}")
        except BaseException:
            self.stop()
            raise
        return self

    def _serves(self):
        return _ping(self.port) if self.tls is None else _tls_ping(self.port, self.tls.client_context())

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            if sig in (signal.SIGKILL, signal.SIGTERM):
                self.proc.wait(timeout=10)

    def stop(self):
        stop_process(self.proc)
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


class RedisTls:
    """TLS material of a TLS-only redis-server, made at test time: a CA, the server's certificate and key, and
    (when `client_certs`) a client certificate Redis requires (--tls-auth-clients yes)."""

    def __init__(self, directory, client_certs=False):
        from tests.utils.certs import TestCA, write_pem_pair

        d = str(directory)
        os.makedirs(d, exist_ok=True)
        ca = TestCA("redis-ca")
        self.ca_file = ca.write_pem(_path(d, "redis-ca.pem"))
        self.cert_file, self.key_file = write_pem_pair(_path(d, "redis"), *ca.issue("127.0.0.1"))
        self.client_cert, self.client_key = write_pem_pair(_path(d, "redis-client"), *ca.issue("client"))
        self.client_certs = client_certs

    def args(self, port):
        return ["--tls-port", str(port), "--tls-cert-file", self.cert_file, "--tls-key-file", self.key_file,
                "--tls-ca-cert-file", self.ca_file, "--tls-auth-clients", "yes" if self.client_certs else "no"]

    def client_context(self):
        import ssl

        context = ssl.create_default_context(cafile=self.ca_file)
        context.check_hostname = False
        context.load_cert_chain(self.client_cert, self.client_key)
        return context


def _path(directory, name):
    import pathlib

    return pathlib.Path(directory) / name
