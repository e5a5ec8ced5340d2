"""Device PKI in the round path (client_verify.pki_verify, spec §5.4): one step that runs before the handler
of every row with a `Signed` rule. startFLJob proves the device (chain, fl_id, signature, replay window) and
stores its key-attestation certificate in the cluster state; every later signed round checks the attestation
key's RSA-PSS signature over the row's payload, and the replay window. X.509/RSA work runs in an executor."""
import asyncio
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Optional

from mindspore_federated import _core, errors, signing
from mindspore_federated.clock import now_ms
from mindspore_federated.server.pki import StartProof
from mindspore_federated.server.replies import OUT_OF_TIME, REQUEST_ERROR


class SignedRequest(NamedTuple):
    """A later round's signed fields: who, when, the signature and the bytes it must sign."""

    fl_id: str
    timestamp: str
    signature: bytes
    message: bytes


def _text(value):
    return value.decode("utf-8", "replace") if value is not None else None


def _bytes(req, field):
    value = getattr(req, field + "AsNumpy")()
    return b"" if isinstance(value, int) else value.tobytes()  # flatbuffers answers 0 for an absent vector


def _table(name):
    module = importlib.import_module(f"mindspore_federated.schema.fbs.{name}")
    return getattr(module, name)


@dataclass(frozen=True)
class Signed:
    """How the requests of one round are signed.

    table:     the request's flatbuffers table (checked by the C++ verifier here when the row does not)
    refuse:    (RoundHost, retcode, reason) -> the round's reply refusing a request
    parts:     byte-vector fields signed before `timestamp ‖ str(iteration)` (exchangeKeys: CPk, SPk)
    signature: the field carrying the signature (pushListSign: ReqSignature)
    failed, stale: reply texts for a bad signature / a stale timestamp or no stored attestation ({fl_id})
    proves_device: startFLJob: the certificate chain is checked and the attestation stored
    """

    table: str
    refuse: Callable
    parts: tuple = ()
    signature: str = "Signature"
    failed: str = errors.SIGN_FAILED
    stale: str = errors.SIGN_STALE
    proves_device: bool = False

    def read(self, body) -> Optional[SignedRequest]:
        """The signed fields of a verified body, None when fl_id or timestamp is missing."""
        req = _table(self.table).GetRootAs(body, 0)
        fl_id, timestamp = _text(req.FlId()), _text(req.Timestamp())
        if not fl_id or timestamp is None:
            return None
        parts = [_bytes(req, p) for p in self.parts]
        message = signing.round_message(timestamp, req.Iteration(), *parts)
        return SignedRequest(fl_id, timestamp, _bytes(req, self.signature), message)


# The secure-aggregation rounds (spec §5.1): request table and signing rule of each, for their table rows
# (`signed=cipher_rule("exchangeKeys", refuse)`).
CIPHER_TABLES = {
    "exchangeKeys": ("RequestExchangeKeys", {"parts": ("CPk", "SPk")}),
    "getKeys": ("GetExchangeKeys", {}),
    "shareSecrets": ("RequestShareSecrets", {}),
    "getSecrets": ("GetShareSecrets", {}),
    "getClientList": ("GetClientList", {}),
    "reconstructSecrets": ("SendReconstructSecret", {}),
    "pushListSign": ("SendClientListSign", {"signature": "ReqSignature"}),
    "getListSign": ("RequestAllClientListSign", {}),
}


def cipher_rule(round_name, refuse):
    """The Signed rule of cipher round `round_name`, refusing with `refuse(host, retcode, reason)`."""
    table, options = CIPHER_TABLES[round_name]
    return Signed(table, refuse, **options)


def read_start_proof(body) -> Optional[StartProof]:
    """startFLJob's proof, None when a PKI field is missing (the reference's field check)."""
    req = _table("RequestFLJob").GetRootAs(body, 0)
    texts = [_text(v) for v in (req.FlId(), req.Timestamp(), req.KeyAttestation(), req.EquipCert(),
                                req.EquipCaCert())]
    if any(t is None for t in texts) or req.SignDataIsNone():
        return None
    fl_id, timestamp, attestation, equip, equip_ca = texts
    return StartProof(fl_id, timestamp, _bytes(req, "SignData"), attestation, equip, equip_ca)


async def check(host, verifier, rnd, body):
    """None when the request of signed round `rnd` may go on to its handler, else the refusal reply."""
    rule = rnd.signed
    if rnd.verifier is None and not _core.verify(rule.table, body):
        return rnd.bad_body(host)
    if rule.proves_device:
        return await _check_start(host, verifier, rule, body)
    req = rule.read(body)
    if req is None:
        return rule.refuse(host, REQUEST_ERROR, rule.failed.format(fl_id=""))
    ctx = host.ctx
    pem = await host.state.key_attestation(ctx.inst, ctx.iteration, req.fl_id)
    if pem is None:
        return rule.refuse(host, OUT_OF_TIME, rule.stale.format(fl_id=req.fl_id))
    loop = asyncio.get_running_loop()
    if not await loop.run_in_executor(None, verifier.signed, pem, req.message, req.signature):
        return rule.refuse(host, REQUEST_ERROR, rule.failed.format(fl_id=req.fl_id))
    if not verifier.fresh(req.timestamp, now_ms()):
        return rule.refuse(host, OUT_OF_TIME, rule.stale.format(fl_id=req.fl_id))
    return None


async def _check_start(host, verifier, rule, body):
    proof = read_start_proof(body)
    if proof is None or not proof.fl_id:
        return errors.FLJOB_VERIFY.encode()  # spec §3.7: answered as plain text
    if not proof.sign_data:
        return rule.refuse(host, REQUEST_ERROR, errors.FLJOB_SIGN_EMPTY)
    loop = asyncio.get_running_loop()
    if not await loop.run_in_executor(None, verifier.verify_start, proof, now_ms()):
        return rule.refuse(host, REQUEST_ERROR, errors.FLJOB_SIGN)
    ctx = host.ctx
    await host.state.put_key_attestation(ctx.inst, ctx.iteration, proof.fl_id, proof.key_attestation)
    return None
