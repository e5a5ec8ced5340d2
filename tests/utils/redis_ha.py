"""Real Redis high-availability deployments on 127.0.0.1 for tests: a Sentinel group (primary, replica, three
sentinels with short failover timings) and a 3-primary Redis Cluster; every process stopped by PID."""
import os
import shutil
import subprocess

import redis

from tests.utils.redis_server import RedisServer, free_port, stop_process
from tests.utils.wait import wait_for

MASTER_NAME = "msf"


def _client(port):
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1,
                       decode_responses=True)


def _ask(port, *command):
    """One command to 127.0.0.1:port, None when the process does not answer."""
    client = _client(port)
    try:
        return client.execute_command(*command)
    except redis.RedisError:
        return None
    finally:
        client.close()


class _Sentinel:
    def __init__(self, workdir, primary_port, down_after_ms, failover_timeout_ms):
        self.port = free_port()
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.conf = os.path.join(self.workdir, "sentinel.conf")
        with open(self.conf, "w", encoding="ascii") as f:
            f.write(f"port {self.port}\nbind 127.0.0.1\ndir {self.workdir}\n"
                    f"logfile {os.path.join(self.workdir, 'sentinel.log')}\n"
                    f"sentinel monitor {MASTER_NAME} 127.0.0.1 {primary_port} 2\n"
                    f"sentinel down-after-milliseconds {MASTER_NAME} {down_after_ms}\n"
                    f"sentinel failover-timeout {MASTER_NAME} {failover_timeout_ms}\n"
                    f"sentinel parallel-syncs {MASTER_NAME} 1\n")
        self.proc = None

    def start(self):
        exe = shutil.which("redis-sentinel")  # else the same binary in sentinel mode
        command = [exe, self.conf] if exe else [shutil.which("redis-server") or "redis-server", self.conf, "--sentinel"]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: _ask(self.port, "PING"), 10, what=f"redis-sentinel on {self.port}")

    def stop(self):
        stop_process(self.proc)


class SentinelGroup:
    """A primary, one replica and three sentinels (quorum 2) watching them with short timings."""

    def __init__(self, workdir, down_after_ms=500, failover_timeout_ms=2000):
        self.primary = RedisServer(os.path.join(str(workdir), "primary"))
        self.replica = None
        self.workdir = str(workdir)
        self.sentinels = []
        self.timings = (down_after_ms, failover_timeout_ms)

    @property
    def address(self):
        nodes = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"sentinel://{nodes}/{MASTER_NAME}"

    def start(self):
        self.primary.start()
        self.replica = RedisServer(os.path.join(self.workdir, "replica"),
                                   extra_args=("--replicaof", "127.0.0.1", str(self.primary.port))).start()
        wait_for(lambda: _info(self.replica.port).get("master_link_status") == "up", 15, what="the replica in sync")
        for i in range(3):
            sentinel = _Sentinel(os.path.join(self.workdir, f"sentinel{i}"), self.primary.port, *self.timings)
            self.sentinels.append(sentinel)
            sentinel.start()
        # every sentinel knows the replica and the two other sentinels: a failover can be agreed on
        wait_for(self._group_formed, 30, what="three sentinels that know each other and the replica")
        return self

    def _group_formed(self):
        for s in self.sentinels:
            replicas = _ask(s.port, "SENTINEL", "REPLICAS", MASTER_NAME) or []
            peers = _ask(s.port, "SENTINEL", "SENTINELS", MASTER_NAME) or []
            if len(replicas) != 1 or len(peers) != 2:
                return False
        return True

    def master_port(self):
        """The primary's port as the first answering sentinel reports it."""
        for s in self.sentinels:
            reply = _ask(s.port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
            if reply:
                return int(reply[1])
        return None

    def replica_caught_up(self):
        """True once the replica acknowledged everything the primary wrote."""
        primary = _info(self.primary.port)
        replica = _info(self.replica.port)
        return bool(primary and replica) and primary.get("master_repl_offset") == replica.get("slave_repl_offset")

    def stop(self):
        for s in self.sentinels:
            s.stop()
        for server in (self.replica, self.primary):
            if server is not None:
                server.stop()


def _info(port):
    client = _client(port)
    try:
        return client.info("replication")
    except redis.RedisError:
        return {}
    finally:
        client.close()


class RedisClusterGroup:
    """Three cluster-enabled primaries joined with `redis-cli --cluster create` (no replicas)."""

    def __init__(self, workdir, size=3):
        self.nodes = []
        for i in range(size):
            d = os.path.join(str(workdir), f"node{i}")
            self.nodes.append(RedisServer(d, extra_args=("--cluster-enabled", "yes", "--cluster-config-file",
                                                         os.path.join(d, "nodes.conf"),
                                                         "--cluster-port", str(free_port()),
                                                         "--cluster-node-timeout", "2000")))

    @property
    def address(self):
        return "cluster://" + ",".join(n.address for n in self.nodes)

    def start(self):
        for n in self.nodes:
            n.start()
        exe = shutil.which("redis-cli")
        assert exe, "redis-cli not installed"
        subprocess.run([exe, "--cluster", "create", *(n.address for n in self.nodes), "--cluster-yes"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30)
        wait_for(lambda: all("cluster_state:ok" in (_ask(n.port, "CLUSTER", "INFO") or "") for n in self.nodes),
                 30, what="the Redis Cluster in state ok")
        return self

    def stop(self):
        for n in self.nodes:
            n.stop()
