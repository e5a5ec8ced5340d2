"""Device-side cipher messages (spec §3.4): one builder per cipher round, and their verify-then-read replies."""
from dataclasses import dataclass, field

import flatbuffers

from mindspore_federated.client.messages.replies import Reply, check_plain_text
from mindspore_federated.clock import now_ms_text
from mindspore_federated.schema.fbs import (
    ClientShare,
    GetClientList,
    GetExchangeKeys,
    GetShareSecrets,
    ReconstructSecret,
    RequestAllClientListSign,
    RequestExchangeKeys,
    RequestShareSecrets,
    ResponseClientListSign,
    ResponseExchangeKeys,
    ResponseShareSecrets,
    ReturnAllClientListSign,
    ReturnClientList,
    ReturnExchangeKeys,
    ReturnShareSecrets,
    SendClientListSign,
    SendReconstructSecret,
)
from mindspore_federated.schema.tables import blob, message, offset, strings, table, text
from mindspore_federated.schema.tables import tables as nested

# round -> (request table, reply table)
CIPHER_TABLES = {
    "exchangeKeys": ("RequestExchangeKeys", "ResponseExchangeKeys"),
    "getKeys": ("GetExchangeKeys", "ReturnExchangeKeys"),
    "shareSecrets": ("RequestShareSecrets", "ResponseShareSecrets"),
    "getSecrets": ("GetShareSecrets", "ReturnShareSecrets"),
    "getClientList": ("GetClientList", "ReturnClientList"),
    "reconstructSecrets": ("SendReconstructSecret", "ReconstructSecret"),
    "pushListSign": ("SendClientListSign", "ResponseClientListSign"),
    "getListSign": ("RequestAllClientListSign", "ReturnAllClientListSign"),
}


def _ts(timestamp):
    return timestamp if timestamp is not None else now_ms_text()


def build_exchange_keys(fl_id, iteration, c_pk, s_pk, ind_iv, pw_iv, pw_salt, *, timestamp=None, signature=None):
    return message(RequestExchangeKeys, 512, FlId=fl_id, CPk=c_pk or None, SPk=s_pk, Iteration=int(iteration),
                   Timestamp=_ts(timestamp), IndIv=ind_iv or None, PwIv=pw_iv, PwSalt=pw_salt, Signature=signature)


def _simple(mod, fl_id, iteration, timestamp, signature):
    return message(mod, FlId=fl_id, Iteration=int(iteration), Timestamp=_ts(timestamp), Signature=signature)


def build_get_keys(fl_id, iteration, *, timestamp=None, signature=None):
    return _simple(GetExchangeKeys, fl_id, iteration, timestamp, signature)


def build_get_secrets(fl_id, iteration, *, timestamp=None, signature=None):
    return _simple(GetShareSecrets, fl_id, iteration, timestamp, signature)


def build_get_client_list(fl_id, iteration, *, timestamp=None, signature=None):
    return _simple(GetClientList, fl_id, iteration, timestamp, signature)


def build_get_list_sign(fl_id, iteration, *, timestamp=None, signature=None):
    return _simple(RequestAllClientListSign, fl_id, iteration, timestamp, signature)


def _with_shares(mod, vector_field, fl_id, iteration, shares, timestamp, signature):
    """`shares`: (fl_id, share bytes, index) entries of a ClientShare vector."""
    b = flatbuffers.Builder(256 + 128 * len(shares))
    entries = [table(b, ClientShare, FlId=f, Share=bytes(s), Index=int(i)) for f, s, i in shares]
    b.Finish(table(b, mod, FlId=fl_id, **{vector_field: entries}, Iteration=int(iteration),
                   Timestamp=_ts(timestamp), Signature=signature))
    return bytes(b.Output())


def build_share_secrets(fl_id, iteration, shares, *, timestamp=None, signature=None):
    return _with_shares(RequestShareSecrets, "EncryptedShares", fl_id, iteration, shares, timestamp, signature)


def build_reconstruct_secrets(fl_id, iteration, shares, *, timestamp=None, signature=None):
    return _with_shares(SendReconstructSecret, "ReconstructSecretShares", fl_id, iteration, shares, timestamp,
                        signature)


def build_push_list_sign(fl_id, iteration, signature, *, timestamp=None, req_signature=None):
    return message(SendClientListSign, FlId=fl_id, Iteration=int(iteration), Timestamp=_ts(timestamp),
                   Signature=signature, ReqSignature=req_signature)


# ---- replies --------------------------------------------------------------------------------------
@dataclass
class CipherReply(Reply):
    """A cipher round's reply: retcode, reason, iteration, next_req_time and the round's payload."""

    iteration: int = 0
    next_req_time: int = 0
    keys: list = field(default_factory=list)      # getKeys: PeerKeys
    shares: list = field(default_factory=list)    # getSecrets: (sender, encrypted share, index)
    clients: list = field(default_factory=list)   # getClientList: fl_ids that uploaded
    signs: list = field(default_factory=list)     # getListSign: (fl_id, signature)


@dataclass(frozen=True)
class PeerKeys:
    fl_id: str
    c_pk: bytes
    s_pk: bytes
    pw_iv: bytes
    pw_salt: bytes


_REPLY_MODULES = {m.__name__.rsplit(".", 1)[1]: m for m in (
    ResponseExchangeKeys, ReturnExchangeKeys, ResponseShareSecrets, ReturnShareSecrets, ReturnClientList,
    ReconstructSecret, ResponseClientListSign, ReturnAllClientListSign)}


def _int(value):
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _read(round_name, body):
    table_name = CIPHER_TABLES[round_name][1]
    plain = check_plain_text(table_name, body)
    if plain is not None:
        return plain
    mod = _REPLY_MODULES[table_name]
    root = getattr(mod, table_name).GetRootAs(bytes(body), 0)
    reason = text(root, "Reason") if hasattr(root, "Reason") else ""
    out = CipherReply(root.Retcode(), reason or "", root.Iteration(), _int(text(root, "NextReqTime")))
    if round_name == "getKeys":
        out.keys = [PeerKeys(text(k, "FlId") or "", blob(k, "CPk"), blob(k, "SPk"), blob(k, "PwIv"),
                             blob(k, "PwSalt")) for k in nested(root, "RemotePublickeys")]
    elif round_name == "getSecrets":
        out.shares = [(text(s, "FlId") or "", blob(s, "Share"), s.Index()) for s in nested(root, "EncryptedShares")]
    elif round_name == "getClientList":
        out.clients = strings(root, "Clients")
    elif round_name == "getListSign":
        out.signs = [(text(s, "FlId") or "", blob(s, "Signature")) for s in nested(root, "ClientListSign")]
    return out


def _parser(round_name):
    return lambda body: _read(round_name, body)


CIPHER_PARSERS = {name: _parser(name) for name in CIPHER_TABLES}
__all__ = ["CIPHER_TABLES", "CIPHER_PARSERS", "CipherReply", "PeerKeys", "offset", "build_exchange_keys",
           "build_get_keys", "build_share_secrets", "build_get_secrets", "build_get_client_list",
           "build_reconstruct_secrets", "build_push_list_sign", "build_get_list_sign"]
