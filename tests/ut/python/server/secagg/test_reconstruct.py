"""Secret reconstruction against the SDK's masking, offline: the noise the server rebuilds from the survivors'
shares removes exactly the masks left in the sum of the uploads, including for secrets whose first byte is
0x00 (spec §12: left-padded, not shifted)."""
from types import SimpleNamespace

import numpy as np
import pytest

from mindspore_federated import armour
from mindspore_federated.client.messages.cipher import PeerKeys
from mindspore_federated.client.secure import (
    PairwiseSession,
    decrypt_share,
    encrypt_share,
    pack_shares,
    unpack_shares,
)
from mindspore_federated.server.secagg.reconstruct import CipherRecord, ReconstructionError, mask_items, noise
from mindspore_federated.server.secagg.records import KeyRecord

LENGTH = 257
PRIME = armour.generate_prime()


def _sessions(count, t, leading_zero=()):
    plan = SimpleNamespace(pw_params=SimpleNamespace(t=t, prime=PRIME))
    sessions = [PairwiseSession(f"d{i}", 1, plan, call=None) for i in range(count)]
    for i in leading_zero:   # an s private key whose first byte is 0x00 (1 in 32 X25519 keys)
        while sessions[i].s_sk[0] != 0:
            sessions[i].s_sk, sessions[i].s_pk = armour.x25519_keypair()
    for s in sessions:
        s.peers = {o.fl_id: PeerKeys(o.fl_id, o.c_pk, o.s_pk, o.pw_iv, o.pw_salt) for o in sessions if o is not s}
    return sessions


def _share_round(sessions):
    """Every device's shares, decrypted by their recipients (what getSecrets hands out)."""
    by_id = {s.fl_id: s for s in sessions}
    for s in sessions:
        for recipient, encrypted, _ in s._my_shares():
            r = by_id[recipient]
            r.held[s.fl_id] = unpack_shares(decrypt_share(r._share_key(s.fl_id), encrypted))
    for s in sessions:
        s.mask_peers = sorted(s.held)


def _record(sessions, online, survivors):
    keys = {s.fl_id: KeyRecord(s.fl_id, s.c_pk, s.s_pk, s.ind_iv, s.pw_iv, s.pw_salt) for s in sessions}
    shares = {}
    for s in sessions:
        if s.fl_id not in survivors:
            continue
        for owner, (si, ss, bi, bs) in s.held.items():
            index, share = (bi, bs) if owner in online else (si, ss)
            shares.setdefault(owner, []).append((index, share))
    return CipherRecord(keys, sorted(keys), set(online), {o: sorted(v) for o, v in shares.items()})


@pytest.mark.parametrize("dropped", [(), (1,), (0, 3)])
def test_noise_removes_exactly_the_masks_left_in_the_sum(dropped):
    sessions = _sessions(6, t=3, leading_zero=dropped)   # survivors >= t + 1 (M)
    _share_round(sessions)
    rng = np.random.default_rng(7)
    plain = {s.fl_id: rng.normal(size=LENGTH).astype(np.float32) * 10 for s in sessions}
    online = [s.fl_id for i, s in enumerate(sessions) if i not in dropped]
    total = np.zeros(LENGTH, np.float32)
    for fl_id in online:
        masked = next(s for s in sessions if s.fl_id == fl_id).mask({"w": plain[fl_id].copy()})["w"]
        assert not np.allclose(masked, plain[fl_id], atol=1e-3)   # what a server receives is not w·n
        total += masked
    total += noise(_record(sessions, online, online), 3, PRIME, LENGTH)
    np.testing.assert_allclose(total, sum(plain[f] for f in online), atol=2e-3)


def test_too_few_shares_cannot_be_reconstructed():
    sessions = _sessions(4, t=3)
    _share_round(sessions)
    online = ["d0", "d1", "d2", "d3"]
    record = _record(sessions, online, ["d0", "d1"])   # 2 survivors hold 2 shares of each other device
    with pytest.raises(ReconstructionError):
        mask_items(record, 3, PRIME)


def test_share_envelope_round_trips_in_the_java_client_layout():
    packed = pack_shares(3, b"\x01\x02", 300, b"\xff" * 33)
    assert packed[:4] == bytes([2, 33, 1, 2]) and packed[4:7] == b"\x03\x01\x2c"
    key = bytes(range(32))
    sealed = encrypt_share(key, packed)
    assert len(sealed) == 16 + 48 and decrypt_share(key, sealed) == packed
    assert unpack_shares(packed) == (3, b"\x01\x02", 300, b"\xff" * 33)
    with pytest.raises(ValueError):
        unpack_shares(packed[:10])


def test_secrets_are_left_padded_to_32_bytes():
    secret = b"\x00\x00" + bytes(range(1, 31))
    shares = armour.shamir_split(secret, 2, 3, PRIME)
    assert armour.shamir_combine(shares[1:], PRIME, 32) == secret


def test_stored_key_records_round_trip():
    rec = KeyRecord("d", b"\x00" * 32, b"\x01" * 32, b"\x02" * 16, b"\x03" * 16, b"\x04" * 32, "ts", 4, b"sig",
                    ("a", "b"))
    assert KeyRecord.decode(rec.encode()) == rec
