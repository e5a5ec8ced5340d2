"""The cipher rounds' replies (spec §3.4): small ones memoised like server/replies.py's error replies."""
import functools

import flatbuffers

from mindspore_federated.schema.fbs import (
    ClientListSign,
    ClientPublicKeys,
    ClientShare,
    ReconstructSecret,
    ResponseClientListSign,
    ResponseExchangeKeys,
    ResponseShareSecrets,
    ReturnAllClientListSign,
    ReturnClientList,
    ReturnExchangeKeys,
    ReturnShareSecrets,
)
from mindspore_federated.schema.tables import message, table

_small = functools.lru_cache(maxsize=1024)


@_small
def exchange_keys(retcode, reason, next_req_time, iteration):
    return message(ResponseExchangeKeys, Retcode=retcode, Reason=reason, NextReqTime=str(next_req_time),
                   Iteration=iteration)


@_small
def share_secrets(retcode, reason, next_req_time, iteration):
    return message(ResponseShareSecrets, Retcode=retcode, Reason=reason, NextReqTime=str(next_req_time),
                   Iteration=iteration)


@_small
def reconstruct(retcode, reason, iteration, next_req_time):
    return message(ReconstructSecret, Retcode=retcode, Reason=reason, Iteration=iteration,
                   NextReqTime=str(next_req_time))


@_small
def push_list_sign(retcode, reason, iteration, next_req_time):
    return message(ResponseClientListSign, Retcode=retcode, Reason=reason, Iteration=iteration,
                   NextReqTime=str(next_req_time))


def get_keys(retcode, iteration, next_req_time, keys=None, pki=False):
    """ReturnExchangeKeys; `keys`: KeyRecords (fl_id order) whose public keys go out (with PKI their
    timestamp, iteration, signature and certificate chain too)."""
    b = flatbuffers.Builder(256 + 160 * len(keys or ()))
    entries = None
    if keys:
        entries = [table(b, ClientPublicKeys, FlId=k.fl_id, CPk=k.c_pk or None, SPk=k.s_pk, PwIv=k.pw_iv,
                         PwSalt=k.pw_salt,
                         Timestamp=k.timestamp if pki else None, Iteration=k.iteration if pki else None,
                         Signature=(k.signature or None) if pki else None,
                         CertificateChain=list(k.certificate_chain) if pki and k.certificate_chain else None)
                   for k in keys]
    b.Finish(table(b, ReturnExchangeKeys, Retcode=retcode, Iteration=iteration, RemotePublickeys=entries,
                   NextReqTime=str(next_req_time)))
    return bytes(b.Output())


def get_secrets(retcode, iteration, next_req_time, shares=None):
    """ReturnShareSecrets; `shares`: (sender fl_id, encrypted share, index) addressed to the requester."""
    b = flatbuffers.Builder(256 + 128 * len(shares or ()))
    entries = None
    if shares:
        entries = [table(b, ClientShare, FlId=fl_id, Share=share, Index=index) for fl_id, share, index in shares]
    b.Finish(table(b, ReturnShareSecrets, Retcode=retcode, Iteration=iteration, EncryptedShares=entries,
                   NextReqTime=str(next_req_time)))
    return bytes(b.Output())


def client_list(retcode, reason, clients, iteration, next_req_time):
    return message(ReturnClientList, 40 * len(clients), Retcode=retcode, Reason=reason,
                   Clients=list(clients) or None, Iteration=iteration, NextReqTime=str(next_req_time))


def get_list_sign(retcode, reason, signs, iteration, next_req_time):
    """ReturnAllClientListSign; `signs`: (fl_id, signature over the client list)."""
    b = flatbuffers.Builder(256 + 300 * len(signs or ()))
    entries = [table(b, ClientListSign, FlId=fl_id, Signature=sig or None) for fl_id, sig in signs or ()]
    b.Finish(table(b, ReturnAllClientListSign, Retcode=retcode, Reason=reason, ClientListSign=entries or None,
                   Iteration=iteration, NextReqTime=str(next_req_time)))
    return bytes(b.Output())


# round -> (retcode, reason, iteration, next_req_time) -> its reply refusing a request (the PKI step); getKeys
# and getSecrets replies carry no reason
REFUSALS = {
    "exchangeKeys": lambda rc, why, it, t: exchange_keys(rc, why, t, it),
    "getKeys": lambda rc, why, it, t: get_keys(rc, it, t),
    "shareSecrets": lambda rc, why, it, t: share_secrets(rc, why, t, it),
    "getSecrets": lambda rc, why, it, t: get_secrets(rc, it, t),
    "getClientList": lambda rc, why, it, t: client_list(rc, why, (), it, t),
    "reconstructSecrets": reconstruct,
    "pushListSign": push_list_sign,
    "getListSign": lambda rc, why, it, t: get_list_sign(rc, why, (), it, t),
}
