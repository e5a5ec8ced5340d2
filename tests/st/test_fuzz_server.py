"""12,000 malformed or mutated bodies against every endpoint of a live server: only error replies, no crash,
and a real iteration succeeds afterwards."""
import asyncio
import json
import random

import aiohttp
import numpy as np

from mindspore_federated import _core
from mindspore_federated.client import messages as m
from tests.st.test_rounds import ENTRY, start_job, update, wait_model
from tests.utils.cluster import start_server, write_yaml

RESPONSE_TABLES = {"startFLJob": "ResponseFLJob", "updateModel": "ResponseUpdateModel",
                   "getModel": "ResponseGetModel", "pullWeight": "ResponsePullWeight",
                   "pushWeight": "ResponsePushWeight", "pushMetrics": "ResponsePushMetrics"}
PLAIN_TEXTS = {b"The cluster is in safemode.", b"The server's training job is disabled or finished.",
               b"An inner error occurred"}


def seeds(fl_name):
    feats = {"w1": np.ones(6, np.float32), "b1": np.ones(3, np.float32)}
    return {
        "startFLJob": m.build_start_fl_job(fl_name, "fz", 1, 5),
        "updateModel": m.build_update_model(fl_name, "fz", 1, feats),
        "getModel": m.build_get_model(fl_name, 1),
        "pullWeight": m.build_pull_weight(1, ["w1"]),
        "pushWeight": m.build_push_weight(5, feats),
        "pushMetrics": m.build_push_metrics(float("nan"), 0.5),
    }


def mutate(rng, good):
    buf = bytearray(good)
    kind = rng.randrange(6)
    if kind == 0:
        for _ in range(rng.randint(1, 10)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
    elif kind == 1:
        del buf[rng.randint(1, len(buf) - 1):]
    elif kind == 2:
        pos = rng.randrange(0, max(1, len(buf) - 4)) & ~3
        buf[pos:pos + 4] = rng.choice([0xFFFFFFFF, 0x7FFFFFF0, 0x80000000, len(buf)]).to_bytes(4, "little")
    elif kind == 3:
        buf = bytearray(rng.randbytes(rng.randint(1, 512)))
    elif kind == 4:
        buf = buf + bytearray(rng.randbytes(rng.randint(1, 64)))
    else:
        buf[0:4] = rng.randrange(2**32).to_bytes(4, "little")
    return bytes(buf)


def classify(name, status, body):
    """'error' for an error reply, 'ok' for a (possibly valid) SUCCEED reply; raises on anything else."""
    if status == 500:
        assert json.loads(body)["code"] == "1"
        return "error"
    assert status == 200, (name, status, body[:200])
    if body in PLAIN_TEXTS:
        return "error"
    assert _core.verify(RESPONSE_TABLES[name], body), (name, body[:200])
    parsed = {"startFLJob": m.parse_start_fl_job, "updateModel": m.parse_update_model,
              "getModel": m.parse_get_model, "pullWeight": m.parse_pull_weight,
              "pushWeight": m.parse_push_weight, "pushMetrics": m.parse_push_metrics}[name](body)
    return "ok" if parsed.retcode == 200 else "error"


async def hammer(address, fl_name, count):
    rng = random.Random(7)
    bodies = seeds(fl_name)
    names = list(bodies)
    outcomes = {"ok": 0, "error": 0}
    connector = aiohttp.TCPConnector(limit=16)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one(i):
            name = names[i % len(names)]
            body = mutate(rng, bodies[name]) if i % 50 else b""
            async with session.post(f"http://{address}/{name}", data=body) as resp:
                outcomes[classify(name, resp.status, await resp.read())] += 1

        for start in range(0, count, 64):
            await asyncio.gather(*(one(i) for i in range(start, min(count, start + 64))))
    return outcomes


def test_malformed_bodies_only_get_error_replies(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name,
                           round={"start_fl_job_threshold": 50, "update_model_ratio": 0.5})
    proc, address = start_server(procs, yaml_path, tmp_path / "srv", entry=ENTRY)
    outcomes = asyncio.run(hammer(address, fl_name, 12000))
    assert proc.alive()
    assert outcomes["error"] >= 11000, outcomes
    assert "Traceback" not in proc.output()
    # the server still trains: fill iteration 1 with real devices (a few fuzzed fl_ids may have started)
    upload = {"w1": np.full(6, 2.0, np.float32), "b1": np.full(3, 2.0, np.float32)}
    started = [i for i in range(50) if start_job(address, fl_name, f"real{i}", 1, 2).retcode == 200]
    assert len(started) >= 25
    for i in started:
        update(address, fl_name, f"real{i}", 1, upload)
    assert wait_model(address, fl_name, 1).iteration == 2
    # ... and the next, clean iteration is exact
    for i in range(50):
        assert start_job(address, fl_name, f"clean{i}", 2, 2).retcode == 200
    for i in range(25):
        assert update(address, fl_name, f"clean{i}", 2, upload).retcode == 200
    g = wait_model(address, fl_name, 2)
    assert g.iteration == 3
    np.testing.assert_array_equal(g.features["w1"], np.ones(6, np.float32))
