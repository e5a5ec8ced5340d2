"""The server never holds a device's plain update under PW_ENCRYPT: one server in this process (its engine,
device API and HTTP engine on a real redis-server), our SDK as the devices. What reaches the accumulator
differs from every device's w·n, no w·n is written to Redis, and the model is still their FedAvg."""
import asyncio

import numpy as np
import redis

from mindspore_federated.server.device_api import DeviceApi
from mindspore_federated.server.http_fast import FastDeviceServer
from mindspore_federated.server.node import ServerNode
from tests.utils.engine import RecordingHooks, engine_config, peers_for, redis_state, small_model, small_spec
from tests.utils.redis_server import free_port
from tests.utils.secagg import fedavg, pw_section, run_devices, trained

SIZES = [2, 3, 5]


def _raw_values(client, key):
    kind = client.type(key)
    if kind == b"hash":
        return b"".join(k + v for k, v in client.hgetall(key).items())
    if kind == b"set":
        return b"".join(client.smembers(key))
    if kind == b"string":
        return client.get(key)
    return b""


def test_the_accumulator_and_redis_only_see_masked_updates(redis_server, fl_name):
    seen = []

    async def main():
        spec = small_spec()
        cfg = engine_config(fl_name, redis_server.address, encrypt=pw_section(t=2),
                            round={"start_fl_job_threshold": len(SIZES), "update_model_ratio": 1.0})
        async with redis_state(redis_server.address, fl_name) as state, peers_for(spec) as peers:
            node = ServerNode(cfg, state, spec, small_model(0.5), "127.0.0.1:1", peers, RecordingHooks())
            await node.join(cfg.hyper_params())
            await node.register({"role": "SERVER"})
            add = node.ctx.acc.add

            async def recording_add(arrays, data_size):
                seen.append(({n: np.array(a) for n, a in arrays.items()}, data_size))
                await add(arrays, data_size)
            node.ctx.acc.add = recording_add
            for loop in (node.sync_loop(), node.event_loop()):
                node.spawn(loop)
            http = FastDeviceServer(DeviceApi(node, "", 1 << 20, 4))
            port = free_port()
            await http.start("127.0.0.1", port)
            try:
                return await run_devices([f"http://127.0.0.1:{port}"], fl_name, SIZES, timeout=60)
            finally:
                await http.stop()
                await node.close()

    outcomes = asyncio.run(asyncio.wait_for(main(), 90))
    start = {name: w for name, w in small_model(0.5).weights.items()}
    plains = [{n: SIZES[i] * trained(i)(start, None)[n] for n in start} for i in range(len(SIZES))]
    assert len(seen) == len(SIZES)
    for arrays, _ in seen:
        for plain in plains:
            assert not all(np.allclose(arrays[n], plain[n], atol=1e-3) for n in plain)
    expected = fedavg(start, range(len(SIZES)), SIZES)
    for name in start:
        np.testing.assert_allclose(outcomes[0].model[name], expected[name], rtol=1e-4, atol=1e-4)
    client = redis.Redis(host="127.0.0.1", port=redis_server.port)
    try:
        stored = b"".join(_raw_values(client, key) for key in client.scan_iter(match=f"ms_fl:{{{fl_name}}}:*"))
        assert b"exchangeKeys" in stored or len(stored) > 1000   # the cipher rounds' data is there
    finally:
        client.close()
    for plain in plains:
        for w in plain.values():
            assert np.asarray(w, np.float32).tobytes() not in stored
