"""server/pki.py: start-up files, the device chain, fl_id, RSA-PSS signatures and the replay window, with
certificates made at test time."""
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from mindspore_federated import errors, signing
from mindspore_federated.errors import ConfigError
from mindspore_federated.server.pki import DeviceVerifier, StartProof
from tests.utils.certs import DevicePKI, TestCA, _device_cert

REPLAY_MS = 600000


@pytest.fixture(scope="module")
def device_pki():
    return DevicePKI()


def config(tmp_path, device_pki, crl=""):
    first, second = device_pki.write_roots(tmp_path)
    return {"client_verify.root_first_ca_path": first, "client_verify.root_second_ca_path": second,
            "client_verify.equip_crl_path": crl, "client_verify.replay_attack_time_diff": REPLAY_MS}


def proof_of(identity, fl_id=None, timestamp=None, sign_data=None):
    fl_id = fl_id or identity.fl_id
    timestamp = timestamp or str(int(time.time() * 1000))
    fields = identity.start_fields(fl_id, timestamp)
    return StartProof(fl_id, timestamp, sign_data if sign_data is not None else fields["sign_data"],
                      identity.key_attestation, identity.equip_cert, identity.equip_ca_cert)


def now_ms():
    return int(time.time() * 1000)


def test_missing_or_unreadable_files_refuse_with_the_key_named(tmp_path, device_pki):
    cfg = config(tmp_path, device_pki)
    for key in ("client_verify.root_first_ca_path", "client_verify.root_second_ca_path"):
        with pytest.raises(ConfigError, match=f"{key} '.*nowhere.pem' does not exist"):
            DeviceVerifier.from_config({**cfg, key: str(tmp_path / "nowhere.pem")})
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match="Failed to load client_verify.root_first_ca_path"):
        DeviceVerifier.from_config({**cfg, "client_verify.root_first_ca_path": str(tmp_path / "junk.pem")})
    with pytest.raises(ConfigError, match="client_verify.equip_crl_path"):
        DeviceVerifier.from_config({**cfg, "client_verify.equip_crl_path": str(tmp_path / "none.crl")})
    assert errors.PKI_FILE_MISSING.startswith("client_verify.pki_verify is true")


def test_a_valid_device_is_proven(tmp_path, device_pki):
    verifier = DeviceVerifier.from_config(config(tmp_path, device_pki))
    ident = device_pki.identity("phone")
    assert ident.fl_id == signing.fl_id_of(ident.equip_cert) and len(ident.fl_id) == 64
    assert verifier.chain_problem(proof_of(ident), _utc_now()) is None
    assert verifier.verify_start(proof_of(ident), now_ms())
    message = signing.round_message("123", 4, b"cpk", b"spk")
    assert message == b"cpkspk1234"
    assert verifier.signed(ident.key_attestation, message, ident.signature("123", 4, b"cpk", b"spk"))


def _utc_now():
    import datetime

    return datetime.datetime.now(datetime.timezone.utc)


def test_each_broken_link_is_refused(tmp_path, device_pki):
    verifier = DeviceVerifier.from_config(config(tmp_path, device_pki))
    ident, other = device_pki.identity("a"), device_pki.identity("b")
    cases = {
        "fl_id": proof_of(ident, fl_id=other.fl_id),
        "signature": proof_of(ident, sign_data=b"\x01" * 256),
        "stale": proof_of(ident, timestamp=str(now_ms() - REPLAY_MS - 60000)),
        "future": proof_of(ident, timestamp=str(now_ms() + REPLAY_MS + 60000)),
        "not a number": proof_of(ident, timestamp="2020/11/16/19/18"),
        "attestation of another device": proof_of(ident)._replace(key_attestation=other.key_attestation),
        "unknown root": proof_of(DevicePKI("stranger").identity("c")),
        "expired attestation": proof_of(device_pki.identity("d", attestation_days=-1)),
        "garbage certificate": proof_of(ident)._replace(equip_ca_cert="-----BEGIN CERTIFICATE-----\nxx\n"),
    }
    # an equipment "CA" without the CA extensions, issued by a real root
    root = device_pki.second
    key = ec.generate_private_key(ec.SECP256R1())
    fake_ca = _device_cert("equipment-ca", key, root.name, root.key, ca=False)
    not_a_ca = device_pki.identity("e", equip_ca=fake_ca, equip_ca_key=key)
    cases["CA without CA constraints"] = proof_of(not_a_ca)
    why = {"fl_id": "fl_id", "attestation of another device": "chain", "unknown root": "either root",
           "expired attestation": "validity", "garbage certificate": "cannot be read",
           "CA without CA constraints": "not a CA"}
    for what, proof in cases.items():
        assert not verifier.verify_start(proof, now_ms()), what
        problem = verifier.chain_problem(proof, _utc_now())
        if what in why:
            assert why[what] in problem, (what, problem)
        else:  # signature or timestamp: the chain itself is fine
            assert problem is None, (what, problem)


def test_the_crl_revokes_equipment_certificates(tmp_path, device_pki):
    revoked, fine = device_pki.identity("revoked"), device_pki.identity("fine")
    crl = device_pki.write_crl(tmp_path / "equip.crl", [revoked])
    verifier = DeviceVerifier.from_config(config(tmp_path, device_pki, crl=crl))
    assert not verifier.verify_start(proof_of(revoked), now_ms())
    assert verifier.verify_start(proof_of(fine), now_ms())
    other_issuer = TestCA("other").write_crl(tmp_path / "other.crl", [])
    assert DeviceVerifier.from_config(config(tmp_path, device_pki, crl=other_issuer)).verify_start(
        proof_of(revoked), now_ms())  # a CRL of another issuer says nothing about this device


def test_replay_window_is_symmetric_and_inclusive():
    verifier = DeviceVerifier((), None, 1000)
    assert verifier.fresh("5000", 6000) and verifier.fresh("7000", 6000)
    assert not verifier.fresh("4999", 6000) and not verifier.fresh("7001", 6000)
    assert not verifier.fresh(None, 6000) and not verifier.fresh("", 6000)
