"""Compression on real servers (spec §6): QUANT downloads negotiated per request and cached, DIFF_SPARSE_QUANT
uploads decoded into the FedAvg accumulator with 1 and 2 servers (aggregate exact against the decode rule, a
mix of compressed and plain devices), and mutated compressed bodies answered with error replies only."""
import os
import random

import numpy as np
import pytest

from mindspore_federated import errors
from mindspore_federated.client import messages as m
from mindspore_federated.compression import diff_sparse_quant_encode, quant_encode
from tests.utils.cluster import post, start_job, start_server, update, wait_model, write_yaml
from tests.utils.compression import numpy_decode, rule_mask
from tests.utils.multi import ENTRY

SUCCEED, OUT_OF_TIME, REQUEST_ERROR = 200, 300, 400
DSQ, QUANT = m.CompressType.DIFF_SPARSE_QUANT, m.CompressType.QUANT
RATE = float(np.float32(0.4))
AGGREGATED = ("w1", "b1")
INITIAL = {"w1": np.arange(6, dtype=np.float32), "b1": np.zeros(3, np.float32),
           "frozen": np.full(4, 7.0, np.float32)}
# FL_COMPRESS_FUZZ=10000 for the long run; the suite sends a few hundred
FUZZ_COUNT = int(os.environ.get("FL_COMPRESS_FUZZ", "300"))
COMPRESSION = {"upload_compress_type": "DIFF_SPARSE_QUANT", "upload_sparse_rate": 0.4,
               "download_compress_type": "QUANT"}


def compressed_body(fl_name, fl_id, iteration, uploads, base, data_size, rate=RATE):
    names, coded = diff_sparse_quant_encode(uploads, base, data_size, iteration, rate)
    body = m.build_update_model(fl_name, fl_id, iteration, {}, compressed_features=coded,
                                upload_compress_type=DSQ, upload_sparse_rate=rate, name_vec=names)
    return body, names, coded


def post_update(address, body):
    status, reply = post(address, "updateModel", body)
    assert status == 200
    return m.parse_update_model(reply)


def start(address, fl_name, fl_id, iteration, data_size, quant=False):
    status, body = post(address, "startFLJob", m.build_start_fl_job(
        fl_name, fl_id, iteration, data_size, download_compress_types=(QUANT,) if quant else ()))
    assert status == 200
    r = m.parse_start_fl_job(body)
    assert r.retcode == SUCCEED, r.reason
    return r, body


class Expected:
    """The accumulators of each server, built from the decode rule in numpy float32 in arrival order."""

    def __init__(self, servers):
        self.acc = [{n: np.zeros(INITIAL[n].size, np.float32) for n in AGGREGATED} for _ in range(servers)]
        self.total = 0

    def plain(self, server, upload, n):
        for name in AGGREGATED:
            self.acc[server][name] = self.acc[server][name] + upload[name]
        self.total += n

    def compressed(self, server, names, coded, latest, iteration, n):
        mask = np.array(rule_mask(iteration, RATE, sum(latest[k].size for k in names)), np.uint8)
        offset = 0
        for name in names:
            size = latest[name].size
            q = coded[name]
            decoded = numpy_decode(mask[offset:offset + size], q.data, q.min_val, q.max_val, latest[name], n)
            if name in AGGREGATED:
                self.acc[server][name] = self.acc[server][name] + decoded
            offset += size
        self.total += n

    def model(self):
        out = {}
        for name in AGGREGATED:
            summed = self.acc[0][name]
            for other in self.acc[1:]:
                summed = summed + other[name]
            out[name] = (summed.astype(np.float64) / self.total).astype(np.float32)
        return out


def train_iteration(addresses, fl_name, iteration, latest, rng, expected):
    """4 devices (2 compressed, 2 plain), spread over the servers in turn; updates sent one by one."""
    devices = []
    for d in range(4):
        server = d % len(addresses)
        n = int(rng.integers(1, 30))
        r, _ = start(addresses[server], fl_name, f"it{iteration}d{d}", iteration, n)
        assert (r.upload_compress_type, r.upload_sparse_rate) == (DSQ, RATE)
        trained = {k: v + rng.normal(0, 0.05, v.size).astype(np.float32) for k, v in latest.items()}
        devices.append((server, n, {k: v * np.float32(n) for k, v in trained.items()}))
    for d, (server, n, uploads) in enumerate(devices):
        fl_id = f"it{iteration}d{d}"
        if d % 2 == 0:
            body, names, coded = compressed_body(fl_name, fl_id, iteration, uploads, latest, n)
            expected.compressed(server, names, coded, latest, iteration, n)
        else:
            body = m.build_update_model(fl_name, fl_id, iteration, uploads)
            expected.plain(server, uploads, n)
        r = post_update(addresses[server], body)
        assert (r.retcode, r.reason) == (SUCCEED, errors.UPDATE_SUCCESS)


def check_quant_negotiation(address, fl_name, iteration, latest):
    """QUANT only for a device that lists it; one cached reply per iteration."""
    plain, _ = start(address, fl_name, f"q{iteration}plain", iteration, 1)
    quant, body = start(address, fl_name, f"q{iteration}quant", iteration, 1, quant=True)
    _, again = start(address, fl_name, f"q{iteration}quant2", iteration, 1, quant=True)
    assert body == again
    assert plain.download_compress_type == m.CompressType.NO_COMPRESS and not plain.compressed_features
    for name, value in latest.items():
        np.testing.assert_array_equal(plain.features[name], value)
    assert quant.download_compress_type == QUANT and not quant.features
    for name, value in latest.items():
        want = quant_encode(value)
        got = quant.compressed_features[name]
        assert got.data.tobytes() == want.data.tobytes() and (got.min_val, got.max_val) == (want.min_val,
                                                                                             want.max_val)
    return [f"q{iteration}plain", f"q{iteration}quant", f"q{iteration}quant2"]


def run_cluster(addresses, fl_name, iterations):
    rng = np.random.default_rng(len(addresses))
    latest = dict(INITIAL)
    for it in range(1, iterations + 1):
        expected = Expected(len(addresses))
        train_iteration(addresses, fl_name, it, latest, rng, expected)
        g = wait_model(addresses[0], fl_name, it)
        want = expected.model()
        for name in AGGREGATED:
            assert g.features[name].tobytes() == want[name].tobytes(), (it, name, g.features[name], want[name])
        np.testing.assert_array_equal(g.features["frozen"], INITIAL["frozen"])
        for address in addresses[1:]:
            other = wait_model(address, fl_name, it)
            assert all(other.features[k].tobytes() == g.features[k].tobytes() for k in INITIAL)
        latest = {k: np.array(v) for k, v in g.features.items()}


@pytest.mark.parametrize("servers", [1, 2])
def test_compressed_and_plain_devices_aggregate_exactly(tmp_path, redis_server, fl_name, procs, servers):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, fl_iteration_num=5,
                           round={"start_fl_job_threshold": 4}, compression=COMPRESSION)
    addresses = [start_server(procs, yaml_path, tmp_path / f"srv{i}", name=f"server{i}", entry=ENTRY)[1]
                 for i in range(servers)]
    run_cluster(addresses, fl_name, 2)


def test_quant_download_negotiated_both_ways(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 8},
                           compression={"download_compress_type": "QUANT"})
    _, address = start_server(procs, yaml_path, tmp_path / "srv", entry=ENTRY)
    check_quant_negotiation(address, fl_name, 1, INITIAL)
    status, body = post(address, "getModel", m.build_get_model(fl_name, 0, download_compress_types=(QUANT,)))
    g = m.parse_get_model(body)
    assert g.download_compress_type == QUANT and set(g.compressed_features) == set(INITIAL)
    r, _ = start(address, fl_name, "plain-up", 1, 3)
    assert (r.upload_compress_type, r.upload_sparse_rate) == (m.CompressType.NO_COMPRESS, RATE)
    # this cluster takes plain uploads only: a compressed one is refused with a clear reason
    uploads = {k: v * np.float32(3) for k, v in INITIAL.items()}
    body, _, _ = compressed_body(fl_name, "plain-up", 1, uploads, INITIAL, 3)
    r = post_update(address, body)
    assert r.retcode == REQUEST_ERROR and errors.COMPRESS_NOT_CONFIGURED in r.reason
    # a server without QUANT configured answers plain whatever the device lists
    other = write_yaml(tmp_path / "b", redis_server.address, fl_name + "b")
    _, plain_address = start_server(procs, other, tmp_path / "srvb", name="serverb", entry=ENTRY)
    r, _ = start(plain_address, fl_name + "b", "x", 1, 1, quant=True)
    assert r.download_compress_type == m.CompressType.NO_COMPRESS and not r.compressed_features


# ---- malformed compressed uploads ---------------------------------------------------------------------------

def _good_parts(rng):
    uploads = {k: (v + rng.normal(0, 0.1, v.size).astype(np.float32)) * np.float32(4) for k, v in INITIAL.items()}
    names, coded = diff_sparse_quant_encode(uploads, INITIAL, 4, 1, RATE)
    return names, coded


def _mutant(rng, names, coded):
    """A compressed upload that breaks one rule, randomly chosen and sized: (kind, name_vec, entries, rate,
    upload_compress_type); entries keep the order of the dict."""
    names, entries = list(names), dict(coded)
    kind = rng.choice(["rate", "codes", "minmax", "nan", "inf", "order", "unknown", "missing", "count", "type",
                       "empty", "range"])
    rate, ctype = RATE, DSQ
    pick = rng.choice([n for n in names if entries[n].data.size])  # min/max are only read for kept codes
    q = entries[pick]
    if kind == "rate":
        rate = float(np.float32(RATE + rng.choice([-1, 1]) * rng.choice([1e-7, 0.01, 0.3])))
    elif kind == "codes":
        extra = rng.randint(1, 5)
        shorter = q.data.size >= extra and rng.random() < 0.5
        data = q.data[:-extra] if shorter else np.concatenate([q.data, np.zeros(extra, np.int8)])
        entries[pick] = type(q)(data, q.min_val, q.max_val)
    elif kind == "minmax":
        entries[pick] = type(q)(q.data, q.max_val + rng.choice([1e-3, 1.0, 1e6]), q.min_val)
    elif kind in ("nan", "inf"):
        bad = float("nan") if kind == "nan" else rng.choice([float("inf"), float("-inf")])
        entries[pick] = type(q)(q.data, bad, q.max_val) if rng.random() < 0.5 else type(q)(q.data, q.min_val, bad)
    elif kind == "range":  # decoded values beyond float32
        entries[pick] = type(q)(q.data, -3e38, 3e38)
    elif kind == "order":  # name_vec reordered, the entries not
        names[0], names[1] = names[1], names[0]
    elif kind == "unknown":  # a name that is not in the model, in name_vec and its entry alike
        gone = names[-1]
        names[-1] = f"nope{rng.randint(0, 9)}"
        entries = {(names[-1] if n == gone else n): v for n, v in entries.items()}
    elif kind == "missing":  # an aggregated weight left out of both
        names.remove("w1")
        del entries["w1"]
    elif kind == "count":
        names.append(rng.choice(names))
    elif kind == "type":
        ctype = rng.choice([2, 5, 127, -1])
    elif kind == "empty":
        names = []
    return kind, names, entries, rate, ctype


def _mutant_body(fl_name, fl_id, names, entries, rate, ctype):
    return m.build_update_model(fl_name, fl_id, 1, {}, compressed_features=entries,
                                upload_compress_type=ctype, upload_sparse_rate=rate, name_vec=names)


def test_mutated_compressed_uploads_get_error_replies_only(tmp_path, redis_server, fl_name, procs):
    window = 1_800_000  # the long run (FL_COMPRESS_FUZZ=10000) stays inside iteration 1
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, compression=COMPRESSION,
                           round={"start_fl_job_threshold": 2, "start_fl_job_time_window": window,
                                  "update_model_time_window": window, "global_iteration_time_window": window})
    proc, address = start_server(procs, yaml_path, tmp_path / "srv", entry=ENTRY)
    assert start_job(address, fl_name, "fuzzed", 1, 4).retcode == SUCCEED
    names, coded = _good_parts(np.random.default_rng(3))
    good = _mutant_body(fl_name, "fuzzed", names, coded, RATE, DSQ)
    rng = random.Random(7)
    kinds = {}
    for _ in range(FUZZ_COUNT):
        kind, n2, c2, rate, ctype = _mutant(rng, names, coded)
        r = post_update(address, _mutant_body(fl_name, "fuzzed", n2, c2, rate, ctype))
        assert r.retcode == REQUEST_ERROR, (kind, r.retcode, r.reason)
        assert r.reason.startswith("Verify compressed feature map failed for fl id fuzzed"), (kind, r.reason)
        kinds[kind] = kinds.get(kind, 0) + 1
    # a wrong iteration is answered as for a plain upload (and no keep-mask is built for it)
    for wrong in (0, 7, -2**31, 2**31 - 1):
        body = m.build_update_model(fl_name, "fuzzed", wrong, {}, compressed_features=coded,
                                    upload_compress_type=DSQ, upload_sparse_rate=RATE, name_vec=names)
        r = post_update(address, body)
        assert r.retcode == OUT_OF_TIME and r.reason.startswith(f"UpdateModel iteration number is invalid:{wrong},")
    # raw byte flips of a valid compressed body: always a well-formed reply, never a success
    flips = 0
    for _ in range(FUZZ_COUNT):
        body = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            body[rng.randrange(len(body))] = rng.randrange(256)
        body = bytes(body).replace(b"fuzzed", b"fuzzeX")  # never the started device: nothing can count
        status, reply = post(address, "updateModel", body)
        assert status == 200
        r = m.parse_update_model(reply)
        assert r.retcode in (REQUEST_ERROR, OUT_OF_TIME), (r.retcode, r.reason)
        flips += 1
    assert proc.alive() and "Traceback" not in proc.output()
    print(f"compressed fuzz: {sum(kinds.values())} rule-breaking bodies {kinds}, {flips} byte-flipped bodies")
    # nothing was accumulated: the real device and one more give exactly their own aggregate
    expected = Expected(1)
    r = post_update(address, good)
    assert r.retcode == SUCCEED, r.reason
    expected.compressed(0, names, coded, INITIAL, 1, 4)
    assert start_job(address, fl_name, "second", 1, 2).retcode == SUCCEED
    plain = {k: v * np.float32(2) for k, v in INITIAL.items()}
    assert update(address, fl_name, "second", 1, plain).retcode == SUCCEED
    expected.plain(0, plain, 2)
    g = wait_model(address, fl_name, 1)
    want = expected.model()
    assert all(g.features[k].tobytes() == want[k].tobytes() for k in AGGREGATED)
