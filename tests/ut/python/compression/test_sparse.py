"""DIFF_SPARSE_QUANT: the keep-mask against a pure-Python derivation of the rule, the C++ decode+accumulate
kernel against a numpy float32 reference, and the device encoder."""
import numpy as np
import pytest

from mindspore_federated import _core
from mindspore_federated.compression import diff_sparse_quant_encode, sparse_mask
from tests.utils.compression import f32, numpy_decode, rule_mask

CASES = [(1, 0.4, 1), (10, 0.4, 1), (100, 0.4, 1), (257, 0.1, 3), (1000, 0.5, 7), (5000, 0.25, 42),
         (333, 0.3, 2147483647), (50, 0.9, -2147483648), (4096, 0.4, 1 << 30), (999, 1.0, 123456789),
         (64, 0.05, -1), (7, 0.999, 2)]


@pytest.mark.parametrize("param_num,rate,seed", CASES)
def test_mask_matches_the_rule(param_num, rate, seed):
    got = sparse_mask(seed, rate, param_num)
    assert got.dtype == np.uint8 and got.tolist() == rule_mask(seed, rate, param_num)


GOLDEN = {  # (seed, rate, param_num) -> kept positions. Seed 1: 1 + (2^31 - 1) wraps to -2^31, times 48271
    # stays -2^31 (mod 2^32), % (2^31 - 1) is -1 in Java, so the first pick is int((0.5 - 1/4294967294) * 10) = 4.
    (1, 0.4, 10): [4, 6, 8, 9],
    (2147483647, 0.3, 20): [4, 7, 13, 14, 16, 18],
    (-2147483648, 0.5, 16): [0, 3, 4, 6, 8, 9, 10, 12],
    (100000, 0.25, 12): [0, 1, 7],
}


@pytest.mark.parametrize("case", list(GOLDEN))
def test_mask_golden_values(case):
    assert np.flatnonzero(sparse_mask(*case)).tolist() == GOLDEN[case]
    assert [i for i, v in enumerate(rule_mask(*case)) if v] == GOLDEN[case]


def test_mask_wraps_like_a_java_int():
    assert sum(rule_mask(2, 0.4, 61706)) == int(f32(61706.0 * f32(0.4)))
    # seeds whose first step overflows a Java int give different masks than unbounded integers would
    unbounded = list(range(20))
    state = ((5 + 2147483647) * 48271) % 2147483647
    for i in range(20):
        rand = state / 4294967294.0 + 0.5
        state = (state * 48271) % 2147483647
        j = int(rand * (20 - i)) + i
        unbounded[i], unbounded[j] = unbounded[j], unbounded[i]
    assert sparse_mask(5, 0.5, 20).tolist() == rule_mask(5, 0.5, 20)
    assert sparse_mask(5, 0.5, 20).tolist() != [1 if v < 10 else 0 for v in unbounded]


def random_upload(rng, sizes, rate, seed):
    mask = np.array(rule_mask(seed, rate, sum(sizes)), np.uint8)
    body = bytearray()
    segs, expect = [], []
    offset = 0
    for size in sizes:
        kept = int(mask[offset:offset + size].sum())
        codes = rng.integers(-128, 128, kept).astype(np.int8)
        lo = float(np.float32(rng.normal()))
        hi = float(np.float32(lo + abs(rng.normal()) * 3))
        latest = rng.standard_normal(size).astype(np.float32)
        segs.append([len(body), kept, lo, hi, latest, np.zeros(size, np.float32), float(np.abs(latest).max())])
        expect.append((mask[offset:offset + size], codes, lo, hi, latest))
        body += codes.tobytes()
        offset += size
    return mask, bytes(body), segs, expect


@pytest.mark.parametrize("trial", range(5))
def test_decode_and_accumulate_match_numpy(trial):
    rng = np.random.default_rng(trial)
    sizes = [int(s) for s in rng.integers(1, 3000, 6)]
    rate, seed = float(np.float32(rng.choice([0.1, 0.4, 0.75]))), int(rng.integers(-2**31, 2**31))
    mask, body, segs, expect = random_upload(rng, sizes, rate, seed)
    start = [rng.standard_normal(s[5].size).astype(np.float32) for s in segs]
    for s, a in zip(segs, start):
        s[5][:] = a
    segments = [tuple(s) for s in segs]
    assert _core.check_diff_sparse_quant(mask, body, segments, 65535.0) == ""
    for data_size in (1, 37):
        _core.add_diff_sparse_quant(mask, body, segments, float(data_size))
    for s, a, (m, codes, lo, hi, latest) in zip(segs, start, expect):
        want = a + numpy_decode(m, codes, lo, hi, latest, 1)
        want = want + numpy_decode(m, codes, lo, hi, latest, 37)
        assert s[5].tobytes() == want.tobytes()


def test_bad_uploads_are_described_and_leave_the_accumulator_alone():
    rng = np.random.default_rng(9)
    mask, body, segs, _ = random_upload(rng, [100, 200], 0.4, 3)
    acc = [s[5] for s in segs]

    def problem(edit):
        changed = [list(s) for s in segs]
        edit(changed)
        return _core.check_diff_sparse_quant(mask, body, [tuple(s) for s in changed], 65535.0)

    assert "codes" in problem(lambda s: s[0].__setitem__(1, s[0][1] - 1))
    assert "min > max" in problem(lambda s: (s[1].__setitem__(2, 1.0), s[1].__setitem__(3, 0.5)))
    assert "not finite" in problem(lambda s: s[0].__setitem__(3, float("nan")))
    assert "not finite" in problem(lambda s: s[0].__setitem__(2, float("-inf")))
    assert "float32 range" in problem(lambda s: (s[0].__setitem__(2, -3e38), s[0].__setitem__(3, 3e38)))
    assert "fewer" in problem(lambda s: s.pop())
    with pytest.raises(ValueError, match="min > max"):
        bad = [list(s) for s in segs]
        bad[0][2], bad[0][3] = 1.0, 0.0
        _core.add_diff_sparse_quant(mask, body, [tuple(s) for s in bad], 5.0)
    with pytest.raises(ValueError, match="outside the body"):
        bad = [list(s) for s in segs]
        bad[1][0] = len(body)
        _core.check_diff_sparse_quant(mask, body, [tuple(s) for s in bad], 1.0)
    assert all(not a.any() for a in acc)


def test_device_encoding_decodes_back_within_one_step():
    rng = np.random.default_rng(5)
    base = {"a": rng.standard_normal(500).astype(np.float32), "b": rng.standard_normal(77).astype(np.float32)}
    data_size, seed, rate = 12, 4, float(np.float32(0.4))
    trained = {k: v + rng.normal(0, 0.01, v.size).astype(np.float32) for k, v in base.items()}
    uploads = {k: v * np.float32(data_size) for k, v in trained.items()}
    names, coded = diff_sparse_quant_encode(uploads, base, data_size, seed, rate)
    assert names == ["a", "b"]
    mask = sparse_mask(seed, rate, 577).astype(bool)
    offset = 0
    for name in names:
        size = base[name].size
        m = mask[offset:offset + size]
        q = coded[name]
        assert q.data.size == m.sum()
        diff = uploads[name] - base[name] * np.float32(data_size)
        decoded = numpy_decode(m, q.data, q.min_val, q.max_val, base[name], data_size)
        step = (q.max_val - q.min_val) / 255
        np.testing.assert_allclose(decoded[m], (diff + base[name] * np.float32(data_size))[m], atol=step)
        np.testing.assert_array_equal(decoded[~m], (base[name] * np.float32(data_size))[~m])
        offset += size
