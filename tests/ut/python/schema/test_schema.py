"""Wire schema: generated code is fresh, the C++ verifier accepts real bodies and survives fuzzing."""
import random
import shutil

import flatbuffers
import numpy as np
import pytest

from mindspore_federated import _core
from mindspore_federated.schema import generate
from mindspore_federated.schema.fbs import FeatureMap, RequestFLJob, RequestUpdateModel


def build_update_model(identifier=False):
    b = flatbuffers.Builder(1024)
    name = b.CreateString("conv1.weight")
    data = b.CreateNumpyVector(np.arange(50, dtype=np.float32))
    FeatureMap.Start(b)
    FeatureMap.AddWeightFullname(b, name)
    FeatureMap.AddData(b, data)
    fm = FeatureMap.End(b)
    RequestUpdateModel.StartFeatureMapVector(b, 1)
    b.PrependUOffsetTRelative(fm)
    fms = b.EndVector()
    fl_name, fl_id, ts = b.CreateString("lenet"), b.CreateString("dev1"), b.CreateString("123")
    RequestUpdateModel.Start(b)
    RequestUpdateModel.AddFlName(b, fl_name)
    RequestUpdateModel.AddFlId(b, fl_id)
    RequestUpdateModel.AddIteration(b, 3)
    RequestUpdateModel.AddFeatureMap(b, fms)
    RequestUpdateModel.AddTimestamp(b, ts)
    req = RequestUpdateModel.End(b)
    b.Finish(req, file_identifier=b"FLJ0" if identifier else None)
    return bytes(b.Output())


def build_fl_job():
    b = flatbuffers.Builder(256)
    fl_name, fl_id, ts = b.CreateString("lenet"), b.CreateString("dev1"), b.CreateString("123")
    RequestFLJob.Start(b)
    RequestFLJob.AddFlName(b, fl_name)
    RequestFLJob.AddFlId(b, fl_id)
    RequestFLJob.AddIteration(b, 1)
    RequestFLJob.AddDataSize(b, 32)
    RequestFLJob.AddTimestamp(b, ts)
    b.Finish(RequestFLJob.End(b))
    return bytes(b.Output())


@pytest.mark.skipif(shutil.which("flatc") is None, reason="flatc not installed")
def test_committed_generated_code_is_fresh(tmp_path):
    generate.generate(tmp_path)
    committed = generate.HERE / "fbs"
    fresh = {p.name: p.read_text() for p in tmp_path.glob("*.py")}
    current = {p.name: p.read_text() for p in committed.glob("*.py")}
    assert fresh == current, "run `python mindspore_federated/schema/generate.py` and commit schema/fbs/"


@pytest.mark.parametrize("identifier", [False, True])
def test_valid_bodies_verify_and_parse(identifier):
    body = build_update_model(identifier)
    assert _core.verify("RequestUpdateModel", body)
    req = RequestUpdateModel.RequestUpdateModel.GetRootAs(body, 0)
    assert req.FlId() == b"dev1"
    np.testing.assert_array_equal(req.FeatureMap(0).DataAsNumpy(), np.arange(50, dtype=np.float32))
    assert _core.verify("RequestFLJob", build_fl_job())


def test_every_request_table_is_known():
    names = set(_core.table_names())
    for table in ["RequestFLJob", "RequestUpdateModel", "RequestGetModel", "RequestPullWeight",
                  "RequestPushWeight", "RequestPushMetrics", "RequestExchangeKeys", "GetExchangeKeys",
                  "RequestShareSecrets", "GetShareSecrets", "GetClientList", "SendReconstructSecret",
                  "SendClientListSign", "RequestAllClientListSign"]:
        assert table in names
    with pytest.raises(ValueError):
        _core.verify("NoSuchTable", b"\0" * 16)


def test_empty_and_non_bytes_bodies():
    assert _core.verify("RequestFLJob", b"") is False
    assert _core.verify("RequestFLJob", bytearray(b"\x01\x02")) is False
    assert _core.verify("RequestFLJob", memoryview(build_fl_job())) is True
    with pytest.raises(TypeError):
        _core.verify("RequestFLJob", np.zeros(4, np.float32))


def _mutate(rng, good):
    buf = bytearray(good)
    kind = rng.randrange(5)
    if kind == 0:
        for _ in range(rng.randint(1, 8)):
            buf[rng.randrange(len(buf))] ^= rng.randint(1, 255)
    elif kind == 1:
        del buf[rng.randrange(len(buf)):]
    elif kind == 2:
        pos = rng.randrange(0, len(buf) - 4) & ~3
        buf[pos:pos + 4] = rng.choice([0xFFFFFFF0, 0x7FFFFFFF, 0x80000000, len(buf) * 4]).to_bytes(4, "little")
    elif kind == 3:
        buf = bytearray(rng.randbytes(rng.randint(0, 300)))
    else:
        buf[0:4] = rng.randint(0, 2**32 - 1).to_bytes(4, "little")
    return bytes(buf)


def test_fuzzed_bodies_to_every_verifier_only_return_bools():
    rng = random.Random(1234)
    seeds = [build_update_model(False), build_update_model(True), build_fl_job()]
    tables = _core.table_names()
    results = {True: 0, False: 0}
    for i in range(12000):
        body = _mutate(rng, seeds[i % len(seeds)])
        result = _core.verify(tables[i % len(tables)], body)
        assert result is True or result is False
        results[result] += 1
    assert results[False] > 6000
