"""schema/tables.py's direct readers (blob, tables) agree with the generated accessors on real messages."""
import os

import flatbuffers

from mindspore_federated.schema.fbs import (
    ClientShare,
    RequestExchangeKeys,
    RequestShareSecrets,
    SendReconstructSecret,
)
from mindspore_federated.schema.tables import blob, table, tables, text


def _share_request(n):
    b = flatbuffers.Builder(1024)
    entries = [table(b, ClientShare, FlId=f"dev-{i}", Share=os.urandom(1 + i), Index=i + 1) for i in range(n)]
    b.Finish(table(b, RequestShareSecrets, FlId="me", EncryptedShares=entries or None, Iteration=3,
                   Signature=b"\x00sig" if n else None))
    return RequestShareSecrets.RequestShareSecrets.GetRootAs(bytes(b.Output()), 0)


def test_nested_tables_and_their_blobs_match_the_generated_accessors():
    req = _share_request(7)
    entries = tables(req, "EncryptedShares")
    assert len(entries) == req.EncryptedSharesLength() == 7
    for i, entry in enumerate(entries):
        generated = req.EncryptedShares(i)
        assert text(entry, "FlId") == f"dev-{i}" and entry.Index() == i + 1
        assert blob(entry, "Share") == generated.ShareAsNumpy().tobytes() and len(blob(entry, "Share")) == i + 1
    assert blob(req, "Signature") == b"\x00sig"


def test_absent_vectors_read_empty():
    req = _share_request(0)
    assert tables(req, "EncryptedShares") == []
    assert blob(req, "Signature") == b""


def test_fields_of_other_slots_are_not_mixed_up():
    b = flatbuffers.Builder(512)
    b.Finish(table(b, RequestExchangeKeys, FlId="d", CPk=b"c" * 32, SPk=b"s" * 32, IndIv=b"i" * 16,
                   PwIv=b"p" * 16, PwSalt=b"t" * 32, Signature=b"g" * 5))
    req = RequestExchangeKeys.RequestExchangeKeys.GetRootAs(bytes(b.Output()), 0)
    got = {name: blob(req, name) for name in ("CPk", "SPk", "IndIv", "PwIv", "PwSalt", "Signature")}
    assert got == {"CPk": b"c" * 32, "SPk": b"s" * 32, "IndIv": b"i" * 16, "PwIv": b"p" * 16,
                   "PwSalt": b"t" * 32, "Signature": b"g" * 5}


def test_secret_upload_entries_read_like_the_generated_accessors():
    b = flatbuffers.Builder(512)
    entries = [table(b, ClientShare, FlId=f"o{i}", Share=bytes([i]) * 33, Index=i + 1) for i in range(3)]
    b.Finish(table(b, SendReconstructSecret, FlId="me", ReconstructSecretShares=entries, Iteration=2))
    req = SendReconstructSecret.SendReconstructSecret.GetRootAs(bytes(b.Output()), 0)
    assert [(text(e, "FlId"), blob(e, "Share"), e.Index()) for e in tables(req, "ReconstructSecretShares")] == [
        (f"o{i}", bytes([i]) * 33, i + 1) for i in range(3)]
