"""Secret reconstruction (spec §5.1): from the shares the surviving devices return, the masks that do not
cancel in the sum of the uploads; their sum (the noise) is added to the aggregate before averaging.

Fixes two reference defects (spec §12): recovered secrets are left-padded to 32 bytes, and the masks span
the concatenation of all weights in name order."""
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from mindspore_federated import armour, errors
from mindspore_federated.server.secagg.records import KeyRecord, decode_shares

SECRET_BYTES = 32


class ReconstructionError(Exception):
    """The secrets cannot be recovered (too few or malformed shares, missing keys)."""


@dataclass
class CipherRecord:
    """What the state holds of one iteration's cipher rounds."""

    keys: dict          # fl_id -> KeyRecord
    sharers: list       # fl_ids that shared secrets (sorted): every mask pair is among them
    online: set         # fl_ids whose update was accepted
    shares: dict        # owner fl_id -> [(index, share bytes)] returned by the survivors


async def read_record(state, inst, iteration):
    keys = {f: KeyRecord.decode(v) for f, v in (await state.cipher_values(inst, iteration, "exchangeKeys")).items()}
    sharers = sorted(await state.cipher_values(inst, iteration, "shareSecrets"))
    online = await state.update_set(inst, iteration)
    shares = defaultdict(dict)
    for raw in (await state.cipher_values(inst, iteration, "reconstructSecrets")).values():
        for owner, index, share in decode_shares(raw):
            shares[owner].setdefault(index, share)
    return CipherRecord(keys, sharers, online, {o: sorted(s.items()) for o, s in shares.items()})


def _secret(record, owner, t, prime):
    shares = record.shares.get(owner, [])
    if len(shares) < t:
        raise ReconstructionError(errors.UNMASK_SHARES.format(count=len(shares), fl_id=owner, needed=t))
    try:
        return armour.shamir_combine(shares[:t], prime, SECRET_BYTES)
    except (ValueError, RuntimeError) as exc:
        raise ReconstructionError(errors.UNMASK_BAD_SHARE.format(fl_id=owner)) from exc


def _keys_of(record, fl_id):
    rec = record.keys.get(fl_id)
    if rec is None:
        raise ReconstructionError(errors.UNMASK_NO_KEYS.format(fl_id=fl_id))
    return rec


def mask_items(record, t, prime):
    """[(key, iv, sign)] of every mask left in the sum: an online device's individual mask (negated); a
    dropped device's pairwise masks with every other sharer (+ when its fl_id is the greater one)."""
    items = []
    for owner in record.sharers:
        secret = _secret(record, owner, t, prime)
        if owner in record.online:
            items.append((secret, _keys_of(record, owner).ind_iv, -1.0))
            continue
        peers = [p for p in record.sharers if p != owner]
        smaller = [_keys_of(record, min(owner, p)) for p in peers]
        try:  # one batch per dropped device: ~N PBKDF2 runs on every core, the GIL released once
            keys = armour.pairwise_keys(secret, [(_keys_of(record, p).s_pk, s.pw_salt) for p, s in zip(peers, smaller)])
        except (ValueError, RuntimeError) as exc:
            raise ReconstructionError(errors.UNMASK_BAD_SHARE.format(fl_id=owner)) from exc
        items += [(key, s.pw_iv, 1.0 if owner > p else -1.0) for key, p, s in zip(keys, peers, smaller)]
    return items


def noise(record, t, prime, length):
    """The noise vector (float32, `length` = all weights in name order)."""
    out = np.zeros(length, np.float32)
    armour.add_masks(out, mask_items(record, t, prime))
    return out
