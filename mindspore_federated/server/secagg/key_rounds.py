"""exchangeKeys and getKeys (spec §5.1; STABLE_PW_ENCRYPT runs only these two)."""
from mindspore_federated import errors
from mindspore_federated.schema.fbs import GetExchangeKeys, RequestExchangeKeys
from mindspore_federated.server.replies import OUT_OF_TIME, REQUEST_ERROR, SUC_NOT_READY, SUCCEED
from mindspore_federated.server.secagg import wire
from mindspore_federated.server.secagg.common import (
    IV_BYTES,
    KEY_BYTES,
    SALT_BYTES,
    Incoming,
    answer,
    blob,
    cached_reply,
    counted,
    next_req_time,
    text,
)
from mindspore_federated.server.secagg.records import KeyRecord
from mindspore_federated.state.base import Need, Outcome


def _key_record(req, pw):
    """The KeyRecord of a request, or None when a key, IV or salt is missing or has the wrong size."""
    fl_id = text(req, "FlId")
    rec = KeyRecord(fl_id or "", blob(req, "CPk"), blob(req, "SPk"), blob(req, "IndIv"), blob(req, "PwIv"),
                    blob(req, "PwSalt"), text(req, "Timestamp") or "", req.Iteration(), blob(req, "Signature"),
                    tuple(req.CertificateChain(i).decode("utf-8", "replace")
                          for i in range(req.CertificateChainLength())))
    sizes_ok = len(rec.s_pk) == KEY_BYTES and len(rec.pw_iv) == IV_BYTES and len(rec.pw_salt) == SALT_BYTES
    if pw:
        sizes_ok = sizes_ok and len(rec.c_pk) == KEY_BYTES and len(rec.ind_iv) == IV_BYTES
    return rec if fl_id and sizes_ok else None


def bad_exchange_keys(host):
    return wire.exchange_keys(REQUEST_ERROR, errors.EK_SCHEMA, next_req_time(), host.ctx.iteration)


async def exchange_keys(host, body):
    ctx = host.ctx
    inc = Incoming(host, RequestExchangeKeys, body, lambda rc, why, it: wire.exchange_keys(
        rc, why, next_req_time(), it))
    iteration, reply = inc.iteration, inc.reply
    rec = _key_record(inc.req, ctx.cipher.pw)
    if rec is None:
        return reply(REQUEST_ERROR, errors.EK_VERIFY)
    if inc.late:
        return reply(OUT_OF_TIME, errors.CIPHER_ITERATION)
    if not ctx.cipher.pw:  # STABLE_PW_ENCRYPT keeps only the pairwise key, IV and salt
        rec.c_pk, rec.ind_iv = b"", b""
    result = await host.state.cipher_submit(ctx.inst, iteration, "exchangeKeys",
                                            ctx.cipher.thresholds["exchangeKeys"], rec.fl_id, rec.encode(),
                                            Need("startFLJob"), None, int(next_req_time()))
    return answer(host, "exchangeKeys", result, reply, {
        Outcome.THRESHOLD_REACHED: (OUT_OF_TIME, errors.EK_ENOUGH),
        Outcome.NOT_MEMBER: (OUT_OF_TIME, errors.EK_NO_META.format(fl_id=rec.fl_id)),
        Outcome.DUPLICATE: (SUCCEED, errors.EK_DUPLICATE)}, (SUCCEED, errors.EK_SUCCESS))


def bad_get_keys(host):
    return wire.get_keys(REQUEST_ERROR, host.ctx.iteration, next_req_time())


async def stored_keys(host, iteration):
    """Every KeyRecord of `iteration`, in fl_id order."""
    values = await host.state.cipher_values(host.ctx.inst, iteration, "exchangeKeys")
    return [KeyRecord.decode(values[fl_id]) for fl_id in sorted(values)]


async def get_keys(host, body):
    ctx = host.ctx
    inc = Incoming(host, GetExchangeKeys, body)
    iteration, fl_id = inc.iteration, inc.fl_id
    if not fl_id:
        return wire.get_keys(REQUEST_ERROR, iteration, next_req_time())
    if inc.late:
        return wire.get_keys(OUT_OF_TIME, iteration, next_req_time())
    th = ctx.cipher.thresholds
    result = await host.state.cipher_join(ctx.inst, iteration, "getKeys", fl_id, Need("exchangeKeys"),
                                          "exchangeKeys", th["exchangeKeys"], int(next_req_time()))
    outcome = host.gate.check_state_result(result)
    if outcome is Outcome.NOT_READY:
        return wire.get_keys(SUC_NOT_READY, iteration, next_req_time())
    if outcome is Outcome.NOT_MEMBER:
        return wire.get_keys(REQUEST_ERROR, iteration, next_req_time())
    counted(host, "getKeys", result)
    pki = bool(ctx.hp.get("pki_verify"))


    async def build():  # exchangeKeys is closed (at its threshold): the key list is final for the iteration
        return wire.get_keys(SUCCEED, iteration, next_req_time(), await stored_keys(host, iteration), pki)
    return await cached_reply(ctx, ("getKeys", iteration), build)
