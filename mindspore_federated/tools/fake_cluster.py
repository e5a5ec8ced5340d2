"""Simulated servers/workers written into Redis through `Keys` (for scheduler tests and operator drills)."""
import json
import random

from mindspore_federated.clock import time_string
from mindspore_federated.state.keys import HEARTBEAT_TTL_S, WEEK_S, InstanceState, Keys

DEFAULT_HYPER_PARAMS = {
    "global_iteration_time_window": 3600000, "start_fl_job_threshold": 1, "start_fl_job_time_window": 300000,
    "update_model_ratio": 1.0, "update_model_time_window": 300000, "client_epoch_num": 25,
    "client_batch_size": 32, "client_learning_rate": 0.001, "fl_iteration_num": 20,
    "encrypt_type": "NOT_ENCRYPT", "enable_ssl": False, "pki_verify": False,
}


class FakeCluster:
    """Registers fake servers the way real ones do (server:Hash + heartbeat + server:info), synchronously."""

    def __init__(self, client, fl_name):
        self.r = client  # a redis.Redis with decode_responses=True
        self.keys = Keys(fl_name)
        self._next_port = 40000

    @property
    def instance(self) -> str:
        return self.r.get(self.keys.instance_name)

    def bootstrap(self, state=InstanceState.RUNNING, iteration=1, hyper_params=None, instance=None) -> str:
        """What the first server does: instance name, hyperParams, status hash. Returns the instance."""
        inst = instance or f"i_{time_string()}"
        ttl = WEEK_S + 3600
        self.r.set(self.keys.instance_name, inst, ex=ttl)
        self.r.set(self.keys.hyper_params(inst), json.dumps(hyper_params or DEFAULT_HYPER_PARAMS), ex=ttl)
        self.r.hset(self.keys.status(inst), mapping={"iterationNum": iteration, "runningState": int(state),
                                                     "lastIterationSuccess": 1, "lastIterationResult": ""})
        self.r.expire(self.keys.status(inst), ttl)
        return inst

    def set_state(self, state):
        self.r.hset(self.keys.status(self.instance), "runningState", int(state))

    def add_server(self, rank=None, heartbeat_ttl=HEARTBEAT_TTL_S, pid=0) -> str:
        """A live server (entry, heartbeat with TTL, info JSON); returns its node id."""
        inst = self.instance
        self._next_port += 1
        tcp = f"127.0.0.1:{self._next_port}"
        node_id = f"{tcp}::{time_string()}::{random.randint(10000, 99999)}"
        rank = len(self.r.hkeys(self.keys.servers(inst))) if rank is None else rank
        info = {"http": f"127.0.0.1:{self._next_port + 20000}", "tcp": tcp, "pid": pid, "host": "localhost",
                "rank": rank}
        self.r.hset(self.keys.servers(inst), node_id, tcp)
        self.r.hset(self.keys.server_info(inst), node_id, json.dumps(info))
        self.r.set(self.keys.server_heartbeat(inst, node_id), tcp, ex=heartbeat_ttl)
        return node_id

    def kill_server(self, node_id):
        """A crashed server: its heartbeat is gone but its entry is still listed."""
        self.r.delete(self.keys.server_heartbeat(self.instance, node_id))

    def remove_server(self, node_id):
        """A gracefully stopped server: entry, info and heartbeat removed, scale-in mark dropped."""
        inst = self.instance
        self.r.hdel(self.keys.servers(inst), node_id)
        self.r.hdel(self.keys.server_info(inst), node_id)
        self.r.delete(self.keys.server_heartbeat(inst, node_id))
        self.r.srem(self.keys.scale_in, node_id)

    def add_worker(self, alive=True) -> str:
        inst = self.instance
        fl_id = f"worker_fl_{time_string()}::{random.randint(10000, 99999)}"
        self.r.hset(self.keys.workers(inst), fl_id, fl_id)
        if alive:
            self.r.set(self.keys.worker_heartbeat(inst, fl_id), fl_id, ex=HEARTBEAT_TTL_S)
        return fl_id
