"""Network namespaces for system tests: hosts on a private bridge (10.77.0.0/24), links that can be cut, and a
thread whose sockets live inside one namespace (so the test itself can act as a device on that network)."""
import concurrent.futures
import ctypes
import os
import shutil
import subprocess
import sys

from tests.utils.procs import RoleProcess

SUBNET = "10.77.0"
CLONE_NEWNET = 0x40000000
_CMD_TIMEOUT_S = 20


def netns_unavailable():
    """Why namespaces cannot be built here (a skip reason), or None when they can."""
    if shutil.which("ip") is None:
        return "the `ip` tool (iproute2) is not installed"
    if os.geteuid() != 0:
        return "building network namespaces needs root"
    probe = f"mftprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, timeout=_CMD_TIMEOUT_S)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.decode(errors='replace').strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=_CMD_TIMEOUT_S)
    return None


def _ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=_CMD_TIMEOUT_S)


class Topology:
    """A hub namespace holding a bridge, and one namespace per host joined to it by a veth pair.

    Every name carries a per-run tag, so parallel runs never meet; `close()` deletes every namespace (which
    deletes their veths and the bridge) and is safe to call after a partial build."""

    def __init__(self, tag=None):
        self.tag = tag or f"{os.getpid() % 100000}"
        self.hub = f"mfhub{self.tag}"
        self.hosts = {}        # short name -> (namespace, ip, hub-side veth)
        self._made = []

    def _add_ns(self, ns):
        _ip("netns", "add", ns)
        self._made.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")

    def open(self):
        self._add_ns(self.hub)
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.hub, "link", "set", "br0", "up")
        return self

    def add_host(self, name, octet):
        """A namespace `name` with address 10.77.0.<octet> on eth0; returns that address."""
        ns, ip = f"mf{name}{self.tag}", f"{SUBNET}.{octet}"
        hub_end = f"h{octet}x{self.tag}"[:15]
        self._add_ns(ns)
        _ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", hub_end, "netns", self.hub)
        _ip("-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", self.hub, "link", "set", hub_end, "master", "br0")
        _ip("-n", self.hub, "link", "set", hub_end, "up")
        self.hosts[name] = (ns, ip, hub_end)
        return ip

    def ns(self, name):
        return self.hosts[name][0]

    def ip(self, name):
        return self.hosts[name][1]

    def cut(self, name):
        """Unplugs a host: its bridge-side link goes down (no RST, no ICMP: peers just stop hearing it)."""
        _ip("-n", self.hub, "link", "set", self.hosts[name][2], "down")

    def close(self):
        for ns in reversed(self._made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=_CMD_TIMEOUT_S)
        self._made.clear()

    def run(self, group, host, name, *args, env=None, cwd=None):
        """Starts `args` inside host's namespace as a tracked RoleProcess of `group` (a ProcessGroup)."""
        proc = RoleProcess(["ip", "netns", "exec", self.ns(host), *args], name, group.log_dir, env=env, cwd=cwd)
        group.procs.append(proc)
        return proc

    def python(self, group, host, name, *args, env=None, cwd=None):
        return self.run(group, host, name, sys.executable, *args, env=env, cwd=cwd)


class NamespaceThread:
    """One worker thread that has entered a namespace: `call(fn, ...)` runs fn there (its sockets, HTTP
    calls and asyncio loops use that namespace's network) and returns its result within `timeout`."""

    def __init__(self, ns):
        self._ns = ns
        self._pool = concurrent.futures.ThreadPoolExecutor(1, initializer=self._enter)

    def _enter(self):
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/var/run/netns/{self._ns}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {self._ns} failed")
        finally:
            os.close(fd)

    def call(self, fn, *args, timeout=120.0, **kwargs):
        return self._pool.submit(fn, *args, **kwargs).result(timeout=timeout)

    def close(self):
        self._pool.shutdown(wait=False, cancel_futures=True)
