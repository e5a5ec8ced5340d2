"""Pure-Python MindSpore .ckpt reader/writer: round trip, MindSpore interop, corruption, recovery files."""
import importlib.util
import json
import logging
import os
import pathlib
import random
import re
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from mindspore_federated.checkpoint import RecoveryCheckpoints, load_checkpoint, save_checkpoint
from mindspore_federated.checkpoint import ckpt_format as ckpt

LENET_SHAPES = {
    "conv1.weight": (6, 1, 5, 5), "conv1.bias": (6,), "conv2.weight": (16, 6, 5, 5), "conv2.bias": (16,),
    "fc1.weight": (120, 400), "fc1.bias": (120,), "fc2.weight": (84, 120), "fc2.bias": (84,),
    "fc3.weight": (10, 84), "fc3.bias": (10,),
}


def lenet_features(seed=0):
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in LENET_SHAPES.items()}


def odd_features():
    """Non-alphabetical order, 0-d, empty and non-contiguous arrays."""
    rng = np.random.default_rng(1)
    return {
        "z.last": rng.standard_normal((3, 4)).astype(np.float32),
        "scalar": np.array(2.5, dtype=np.float32),
        "a.empty": np.zeros((0,), dtype=np.float32),
        "m.empty2d": np.zeros((0, 3), dtype=np.float32),
        "strided": rng.standard_normal((4, 6)).astype(np.float32)[:, ::2],
        "big-endian": np.arange(5, dtype=">f4"),
        "ünï.cødé": np.ones((1, 1, 1), dtype=np.float32),  # non-ASCII name
    }


def assert_same(loaded, expected):
    assert list(loaded) == list(expected)
    for name, value in expected.items():
        got = loaded[name]
        assert got.shape == np.shape(value), name
        assert got.dtype == np.asarray(value).dtype.newbyteorder("="), name
        np.testing.assert_array_equal(got, value)


# ------------------------------------------------------------------------------------------ pure Python

def test_round_trip_keeps_order_shapes_and_values(tmp_path):
    path = tmp_path / "model.ckpt"
    features = odd_features()
    save_checkpoint(path, features)
    loaded = load_checkpoint(path)
    assert_same(loaded, features)
    for arr in loaded.values():
        assert arr.flags.writeable and arr.flags.aligned and arr.flags.c_contiguous
        owner = arr if arr.base is None else arr.base
        assert owner.flags.owndata and owner.nbytes == arr.nbytes  # own buffer, not a view of the whole file
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(tmp_path) == ["model.ckpt"]  # the temp file was renamed


def test_list_of_pairs_dtypes_and_float32_only(tmp_path):
    path = str(tmp_path / "mixed.ckpt")
    pairs = [
        ("w", np.arange(6, dtype=np.float32).reshape(2, 3)),
        ("round", np.int64(3)),
        ("half", np.array([1.5, -2], dtype=np.float16)),
        ("f64", np.array([[1e300]])),
        ("i32", np.array([-7, 8], dtype=np.int32)),
        ("i8", np.array([-1], dtype=np.int8)),
        ("u8", np.array([255], dtype=np.uint8)),
        ("flag", np.array([True, False])),
        ("b", [1.0, 2.0]),  # not an array: stored as float32
    ]
    save_checkpoint(path, pairs)
    everything = load_checkpoint(path, float32_only=False)
    expected = dict(pairs)
    expected["b"] = np.array([1.0, 2.0], dtype=np.float32)
    assert_same(everything, expected)
    assert_same(load_checkpoint(path), {"w": expected["w"], "b": expected["b"]})


def test_overwrites_read_only_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "m.ckpt"
    path.write_bytes(b"old")
    os.chmod(path, 0o400)  # as mindspore.save_checkpoint leaves its files
    save_checkpoint(path, {"a": np.ones(3, np.float32)})
    assert_same(load_checkpoint(path), {"a": np.ones(3, np.float32)})
    assert os.listdir(tmp_path) == ["m.ckpt"]


def test_bad_input_is_rejected(tmp_path):
    path = tmp_path / "x.ckpt"
    with pytest.raises(ValueError, match="duplicate"):
        save_checkpoint(path, [("a", np.ones(1, np.float32)), ("a", np.ones(1, np.float32))])
    with pytest.raises(TypeError, match="dtype"):
        save_checkpoint(path, {"c": np.ones(2, np.complex64)})
    with pytest.raises(TypeError, match="name"):
        save_checkpoint(path, {1: np.ones(2, np.float32)})
    with pytest.raises(ValueError, match="nothing to save"):
        save_checkpoint(path, {})
    assert not path.exists()
    assert os.listdir(tmp_path) == []
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_slices_of_large_tensors_round_trip(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt, "_SLICE_BYTES", 1000)  # MindSpore splits tensors > 512 MiB; same code path
    features = {"big": np.arange(3000, dtype=np.float32).reshape(30, 100),
                "v": np.arange(700, dtype=np.float32)}
    save_checkpoint(tmp_path / "s.ckpt", features, crc_check=True)
    raw = (tmp_path / "s.ckpt").read_bytes()
    assert raw.count(b"\x0a\x03big") == 12 and raw.count(b"\x0a\x01v") == 3
    assert_same(load_checkpoint(tmp_path / "s.ckpt"), features)


def test_crc_trailer_is_written_and_checked(tmp_path):
    path = tmp_path / "c.ckpt"
    save_checkpoint(path, lenet_features(), crc_check=True)
    raw = path.read_bytes()
    assert raw[-17:-10] == b"crc_num"
    assert_same(load_checkpoint(path), lenet_features())
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0x01  # inside float data: only the CRC can notice
    path.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*CRC"):
        load_checkpoint(path)


def _value_boundaries(raw):
    """Offsets where a top-level Value ends (hand-parsed: 0x0a + 1- or 2-byte varint length)."""
    ends, pos = [], 0
    while pos < len(raw):
        assert raw[pos] == 0x0A
        length, shift, pos = 0, 0, pos + 1
        while True:
            byte = raw[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        pos += length
        ends.append(pos)
    return ends


def test_truncated_files_raise_value_error(tmp_path):
    features = {"a": np.arange(5, dtype=np.float32), "b": np.float32(1), "c": np.ones((2, 2), np.float32)}
    good = tmp_path / "good.ckpt"
    save_checkpoint(good, features)
    raw = good.read_bytes()
    boundaries = _value_boundaries(raw)
    bad = tmp_path / "bad.ckpt"
    for cut in range(len(raw)):
        bad.write_bytes(raw[:cut])
        if cut in boundaries:  # a protobuf cut between values is a valid shorter checkpoint...
            assert list(load_checkpoint(bad)) == list(features)[: boundaries.index(cut) + 1]
            continue
        with pytest.raises(ValueError, match=re.escape(str(bad))):
            load_checkpoint(bad)
    save_checkpoint(good, features, crc_check=True)  # ...which a required CRC trailer catches
    raw = good.read_bytes()
    assert _value_boundaries(raw[:-17]) == boundaries
    for cut in range(len(raw)):
        bad.write_bytes(raw[:cut])
        with pytest.raises(ValueError, match=re.escape(str(bad))):
            load_checkpoint(bad, require_crc=True)
        if cut not in boundaries:
            with pytest.raises(ValueError, match=re.escape(str(bad))):
                load_checkpoint(bad)
    bad.write_bytes(raw)
    assert_same(load_checkpoint(bad, require_crc=True), features)


def test_garbage_never_crashes_or_hangs(tmp_path):
    bad = tmp_path / "garbage.ckpt"
    rng = random.Random(1234)
    start = time.monotonic()
    for _ in range(400):
        bad.write_bytes(rng.randbytes(rng.choice([1, 7, 17, 64, 1000, 100_000])))
        with pytest.raises(ValueError, match=re.escape(str(bad))):
            load_checkpoint(bad)
    crafted = [
        b"",  # MindSpore rejects an empty checkpoint too
        b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # huge length
        b"\x0a" + b"\xff" * 12,  # overlong varint
        b"\x0a\x03\x0a\x01a",  # value without tensor
        b"\x0a\x0b\x0a\x01a\x12\x06\x08\x02\x1a\x02\x00\x00",  # tensor without tensor_type
        b"\x0a\x11\x0a\x01a\x12\x0c\x08\x02\x12\x04Bool\x1a\x01\x01",  # 1 byte for 2 Bools
        b"\x0a\x16\x0a\x01a\x12\x11\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x12\x03Int\x1a\x00",  # dim -1
        b"\x10\x01",  # unknown top-level field
        b"\x0b\x0c",  # group wire type
        b"crc_num" + bytes(10),  # a trailer and nothing else
    ]
    for blob in crafted:
        bad.write_bytes(blob)
        with pytest.raises(ValueError, match=re.escape(str(bad))):
            load_checkpoint(bad, float32_only=False)
    good = tmp_path / "good.ckpt"
    save_checkpoint(good, lenet_features())
    raw = good.read_bytes()
    for _ in range(300):  # random byte flips: a clean ValueError or a dict, nothing else
        flipped = bytearray(raw)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(raw)) if rng.random() < 0.5 else rng.randrange(min(len(raw), 200))
            flipped[pos] = rng.randrange(256)
        bad.write_bytes(bytes(flipped))
        try:
            result = load_checkpoint(bad, float32_only=rng.random() < 0.5)
        except ValueError as exc:
            assert str(bad) in str(exc)
        else:
            assert isinstance(result, dict)
    assert time.monotonic() - start < 60


def test_lenet_save_and_load_are_fast(tmp_path):
    features = lenet_features()
    assert sum(a.size for a in features.values()) == 61706
    path = tmp_path / "lenet.ckpt"
    saves, loads = [], []
    for _ in range(7):
        t0 = time.perf_counter()
        save_checkpoint(path, features)
        t1 = time.perf_counter()
        load_checkpoint(path)
        loads.append(time.perf_counter() - t1)
        saves.append(t1 - t0)
    assert os.path.getsize(path) == 247_158  # install notes: 247,012 B without the two conv biases
    assert min(saves) < 0.05 and min(loads) < 0.05, (saves, loads)


def test_module_does_not_import_mindspore():
    code = ("import sys, numpy as np; from mindspore_federated import checkpoint as c; "
            "import tempfile, os; d = tempfile.mkdtemp(); p = os.path.join(d, 'x.ckpt'); "
            "c.save_checkpoint(p, {'a': np.ones(2, np.float32)}); c.load_checkpoint(p); "
            "assert 'mindspore' not in sys.modules and 'google.protobuf' not in sys.modules; print('ok')")
    repo = pathlib.Path(__file__).resolve().parents[4]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=repo)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


# ------------------------------------------------------------------------------------------ recovery files

NAME_RE = re.compile(r"(?P<fl>.+)_recovery_iteration_(?P<it>\d+)_(?P<ts>\d{8}_\d{6})\.ckpt")


def test_recovery_retention_keeps_three_and_spares_other_fl_names(tmp_path):
    others = ["other_recovery_iteration_1_20200101_000000.ckpt",
              "lenet_x_recovery_iteration_1_20200101_000000.ckpt",  # fl_name "lenet_x", prefix-overlapping
              "lenet_recovery_iteration_1_20200101_000000.ckpt.bak",
              "notes.txt"]
    for name in others:
        (tmp_path / name).write_bytes(b"keep me")
    stale = tmp_path / ".lenet_recovery_iteration_1_20200101_000000.ckpt.abc_12.tmp"  # left by a crash
    fresh = tmp_path / ".lenet_recovery_iteration_2_20200101_000000.ckpt.xyz_34.tmp"  # another saver, now
    stale.write_bytes(b"")
    fresh.write_bytes(b"")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    rec = RecoveryCheckpoints(str(tmp_path), "lenet")
    written = [rec.save(i, {"w": np.full(3, i, np.float32)}) for i in range(6)]  # same second, mostly
    kept = rec.list()
    assert kept == written[:-4:-1]  # the three newest, newest first
    assert len({os.path.basename(p) for p in written}) == 6
    stamps = [NAME_RE.fullmatch(os.path.basename(p)).group("ts") for p in written]
    assert stamps == sorted(stamps) and len(set(stamps)) == 6  # newer saves sort newer
    for p, i in zip(written, range(6)):
        m = NAME_RE.fullmatch(os.path.basename(p))
        assert m.group("fl") == "lenet" and int(m.group("it")) == i
    lenet_files = sorted(n for n in os.listdir(tmp_path) if n.startswith("lenet_recovery_iteration_")
                         and n.endswith(".ckpt"))
    assert lenet_files == sorted(os.path.basename(p) for p in kept)
    for name in others:
        assert (tmp_path / name).read_bytes() == b"keep me"
    assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")] == [fresh.name]
    path, features = rec.newest()
    assert path == written[-1]
    assert_same(features, {"w": np.full(3, 5, np.float32)})
    assert RecoveryCheckpoints(str(tmp_path), "other").newest() is None  # its only file is garbage


def test_recovery_skips_corrupt_newest(tmp_path, caplog):
    rec = RecoveryCheckpoints(tmp_path, "fl")
    first = rec.save(7, {"w": np.ones(4, np.float32)})
    second = rec.save(8, {"w": np.full(4, 2, np.float32)})
    with open(second, "rb") as f:
        raw = f.read()
    with open(second, "wb") as f:
        f.write(raw[: len(raw) - 9])
    with caplog.at_level(logging.WARNING, logger="mindspore_federated.checkpoint"):
        path, features = rec.newest()
    assert path == first
    assert_same(features, {"w": np.ones(4, np.float32)})
    assert any(second in r.getMessage() for r in caplog.records)
    assert rec.newest(accept=lambda f: f["w"][0] == 5) is None
    with open(first, "wb") as f:
        f.write(b"\x00garbage")
    assert rec.newest() is None


def test_recovery_timestamp_is_bumped_past_future_files(tmp_path):
    (tmp_path / "fl_recovery_iteration_3_29991231_235959.ckpt").write_bytes(b"x")
    rec = RecoveryCheckpoints(tmp_path, "fl")
    path = rec.save(4, {"w": np.ones(1, np.float32)})
    assert os.path.basename(path) == "fl_recovery_iteration_4_30000101_000000.ckpt"
    assert rec.list()[0] == path


def test_recovery_save_without_dir_and_bad_args(tmp_path):
    rec = RecoveryCheckpoints(tmp_path / "missing", "fl")
    assert rec.save(1, {"w": np.ones(1, np.float32)}) == ""
    assert rec.list() == [] and rec.newest() is None
    assert not (tmp_path / "missing").exists()
    with pytest.raises(ValueError):
        RecoveryCheckpoints(tmp_path, "a/b")
    with pytest.raises(ValueError):
        RecoveryCheckpoints(tmp_path, "fl").save(-1, {"w": np.ones(1, np.float32)})


# ------------------------------------------------------------------------------------------ MindSpore interop

MS_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import mindspore as ms
    from mindspore import nn
    import mindspore.train.serialization as ser

    ms.set_device("CPU")
    d = sys.argv[1]

    class LeNet5(nn.Cell):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 5, pad_mode="valid", has_bias=True)
            self.conv2 = nn.Conv2d(6, 16, 5, pad_mode="valid", has_bias=True)
            self.fc1 = nn.Dense(400, 120)
            self.fc2 = nn.Dense(120, 84)
            self.fc3 = nn.Dense(84, 10)
            self.relu = nn.ReLU()
            self.pool = nn.MaxPool2d(2, 2)
            self.flatten = nn.Flatten()

        def construct(self, x):
            x = self.pool(self.relu(self.conv1(x)))
            x = self.pool(self.relu(self.conv2(x)))
            x = self.flatten(x)
            return self.fc3(self.relu(self.fc2(self.relu(self.fc1(x)))))

    def dump(tag, loaded):
        names, arrays = [], {}
        for k, v in loaded.items():
            if isinstance(v, str):
                continue
            names.append(k)
            arrays[f"a{len(names)}"] = v.asnumpy()
        np.savez(f"{d}/{tag}.npz", **arrays)
        with open(f"{d}/{tag}.json", "w") as f:
            json.dump(names, f)

    net = LeNet5()
    ms.save_checkpoint(net, f"{d}/ms_lenet.ckpt")
    ms.save_checkpoint(net, f"{d}/ms_lenet_crc.ckpt", crc_check=True)
    ms.save_checkpoint(net, f"{d}/ms_lenet_extra.ckpt", append_dict={"round": 3, "lr": 0.5, "note": "hi"})
    dump("ms_lenet", ms.load_checkpoint(f"{d}/ms_lenet.ckpt"))
    dump("ms_lenet_extra", ms.load_checkpoint(f"{d}/ms_lenet_extra.ckpt"))
    ser.SLICE_SIZE = 16  # KB: forces MindSpore's slicing of fc1/fc2 (and our reader's concatenation)
    ms.save_checkpoint(net, f"{d}/ms_lenet_sliced.ckpt")
    for tag in ["ours_lenet", "ours_odd", "ours_crc", "ours_sliced"]:
        dump(tag, ms.load_checkpoint(f"{d}/{tag}.ckpt", crc_check=(tag == "ours_crc")))
    print("done")
""")


def read_dump(directory, tag):
    names = json.loads((directory / f"{tag}.json").read_text())
    with np.load(directory / f"{tag}.npz") as z:
        return {name: z[f"a{i + 1}"] for i, name in enumerate(names)}


@pytest.fixture(scope="module")
def ms_dir(tmp_path_factory):
    if importlib.util.find_spec("mindspore") is None:
        pytest.skip("mindspore is not installed")
    d = tmp_path_factory.mktemp("ms")
    save_checkpoint(d / "ours_lenet.ckpt", lenet_features(5))
    odd = {k: v for k, v in odd_features().items() if v.size}  # one empty tensor is enough for MindSpore
    odd["empty"] = np.zeros((0, 3), np.float32)
    save_checkpoint(d / "ours_odd.ckpt", odd)
    save_checkpoint(d / "ours_crc.ckpt", lenet_features(6), crc_check=True)
    mp = pytest.MonkeyPatch()
    mp.setattr(ckpt, "_SLICE_BYTES", 4096)
    save_checkpoint(d / "ours_sliced.ckpt", lenet_features(7))
    mp.undo()
    script = d / "ms_side.py"
    script.write_text(MS_SCRIPT)
    out = subprocess.run([sys.executable, str(script), str(d)], capture_output=True, text=True, timeout=280)
    assert out.returncode == 0 and "done" in out.stdout, out.stderr[-3000:]
    return d


@pytest.mark.mindspore
def test_mindspore_loads_our_files(ms_dir):
    assert_same(read_dump(ms_dir, "ours_lenet"), lenet_features(5))
    assert_same(read_dump(ms_dir, "ours_crc"), lenet_features(6))
    assert_same(read_dump(ms_dir, "ours_sliced"), lenet_features(7))
    odd = {k: v for k, v in odd_features().items() if v.size}
    odd["empty"] = np.zeros((0, 3), np.float32)
    assert_same(read_dump(ms_dir, "ours_odd"), odd)


@pytest.mark.mindspore
def test_we_load_mindspore_lenet_identically(ms_dir):
    expected = read_dump(ms_dir, "ms_lenet")
    assert {k: v.shape for k, v in expected.items()} == LENET_SHAPES
    assert list(expected) == list(LENET_SHAPES)
    for tag in ["ms_lenet", "ms_lenet_crc", "ms_lenet_sliced"]:
        assert_same(load_checkpoint(ms_dir / f"{tag}.ckpt"), expected)
    # append_dict: the int and the str are skipped; the Python float is saved as a Float32 scalar
    assert_same(load_checkpoint(ms_dir / "ms_lenet_extra.ckpt"), {**expected, "lr": np.float32(0.5)})
    everything = load_checkpoint(ms_dir / "ms_lenet_extra.ckpt", float32_only=False)
    assert list(everything) == [*LENET_SHAPES, "round", "lr", "note"]
    round_ = everything["round"]
    assert round_.dtype == np.int64 and round_.shape == () and round_ == 3
    assert everything["lr"].dtype == np.float32 and everything["lr"] == 0.5
    assert everything["note"] == "hi"
    del everything["note"]
    assert_same(everything, read_dump(ms_dir, "ms_lenet_extra"))


@pytest.mark.mindspore
def test_our_bytes_equal_mindspore_bytes(ms_dir, tmp_path):
    expected = read_dump(ms_dir, "ms_lenet")
    for tag, crc in [("ms_lenet", False), ("ms_lenet_crc", True)]:
        save_checkpoint(tmp_path / "mine.ckpt", expected, crc_check=crc)
        assert (tmp_path / "mine.ckpt").read_bytes() == (ms_dir / f"{tag}.ckpt").read_bytes()
