"""signed_rounds.Signed: what each row's rule reads from a real flatbuffers body (the default
timestamp ‖ iteration, exchangeKeys' c_pk ‖ s_pk prefix, pushListSign's req_signature)."""
import flatbuffers
import numpy as np

from mindspore_federated import signing
from mindspore_federated.client import messages as m
from mindspore_federated.schema.fbs import RequestExchangeKeys, SendClientListSign
from mindspore_federated.server.signed_rounds import CIPHER_TABLES, Signed, cipher_rule, read_start_proof


def refuse(host, retcode, reason):
    return (retcode, reason)


def exchange_keys(fl_id, c_pk, s_pk, iteration, timestamp, signature):
    b = flatbuffers.Builder(256)
    offs = [b.CreateString(fl_id), b.CreateByteVector(c_pk), b.CreateByteVector(s_pk),
            b.CreateString(timestamp), b.CreateByteVector(signature)]
    RequestExchangeKeys.Start(b)
    RequestExchangeKeys.AddFlId(b, offs[0])
    RequestExchangeKeys.AddCPk(b, offs[1])
    RequestExchangeKeys.AddSPk(b, offs[2])
    RequestExchangeKeys.AddIteration(b, iteration)
    RequestExchangeKeys.AddTimestamp(b, offs[3])
    RequestExchangeKeys.AddSignature(b, offs[4])
    b.Finish(RequestExchangeKeys.End(b))
    return bytes(b.Output())


def push_list_sign(fl_id, iteration, timestamp, signature, req_signature):
    b = flatbuffers.Builder(128)
    offs = [b.CreateString(fl_id), b.CreateString(timestamp), b.CreateByteVector(signature),
            b.CreateByteVector(req_signature)]
    SendClientListSign.Start(b)
    SendClientListSign.AddFlId(b, offs[0])
    SendClientListSign.AddIteration(b, iteration)
    SendClientListSign.AddTimestamp(b, offs[1])
    SendClientListSign.AddSignature(b, offs[2])
    SendClientListSign.AddReqSignature(b, offs[3])
    b.Finish(SendClientListSign.End(b))
    return bytes(b.Output())


def test_default_rule_signs_timestamp_then_iteration():
    body = m.build_update_model("fl", "dev", 7, {"w": np.ones(2, np.float32)}, timestamp="1700000000123",
                                signature=b"sig")
    req = Signed("RequestUpdateModel", refuse).read(body)
    assert req == ("dev", "1700000000123", b"sig", b"17000000001237")
    assert req.message == signing.round_message("1700000000123", 7)
    unsigned = m.build_update_model("fl", "dev", 7, {"w": np.ones(2, np.float32)}, timestamp="1")
    assert Signed("RequestUpdateModel", refuse).read(unsigned).signature == b""


def test_exchange_keys_signs_its_keys_first():
    body = exchange_keys("dev", b"\x01c", b"\x02s", 3, "99", b"sig")
    req = Signed("RequestExchangeKeys", refuse, parts=("CPk", "SPk")).read(body)
    assert req == ("dev", "99", b"sig", b"\x01c\x02s993")


def test_push_list_sign_checks_the_request_signature():
    body = push_list_sign("dev", 4, "55", b"list-signature", b"request-signature")
    req = Signed("SendClientListSign", refuse, signature="ReqSignature").read(body)
    assert (req.signature, req.message) == (b"request-signature", b"554")


def test_missing_fields_read_as_none():
    assert Signed("RequestExchangeKeys", refuse).read(exchange_keys("", b"", b"", 1, "9", b"")) is None
    assert read_start_proof(m.build_start_fl_job("fl", "dev", 1, 10)) is None
    proof = read_start_proof(m.build_start_fl_job("fl", "dev", 1, 10, timestamp="5", sign_data=b"s",
                                                  key_attestation="a", equip_cert="e", equip_ca_cert="c"))
    assert proof == ("dev", "5", b"s", "a", "e", "c")


def test_every_cipher_rule_names_a_signed_table():
    for name in CIPHER_TABLES:
        rule = cipher_rule(name, refuse)
        empty = flatbuffers.Builder(16)
        module = __import__(f"mindspore_federated.schema.fbs.{rule.table}", fromlist=["Start"])
        module.Start(empty)
        empty.Finish(module.End(empty))
        assert rule.read(bytes(empty.Output())) is None, name  # no fl_id: nothing to verify
        table = getattr(module, rule.table)
        for field in ("FlId", "Timestamp", "Iteration", rule.signature + "AsNumpy",
                      *(p + "AsNumpy" for p in rule.parts)):
            assert hasattr(table, field), (name, field)
    assert cipher_rule("exchangeKeys", refuse).parts == ("CPk", "SPk")
    assert cipher_rule("pushListSign", refuse).signature == "ReqSignature"
