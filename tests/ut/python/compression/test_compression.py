"""QUANT codec shared by server and SDK: bit-exact with both former implementations; the wire round trip."""
import math
import struct

import numpy as np
import pytest

from mindspore_federated.client import messages as msg
from mindspore_federated.compression import QuantFeature, quant_codes, quant_decode, quant_encode, quant_scale


def f32(x):
    """x rounded to float32 (a Python float)."""
    return struct.unpack("f", struct.pack("f", x))[0]


def c_round(x):
    """C `round`: halves away from zero."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def reference_quantize(w):
    """The reference server's QUANT rule written out element by element in pure Python: float32 min/max
    (starting at +-1e10), every arithmetic step rounded to float32, C `round`, int8."""
    values = [f32(float(v)) for v in np.asarray(w, np.float32).ravel()]
    if not values:
        return b"", 0.0, 0.0
    lo = min([f32(1e10)] + values)
    hi = max([f32(-1e10)] + values)
    scale = f32(f32(f32(hi - lo) / 255.0) + f32(1e-10)) if math.isfinite(f32(hi - lo)) else math.inf
    codes = []
    for v in values:
        if not math.isfinite(scale):  # max - min overflows: finite / inf -> -128, inf / inf = NaN -> 0
            codes.append(0 if math.isinf(f32(v - lo)) else -128)
            continue
        q = f32(f32(f32(v - lo) / scale) - 128.0)
        codes.append(max(-128, min(127, c_round(q))))
    return np.array(codes, np.int8).tobytes(), lo, hi


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
def test_encode_is_bit_exact_with_the_reference_rule(w):
    got = quant_encode(w)
    codes, lo, hi = reference_quantize(w)
    assert got.data.dtype == np.int8 and got.data.tobytes() == codes
    assert (got.min_val, got.max_val) == (lo, hi)


def test_halves_round_away_from_zero_in_float32():
    """The rounding edge the outside check found: (w - min) / scale - 128 landing on x.5 in float32 rounds
    away from zero (C round), where float64 arithmetic or round-half-even give the neighbour."""
    lo, hi = 0.0, 255.0
    scale = quant_scale(lo, hi)
    w = np.array([lo, hi, (2.5 + 128) * scale, (-2.5 + 128) * scale, (-0.5 + 128) * scale], np.float32)
    codes, _, _ = reference_quantize(w)
    assert list(np.frombuffer(codes, np.int8)) == [-128, 127, 3, -3, -1]
    assert quant_encode(w).data.tobytes() == codes
    rng = np.random.default_rng(11)
    for _ in range(20):  # ties are frequent on small integer grids
        grid = rng.integers(-1000, 1000, 5000).astype(np.float32) * np.float32(rng.choice([0.5, 0.25, 1.0]))
        assert quant_encode(grid).data.tobytes() == reference_quantize(grid)[0]


def test_java_half_up_rounding_for_device_codes():
    w = np.array([0.0, 255.0, 127.5, 129.5, 126.5], np.float32)
    up = quant_codes(w, 0.0, 255.0, half_up=True)
    away = quant_codes(w, 0.0, 255.0)
    assert list(up) == [-128, 127, 0, 2, -1] and list(away) == [-128, 127, -1, 2, -2]


def test_decode_is_bit_exact_with_the_java_device_formula():
    rng = np.random.default_rng(7)
    codes = rng.integers(-128, 128, 5000).astype(np.int8)
    lo, hi = f32(-0.731), f32(1.913)
    scale = f32(f32(f32(hi - lo) / 255.0) + 1e-10)  # float quotient, + 1e-10 in double, back to float
    expected = np.array([f32(f32(f32(c + 128.0) * scale) + lo) for c in codes.tolist()], np.float32)
    got = quant_decode(codes, lo, hi)
    assert got.dtype == np.float32 and got.tobytes() == expected.tobytes()


def test_round_trip_error_is_within_half_a_step():
    w = np.random.default_rng(3).standard_normal(4096).astype(np.float32)
    q = quant_encode(w)
    step = quant_scale(q.min_val, q.max_val)
    assert np.max(np.abs(quant_decode(q.data, q.min_val, q.max_val) - w)) <= step / 2 + 1e-6
    assert q.data.min() == -128 and q.data.max() == 127


def test_the_sdk_and_the_server_use_the_one_codec():
    from mindspore_federated.server import model as server_model
    from mindspore_federated.server import replies as server_replies
    assert msg.quant_encode is quant_encode and msg.quant_decode is quant_decode
    assert msg.QuantFeature is QuantFeature
    assert server_model.quant_encode is quant_encode  # Model.quantized: once per model, for every reply
    assert not hasattr(server_replies, "quantize")


def test_a_model_is_quantized_once():
    from mindspore_federated.server.model import Model
    model = Model({"w": np.linspace(-1, 1, 9, dtype=np.float32)})
    first = model.quantized("w")
    assert model.quantized("w") is first and first.data.tobytes() == quant_encode(model.weights["w"]).data.tobytes()


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
