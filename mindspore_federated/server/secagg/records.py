"""What the cipher rounds keep in the cluster state, and how it is encoded there (JSON, bytes as base64)."""
import base64
import json
from dataclasses import asdict, dataclass

_BYTES = ("c_pk", "s_pk", "ind_iv", "pw_iv", "pw_salt", "signature")


def _b64(data):
    return base64.b64encode(bytes(data)).decode()


@dataclass
class KeyRecord:
    """One device's exchangeKeys (spec §5.1 KeysPb)."""

    fl_id: str
    c_pk: bytes
    s_pk: bytes
    ind_iv: bytes
    pw_iv: bytes
    pw_salt: bytes
    timestamp: str = ""
    iteration: int = 0
    signature: bytes = b""
    certificate_chain: tuple = ()

    def encode(self):
        out = asdict(self)
        for name in _BYTES:
            out[name] = _b64(out[name])
        out["certificate_chain"] = list(self.certificate_chain)
        return json.dumps(out).encode()

    @classmethod
    def decode(cls, raw):
        fields = json.loads(raw)
        for name in _BYTES:
            fields[name] = base64.b64decode(fields[name])
        fields["certificate_chain"] = tuple(fields.get("certificate_chain", ()))
        return cls(**fields)


def share_field(recipient, sender):
    """The items-hash field of the share `sender` addressed to `recipient`."""
    return f"{recipient}|{sender}"


def encode_share(index, share):
    return int(index).to_bytes(4, "big", signed=True) + bytes(share)


def decode_share(raw):
    """(index, share bytes)."""
    raw = bytes(raw)
    return int.from_bytes(raw[:4], "big", signed=True), raw[4:]


def encode_shares(shares):
    """A reconstructSecrets upload: [(owner fl_id, index, share bytes)]."""
    return json.dumps([[owner, int(index), _b64(share)] for owner, index, share in shares]).encode()


def decode_shares(raw):
    return [(owner, index, base64.b64decode(share)) for owner, index, share in json.loads(raw)]
