"""Multi-server helpers for system tests: the small-model server entry, an operator's view of Redis,
metrics lines, and training an iteration over several servers with its exact FedAvg result."""
import json
import os

import numpy as np
import redis

from mindspore_federated.state.keys import Keys
from tests.utils.cluster import SUCCEED, start_job, start_server, update, wait_model
from tests.utils.wait import wait_for

# a server with a small model (w1 2x3, b1 3, and "frozen" 4 with require_aggr=False) and printing callbacks
ENTRY = (os.path.join(os.path.dirname(os.path.abspath(__file__)), "server_entry.py"),)


class Registry:
    """Reads a cluster's Redis state (status hash, server registry) the way an operator would."""

    def __init__(self, redis_server, fl_name):
        self.keys = Keys(fl_name)
        self.r = redis.Redis(host="127.0.0.1", port=redis_server.port, decode_responses=True)

    def close(self):
        self.r.close()

    @property
    def inst(self):
        return self.r.get(self.keys.instance_name)

    def status(self):
        return self.r.hgetall(self.keys.status(self.inst))

    def servers(self):
        return self.r.hgetall(self.keys.servers(self.inst))

    def heartbeat_ttl(self, node_id):
        return self.r.ttl(self.keys.server_heartbeat(self.inst, node_id))


def node_id_of(proc):
    """The node id a server printed on its READY line."""
    return proc.wait_ready().split("node=", 1)[1].strip()


def metrics_lines(workdirs):
    """Every metrics.json line written by the servers of these working directories."""
    out = []
    for workdir in workdirs:
        path = workdir / "metrics.json"
        if path.exists():
            out += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return out


def iteration_results(workdirs, iterations, timeout=10.0):
    """{iteration: iterationResult} once every iteration in `iterations` has its metrics line (exactly one
    line per iteration across the cluster)."""
    def ready():
        lines = metrics_lines(workdirs)
        got = {x["currentIteration"]: x["iterationResult"] for x in lines}
        return (got, lines) if set(iterations) <= set(got) else None
    got, lines = wait_for(ready, timeout, what=f"metrics lines of iterations {sorted(iterations)}")
    assert len(lines) == len(got), f"an iteration has more than one metrics line: {lines}"
    return got


def start_servers(procs, tmp_path, yaml_path, count, first=0):
    return [start_server(procs, yaml_path, tmp_path / f"srv{i}", name=f"server{i}", entry=ENTRY)
            for i in range(first, first + count)]


def models_everywhere(addresses, fl_name, iteration, timeout=10.0):
    """Waits until every server serves the model of `iteration`; returns them."""
    return [wait_model(address, fl_name, iteration, timeout) for address in addresses]


def run_iteration(addresses, fl_name, iteration, devices, rng, spread=True):
    """startFLJob and updateModel for each device on random servers; returns the exact FedAvg result."""
    uploads, sizes = [], []
    for d in range(devices):
        n = int(rng.integers(1, 20))
        r = start_job(rng.choice(addresses) if spread else addresses[0], fl_name, f"i{iteration}d{d}", iteration, n)
        assert r.retcode == SUCCEED, r.reason
        uploads.append({"w1": rng.standard_normal(6).astype(np.float32) * n,
                        "b1": rng.standard_normal(3).astype(np.float32) * n})
        sizes.append(n)
    for d in range(devices):
        target = rng.choice(addresses) if spread else addresses[0]
        r = update(target, fl_name, f"i{iteration}d{d}", iteration, uploads[d])
        assert r.retcode == SUCCEED, r.reason
    return {name: sum(u[name].astype(np.float64) for u in uploads) / sum(sizes) for name in ("w1", "b1")}
