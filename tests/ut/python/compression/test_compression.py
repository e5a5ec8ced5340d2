"""QUANT codec shared by server and SDK: bit-exact with both former implementations; the wire round trip."""
import numpy as np
import pytest

from mindspore_federated.client import messages as msg
from mindspore_federated.compression import QuantFeature, quant_decode, quant_encode, quant_scale


def former_server_quantize(w):
    """server/replies.py `quantize` before the codec had one home (kept here as the reference)."""
    if w.size == 0:
        return np.zeros(0, np.int8), 0.0, 0.0
    lo, hi = float(w.min()), float(w.max())
    scale = (hi - lo) / 255.0 + 1e-10
    q = np.round((w.astype(np.float64) - lo) / scale - 128.0)
    return np.clip(q, -128, 127).astype(np.int8), lo, hi


def former_sdk_encode(weight):
    """client/messages.py `quant_encode` before the codec had one home."""
    w = np.ascontiguousarray(weight, dtype=np.float32).reshape(-1)
    lo = float(w.min()) if w.size else 0.0
    hi = float(w.max()) if w.size else 0.0
    scaled = (w.astype(np.float64) - lo) / ((hi - lo) / 255.0 + 1e-10) - 128.0
    codes = np.clip(np.round(scaled), -128, 127).astype(np.int8)
    return codes, np.float32(lo).item(), np.float32(hi).item()


def weights():
    rng = np.random.default_rng(1234)
    yield np.zeros(0, np.float32)
    yield np.full(7, 0.75, np.float32)
    yield np.array([-1.0, 1.0], np.float32)
    yield np.array([3.4e38, -3.4e38, 0.0], np.float32)
    yield np.array([1e-30, 2e-30, 3e-30], np.float32)
    for size in (1, 2, 255, 256, 10_000):
        yield rng.standard_normal(size).astype(np.float32) * rng.uniform(1e-3, 1e3)
    yield rng.uniform(-5, 5, 62 * 84).astype(np.float32)


@pytest.mark.parametrize("w", list(weights()), ids=lambda w: f"n{w.size}")
def test_encode_is_bit_exact_with_both_former_implementations(w):
    got = quant_encode(w)
    for codes, lo, hi in (former_server_quantize(w), former_sdk_encode(w)):
        assert got.data.dtype == np.int8 and got.data.tobytes() == codes.tobytes()
        assert (got.min_val, got.max_val) == (lo, hi)
        assert np.float32(got.min_val) == np.float32(lo) and np.float32(got.max_val) == np.float32(hi)


def test_decode_is_bit_exact_with_the_float32_formula():
    rng = np.random.default_rng(7)
    codes = rng.integers(-128, 128, 5000).astype(np.int8)
    lo, hi = -0.731, 1.913
    expected = (codes.astype(np.float32) + np.float32(128.0)) * np.float32((hi - lo) / 255.0 + 1e-10)
    expected += np.float32(lo)
    got = quant_decode(codes, lo, hi)
    assert got.dtype == np.float32 and got.tobytes() == expected.tobytes()


def test_round_trip_error_is_within_half_a_step():
    w = np.random.default_rng(3).standard_normal(4096).astype(np.float32)
    q = quant_encode(w)
    step = quant_scale(q.min_val, q.max_val)
    assert np.max(np.abs(quant_decode(q.data, q.min_val, q.max_val) - w)) <= step / 2 + 1e-6
    assert q.data.min() == -128 and q.data.max() == 127


def test_the_sdk_and_the_server_use_the_one_codec():
    from mindspore_federated.server import replies as server_replies
    assert msg.quant_encode is quant_encode and msg.quant_decode is quant_decode
    assert msg.QuantFeature is QuantFeature
    assert server_replies.quant_encode is quant_encode
    assert not hasattr(server_replies, "quantize")


def test_server_quant_reply_decodes_on_the_device():
    from mindspore_federated.server import replies as server_replies
    from mindspore_federated.server.model import Model, ModelSpec

    arrays = {"w": np.linspace(-2, 3, 50, dtype=np.float32), "b": np.array([0.5, -0.25], np.float32)}
    spec = ModelSpec([(name, list(a.shape), True) for name, a in arrays.items()])
    model = Model.from_arrays(spec, arrays)
    body = server_replies.get_model(200, "", 3, "0", model, list(arrays), compress="QUANT")
    reply = msg.parse_get_model(body)
    assert reply.download_compress_type == msg.CompressType.QUANT
    for name, w in arrays.items():
        expected = quant_encode(w)
        got = reply.compressed_features[name]
        assert got.data.tobytes() == expected.data.tobytes()
        assert (got.min_val, got.max_val) == (expected.min_val, expected.max_val)
        np.testing.assert_array_equal(reply.model()[name], quant_decode(expected.data, expected.min_val,
                                                                        expected.max_val))
