"""The server side of DIFF_SPARSE_QUANT that needs no process: what is advertised, and the name checks."""
from mindspore_federated import errors
from mindspore_federated.server.compressed import _check_names, upload_compression
from mindspore_federated.server.model import ModelSpec


def test_upload_compression_honours_the_encrypt_type():
    hp = {"upload_compress_type": "DIFF_SPARSE_QUANT"}
    assert upload_compression(hp) == "DIFF_SPARSE_QUANT"
    assert upload_compression({**hp, "encrypt_type": "NOT_ENCRYPT"}) == "DIFF_SPARSE_QUANT"
    assert upload_compression({**hp, "encrypt_type": "DP_ENCRYPT"}) == "DIFF_SPARSE_QUANT"
    for encrypt_type in ("PW_ENCRYPT", "SIGNDS"):
        assert upload_compression({**hp, "encrypt_type": encrypt_type}) == "NO_COMPRESS"
    assert upload_compression({"upload_compress_type": "NO_COMPRESS"}) == "NO_COMPRESS"
    assert upload_compression({}) == "NO_COMPRESS"


def test_name_checks():
    spec = ModelSpec([("a", (3,), True), ("b", (2,), True), ("c", (4,), False)])

    def entries(*names):
        return [(n, 0, 0, 0.0, 0.0) for n in names]

    assert _check_names(spec, ["a", "b"], entries("a", "b")) is None
    assert _check_names(spec, ["b", "c", "a"], entries("b", "c", "a")) is None
    assert _check_names(spec, [], []) == errors.COMPRESS_NAMES_EMPTY
    assert _check_names(spec, ["a", "b"], entries("a")) == errors.COMPRESS_NAMES_COUNT.format(names=2, entries=1)
    assert _check_names(spec, ["a", "b"], entries("b", "a")) == errors.COMPRESS_NAME_ORDER.format(
        index=0, got="b", want="a")
    assert _check_names(spec, ["a", "x"], entries("a", "x")) == errors.COMPRESS_NAME_UNKNOWN.format(name="x")
    assert _check_names(spec, ["a", "a"], entries("a", "a")) == errors.COMPRESS_NAME_TWICE.format(name="a")
    assert _check_names(spec, ["a", "c"], entries("a", "c")) == errors.COMPRESS_MISSING.format(name="b")
