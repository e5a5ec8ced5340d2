"""At least 10,000 malformed or mutated bodies against EVERY device endpoint of a live server, pipelined over
keep-alive connections. Each body's reply is predicted exactly before it is sent and every reply must be
that error reply: the 500 JSON for an empty body, the endpoint's schema error when the body does not verify,
and, for a body that does verify, the reply of the first validation rule it breaks. Mutations that happen to
produce a valid request are recognised by decoding them and are not sent (they would rightly succeed).
Afterwards the server is alive, logged no traceback, and a real iteration gives the exact FedAvg."""
import asyncio
import json
import math
import random
import struct
import time

import numpy as np

from mindspore_federated import _core, errors
from mindspore_federated.client import messages as m
from mindspore_federated.schema.fbs import (
    RequestFLJob,
    RequestGetModel,
    RequestPullWeight,
    RequestPushMetrics,
    RequestPushWeight,
    RequestUpdateModel,
)
from tests.utils.bodies import fl_job_body, update_body
from tests.utils.cluster import start_job, start_server, update, wait_model, write_yaml
from tests.utils.multi import ENTRY

PER_ENDPOINT = 10_000
EMPTY_EVERY = 97           # every 97th body of an endpoint is empty
CONNECTIONS = 8
PIPELINE = 48              # requests written at once on one connection before reading the replies
BATCH_DEADLINE_S = 30.0
SUCCEED, SUC_NOT_READY, OUT_OF_TIME, REQUEST_ERROR = 200, 201, 300, 400
CURRENT = 1                # the fuzzed server stays in iteration 1: no fuzzed request can be accepted
MODEL = {"w1": 6, "b1": 3, "frozen": 4}   # server_entry.small_feature_map(): name -> element count
REQUEST_TABLES = {name: tables[0] for name, tables in m.ROUND_TABLES.items()}
RESPONSE_TABLES = {name: tables[1] for name, tables in m.ROUND_TABLES.items()}
PARSERS = {"startFLJob": m.parse_start_fl_job, "updateModel": m.parse_update_model,
           "getModel": m.parse_get_model, "pullWeight": m.parse_pull_weight,
           "pushWeight": m.parse_push_weight, "pushMetrics": m.parse_push_metrics}
SCHEMA_REASONS = {"startFLJob": errors.FLJOB_SCHEMA, "updateModel": errors.UPDATE_SCHEMA,
                  "getModel": errors.GETMODEL_SCHEMA,
                  "pullWeight": "The schema of RequestPullWeight is invalid.",
                  "pushWeight": "The schema of RequestPushWeight is invalid.", "pushMetrics": None}
EMPTY_BODY_JSON = {"error_message": "Get post message failed", "code": "1"}


# ---- seeds: structurally valid requests that break one rule each ---------------------------------------

def seeds():
    nan, inf = float("nan"), float("inf")
    ones = {"w1": np.ones(6, np.float32), "b1": np.ones(3, np.float32)}
    return {
        "startFLJob": [fl_job_body(data_size=0), fl_job_body(data_size=70000), fl_job_body(data_size=-3),
                       fl_job_body(timestamp=None, data_size=5), fl_job_body(fl_id=None, data_size=5),
                       fl_job_body(fl_name=None, data_size=5), fl_job_body(fl_id="", data_size=5),
                       fl_job_body(data_size=0, ident=True, types=(0, 2))],
        "updateModel": [update_body(), update_body(loss=nan), update_body(accuracy=inf),
                        update_body(drop_name=True), update_body(drop_data=True), update_body(fl_id=None),
                        update_body(timestamp=None),
                        update_body(features={"w1": np.full(6, nan, np.float32)}),
                        update_body(features={}), update_body(ident=True)],
        "getModel": [m.build_get_model("fz", CURRENT), m.build_get_model("fz", CURRENT, file_identifier=True,
                                                                         download_compress_types=(2,))],
        "pullWeight": [m.build_pull_weight(5, ["w1"]), m.build_pull_weight(CURRENT, ["nope"]),
                       m.build_pull_weight(CURRENT, ["w1", "b1", "zz"], file_identifier=True)],
        "pushWeight": [m.build_push_weight(5, ones), m.build_push_weight(CURRENT, {}),
                       m.build_push_weight(0, ones, file_identifier=True)],
        "pushMetrics": [m.build_push_metrics(nan, 0.5), m.build_push_metrics(0.5, inf),
                        m.build_push_metrics(-inf, nan, file_identifier=True)],
    }


# ---- mutations -------------------------------------------------------------------------------------------

EXTREMES = (0, 1, 2, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFC, 0x7FFFFFF0, 65535, 65536)


def _vtable_entries(buf):
    """Byte positions of the root table's vtable field entries (empty if the header is unreadable)."""
    try:
        root = struct.unpack_from("<I", buf, 0)[0]
        vtable = root - struct.unpack_from("<i", buf, root)[0]
        size = struct.unpack_from("<H", buf, vtable)[0]
        return [vtable + 4 + 2 * i for i in range((size - 4) // 2)] if 4 <= size < len(buf) else []
    except struct.error:
        return []


def mutate(rng, good, others):
    buf = bytearray(good)
    kind = rng.randrange(13)
    if kind == 0:                                   # flip bytes
        for _ in range(rng.randint(1, 8)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
    elif kind == 1:                                 # truncate
        del buf[rng.randint(1, len(buf) - 1):]
    elif kind == 2:                                 # an offset or length becomes extreme
        pos = rng.randrange(0, len(buf) - 3) & ~3
        value = rng.choice(EXTREMES + (len(buf), len(buf) - pos, rng.randrange(2 ** 32)))
        buf[pos:pos + 4] = value.to_bytes(4, "little")
    elif kind == 3:                                 # noise
        buf = bytearray(rng.randbytes(rng.randint(1, 512)))
    elif kind == 4:                                 # trailing junk
        buf += rng.randbytes(rng.randint(1, 64))
    elif kind == 5:                                 # root offset
        buf[0:4] = rng.choice(EXTREMES + (rng.randrange(2 ** 32),)).to_bytes(4, "little")
    elif kind == 6:                                 # insertion shifts every later offset
        pos = rng.randrange(len(buf))
        buf[pos:pos] = rng.randbytes(rng.randint(1, 16))
    elif kind == 7:                                 # deletion
        pos = rng.randrange(len(buf))
        del buf[pos:pos + rng.randint(1, 16)]
    elif kind == 8:                                 # swap two 4-byte words
        a, c = (rng.randrange(0, len(buf) - 3) & ~3 for _ in range(2))
        buf[a:a + 4], buf[c:c + 4] = buf[c:c + 4], buf[a:a + 4]
    elif kind == 9:                                 # another endpoint's request
        buf = bytearray(rng.choice(others))
    elif kind == 10:                                # a scalar becomes a boundary value
        pos = rng.randrange(0, len(buf) - 3) & ~3
        buf[pos:pos + 4] = struct.pack("<i", rng.choice((0, 1, -1, 2, 65535, 65536, -2 ** 31, 2 ** 31 - 1)))
    elif kind == 11:                                # a field disappears or points elsewhere
        entries = _vtable_entries(buf)
        if entries:
            pos = rng.choice(entries)
            buf[pos:pos + 2] = rng.choice((0, 0, 4, 0xFFFF, rng.randrange(65536))).to_bytes(2, "little")
        else:
            buf[rng.randrange(len(buf))] ^= 0xFF
    else:                                           # a float becomes NaN / Inf / a normal number
        pos = rng.randrange(0, len(buf) - 3) & ~3
        buf[pos:pos + 4] = struct.pack("<f", rng.choice((float("nan"), float("inf"), -float("inf"), 0.25)))
    if bytes(buf) == b"":
        buf = bytearray(b"\x00")
    return bytes(buf)


# ---- the oracle: the exact reply a body must get from a server in iteration 1 with no device started ------

def _s(value):
    return value.decode("utf-8", "replace") if value is not None else None


def _fb(retcode, reason):
    return ("fb", retcode, reason)


def expected_reply(name, body):
    """('json500',) / ('text', str) / ('fb', retcode, reason); None when the body is a valid request."""
    if not body:
        return ("json500",)
    if not _core.verify(REQUEST_TABLES[name], body):
        return _fb(REQUEST_ERROR, SCHEMA_REASONS[name])
    return VERIFIED_RULES[name](body)


def _fl_job(body):
    req = RequestFLJob.RequestFLJob.GetRootAs(body, 0)
    if not _s(req.FlId()) or req.FlName() is None or req.Timestamp() is None:
        return ("text", errors.FLJOB_VERIFY)
    if req.DataSize() < 1:
        return _fb(OUT_OF_TIME, errors.FLJOB_DATA_SMALL)
    if req.DataSize() > 65535:
        return _fb(OUT_OF_TIME, errors.FLJOB_DATA_LARGE)
    return None  # a valid startFLJob: it would be accepted


def _update(body):
    req = RequestUpdateModel.RequestUpdateModel.GetRootAs(body, 0)
    if req.UploadCompressType() != 0:  # a compressed upload: its compressed entries, feature_map ignored
        entries = [req.CompressFeatureMap(i) for i in range(req.CompressFeatureMapLength())]
        map_ok = not req.CompressFeatureMapIsNone() and \
            not any(e.WeightFullname() is None or e.CompressDataIsNone() for e in entries)
    else:
        entries = [req.FeatureMap(i) for i in range(req.FeatureMapLength())]
        map_ok = not req.FeatureMapIsNone() and not any(e.WeightFullname() is None or e.DataIsNone()
                                                        for e in entries)
    if not _s(req.FlId()) or req.Timestamp() is None or not map_ok or \
            not math.isfinite(req.UploadLoss()) or \
            not math.isfinite(req.UploadAccuracy()):
        return _fb(REQUEST_ERROR, errors.UPDATE_VERIFY)
    # no device has started iteration 1, so no fl_id has device metadata
    return _fb(OUT_OF_TIME, errors.UPDATE_NO_META.format(fl_id=_s(req.FlId())))


def _get_model(body):
    req = RequestGetModel.RequestGetModel.GetRootAs(body, 0)
    if req.Iteration() == CURRENT:
        return _fb(SUC_NOT_READY, errors.GETMODEL_NOT_READY.format(iteration=CURRENT))
    return None  # any other iteration is served the newest model


def _pull_weight(body):
    req = RequestPullWeight.RequestPullWeight.GetRootAs(body, 0)
    if req.Iteration() != CURRENT:
        return _fb(SUC_NOT_READY, errors.PULL_ITERATION.format(iteration=req.Iteration(), current=CURRENT))
    unknown = [n for n in (_s(req.WeightNames(i)) for i in range(req.WeightNamesLength())) if n not in MODEL]
    return _fb(REQUEST_ERROR, errors.PULL_UNKNOWN.format(name=unknown[0])) if unknown else None


def _push_weight(body):
    req = RequestPushWeight.RequestPushWeight.GetRootAs(body, 0)
    if req.Iteration() != CURRENT:
        return _fb(SUC_NOT_READY, errors.PUSH_ITERATION.format(iteration=req.Iteration(), current=CURRENT))
    if req.FeatureMapLength() == 0:
        return _fb(SUC_NOT_READY, errors.PUSH_EMPTY)
    return None  # a push of the current iteration replaces its model


def _push_metrics(body):
    req = RequestPushMetrics.RequestPushMetrics.GetRootAs(body, 0)
    if math.isfinite(req.Loss()) and math.isfinite(req.Accuracy()):
        return None
    return _fb(REQUEST_ERROR, None)


VERIFIED_RULES = {"startFLJob": _fl_job, "updateModel": _update, "getModel": _get_model,
                  "pullWeight": _pull_weight, "pushWeight": _push_weight, "pushMetrics": _push_metrics}


def generate(rng):
    """PER_ENDPOINT (name, body, expected) per endpoint, interleaved; and the valid mutants skipped."""
    pool = seeds()
    everything = [body for bodies in pool.values() for body in bodies]
    per_name = {name: [] for name in pool}
    skipped = {name: 0 for name in pool}
    for name, bodies in pool.items():
        out = per_name[name]
        for body in bodies:  # the unmutated seeds themselves are invalid requests
            out.append((name, body, expected_reply(name, body)))
            assert out[-1][2] is not None, (name, body)
        while len(out) < PER_ENDPOINT:
            if len(out) % EMPTY_EVERY == 0:
                out.append((name, b"", ("json500",)))
                continue
            body = mutate(rng, rng.choice(bodies), everything)
            expect = expected_reply(name, body)
            if expect is None:
                skipped[name] += 1
                continue
            out.append((name, body, expect))
    mixed = [item for group in zip(*per_name.values()) for item in group]
    rng.shuffle(mixed)
    return mixed, skipped


# ---- pipelined HTTP/1.1 over keep-alive connections -------------------------------------------------------

async def _read_reply(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(b":")
        headers[key.strip().lower()] = value.strip()
    if b"content-length" in headers:
        return status, await reader.readexactly(int(headers[b"content-length"]))
    assert headers.get(b"transfer-encoding", b"").lower() == b"chunked", headers
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return status, bytes(body)
        body += chunk[:-2]


def _request(host, name, body):
    return (f"POST /{name} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def _connection(address, items, check):
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 10)
    try:
        for start in range(0, len(items), PIPELINE):
            batch = items[start:start + PIPELINE]
            writer.write(b"".join(_request(address, name, body) for name, body, _ in batch))
            for name, body, expect in batch:
                status, reply = await asyncio.wait_for(_read_reply(reader), BATCH_DEADLINE_S)
                check(name, body, expect, status, reply)
            await asyncio.wait_for(writer.drain(), BATCH_DEADLINE_S)
    finally:
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 5)


def check_reply(seen):
    def check(name, body, expect, status, reply):
        context = (name, body[:64], expect, status, reply[:200])
        if expect[0] == "json500":
            assert status == 500 and json.loads(reply) == EMPTY_BODY_JSON, context
        elif expect[0] == "text":
            assert status == 200 and reply == expect[1].encode(), context
        else:
            assert status == 200 and _core.verify(RESPONSE_TABLES[name], reply), context
            parsed = PARSERS[name](reply)
            assert parsed.retcode == expect[1] != SUCCEED, context
            if expect[2] is not None:
                assert parsed.reason == expect[2], context
            if hasattr(parsed, "iteration"):
                assert parsed.iteration == CURRENT, context
        seen[name] += 1
    return check


async def hammer(address, items):
    seen = {name: 0 for name in REQUEST_TABLES}
    check = check_reply(seen)
    await asyncio.gather(*(_connection(address, items[i::CONNECTIONS], check) for i in range(CONNECTIONS)))
    return seen


def test_every_endpoint_gets_only_exact_error_replies(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name,
                           round={"start_fl_job_threshold": 4, "update_model_ratio": 1.0})
    proc, address = start_server(procs, yaml_path, tmp_path / "srv", entry=ENTRY)
    items, skipped = generate(random.Random(20240607))
    counts = {name: sum(1 for n, _, _ in items if n == name) for name in REQUEST_TABLES}
    assert all(c >= PER_ENDPOINT for c in counts.values()), counts
    t0, cpu0 = time.monotonic(), time.process_time()
    seen = asyncio.run(hammer(address, items))
    elapsed, client_cpu = time.monotonic() - t0, time.process_time() - cpu0
    assert seen == counts, (seen, counts)
    print(f"fuzz: {len(items)} bodies in {elapsed:.1f} s ({len(items) / elapsed:.0f}/s, client CPU "
          f"{client_cpu:.1f} s); valid mutants not sent: {skipped}")
    assert proc.alive()
    assert "Traceback" not in proc.output() and "[ERROR]" not in proc.output()
    # the server still trains, and nothing the fuzzer sent was counted: iteration 1 is clean and exact
    sizes = [2, 3, 5, 7]
    rng = np.random.default_rng(1)
    uploads = [{"w1": rng.standard_normal(6).astype(np.float32),
                "b1": rng.standard_normal(3).astype(np.float32)} for _ in sizes]
    for i, n in enumerate(sizes):
        r = start_job(address, fl_name, f"real{i}", CURRENT, n)
        assert (r.retcode, r.iteration) == (SUCCEED, CURRENT)
    for i in range(len(sizes)):
        assert update(address, fl_name, f"real{i}", CURRENT, uploads[i]).retcode == SUCCEED
    g = wait_model(address, fl_name, CURRENT)
    assert g.iteration == CURRENT + 1
    for name in ("w1", "b1"):
        expect = sum(u[name] for u in uploads) / np.float32(sum(sizes))
        np.testing.assert_allclose(g.features[name], expect, rtol=1e-6)
    np.testing.assert_array_equal(g.features["frozen"], np.full(4, 7.0, np.float32))
