"""The server registry in a real Redis: node id format, heartbeats with a 10 s TTL, dead entries dropped,
and the registration lock held during start-up (while a listed peer does not answer) and gone after."""
import asyncio
import re
import signal
import socket

import redis

from mindspore_federated.clock import time_string
from mindspore_federated.state.clients import make_client
from mindspore_federated.state.keys import HEARTBEAT_TTL_S, REG_LOCK_TTL_S, Keys
from mindspore_federated.state.redis_state import RedisClusterState
from tests.utils.cluster import write_yaml
from tests.utils.multi import ENTRY
from tests.utils.redis_server import free_port
from tests.utils.wait import wait_for

TIME = r"\d{4}-\d{2}-\d{2}-\d{2}:\d{2}:\d{2}\.\d{3}\.\d{3}"
NODE_ID = re.compile(rf"^(?P<tcp>127\.0\.0\.1:(?P<port>\d+))::{TIME}::(?P<rand>\d{{5}})$")


def run(coro, timeout=20.0):
    async def bounded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


def test_time_string_format():
    assert re.fullmatch(TIME, time_string())


def test_heartbeat_ttl_live_list_and_dead_entries(redis_server, fl_name):
    async def scenario():
        client = make_client(redis_server.address)
        try:
            state = RedisClusterState(client, fl_name, 60000)
            inst = await state.ensure_instance()
            keys = Keys(fl_name)
            await state.heartbeat(inst, "n1", "127.0.0.1:1001", "{}")
            await state.heartbeat(inst, "n2", "127.0.0.1:1002", "{}")
            for node in ("n1", "n2"):
                ttl = await client.ttl(keys.server_heartbeat(inst, node))
                assert 0 < ttl <= HEARTBEAT_TTL_S <= 10
            assert await state.live_servers(inst) == {"n1": "127.0.0.1:1001", "n2": "127.0.0.1:1002"}
            # a server whose heartbeat expired (here: deleted) is no longer live and leaves the hash
            await client.delete(keys.server_heartbeat(inst, "n2"))
            assert await state.live_servers(inst) == {"n1": "127.0.0.1:1001"}
            assert await client.hkeys(keys.servers(inst)) == [b"n1"]
            await state.deregister(inst, "n1")
            assert await state.live_servers(inst) == {}
            assert not await client.exists(keys.server_heartbeat(inst, "n1"))
        finally:
            await client.aclose(close_connection_pool=True)
    run(scenario())


def test_registration_lock_is_exclusive_and_owned(redis_server, fl_name):
    async def scenario():
        client = make_client(redis_server.address)
        try:
            state = RedisClusterState(client, fl_name, 60000)
            inst = await state.ensure_instance()
            key = Keys(fl_name).reg_lock(inst)
            assert await state.acquire_reg_lock(inst, "first", 1.0)
            assert await client.get(key) == b"first"
            assert 0 < await client.ttl(key) <= REG_LOCK_TTL_S
            assert not await state.acquire_reg_lock(inst, "second", 0.2)   # held: the deadline passes
            await state.release_reg_lock(inst, "second")                   # not the owner: no effect
            assert await client.get(key) == b"first"
            await state.release_reg_lock(inst, "first")
            assert not await client.exists(key)
            assert await state.acquire_reg_lock(inst, "second", 0.2)
            await state.release_reg_lock(inst, "second")
        finally:
            await client.aclose(close_connection_pool=True)
    run(scenario())


def test_start_up_holds_the_lock_until_registered(tmp_path, redis_server, fl_name, procs):
    """A listed server that accepts connections but never answers (a frozen peer) keeps the new server in
    its start-up ping loop, holding the registration lock; once that entry's heartbeat is gone the new
    server registers, releases the lock and serves."""
    keys = Keys(fl_name)
    r = redis.Redis(host="127.0.0.1", port=redis_server.port, decode_responses=True)
    frozen = socket.socket()
    try:
        frozen.bind(("127.0.0.1", 0))
        frozen.listen(16)  # the kernel completes handshakes; nobody ever reads or answers
        frozen_addr = f"127.0.0.1:{frozen.getsockname()[1]}"
        inst = "i_" + time_string()
        r.set(keys.instance_name, inst)
        r.hset(keys.servers(inst), "frozen", frozen_addr)
        r.set(keys.server_heartbeat(inst, "frozen"), frozen_addr, ex=HEARTBEAT_TTL_S)

        yaml_path = write_yaml(tmp_path, redis_server.address, fl_name)
        address = f"127.0.0.1:{free_port()}"
        proc = procs.python("server", *ENTRY, "--yaml_config", yaml_path, "--http_server_address", address,
                            "--checkpoint_dir", str(tmp_path / "ckpt"), cwd=str(tmp_path))
        lock_key = keys.reg_lock(inst)
        owner = wait_for(lambda: r.get(lock_key), 30, what="the registration lock taken at start-up")
        assert NODE_ID.match(owner), owner
        assert 0 < r.ttl(lock_key) <= REG_LOCK_TTL_S
        assert owner not in r.hgetall(keys.servers(inst))   # not registered while it holds the lock
        assert not any("READY" in line for line in proc.lines)

        r.delete(keys.server_heartbeat(inst, "frozen"))     # the frozen peer's heartbeat expires
        node_id = proc.wait_ready(timeout=30).split("node=", 1)[1].strip()
        assert node_id == owner
        assert not r.exists(lock_key)
        m = NODE_ID.match(node_id)
        assert proc.wait_ready().split("tcp=", 1)[1].split()[0] == m["tcp"]
        assert 10000 <= int(m["rand"]) <= 99999
        servers = r.hgetall(keys.servers(inst))
        assert servers == {node_id: m["tcp"]}                  # the frozen entry is gone
        assert 0 < r.ttl(keys.server_heartbeat(inst, node_id)) <= HEARTBEAT_TTL_S

        proc.send(signal.SIGTERM)
        assert proc.wait_exit(15) == 0
        assert node_id not in r.hgetall(keys.servers(inst))
        assert not r.exists(keys.server_heartbeat(inst, node_id))
    finally:
        frozen.close()
        r.close()
