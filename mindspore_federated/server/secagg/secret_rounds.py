"""shareSecrets and getSecrets (spec §5.1): encrypted Shamir shares from each device to each other device."""
from mindspore_federated import errors
from mindspore_federated.schema.fbs import GetShareSecrets, RequestShareSecrets
from mindspore_federated.schema.tables import tables
from mindspore_federated.server.replies import OUT_OF_TIME, REQUEST_ERROR, SUC_NOT_READY, SUCCEED
from mindspore_federated.server.secagg import common, wire
from mindspore_federated.server.secagg.common import Incoming, answer, blob, counted, next_req_time, text
from mindspore_federated.server.secagg.records import decode_share, encode_share, share_field
from mindspore_federated.state.base import Need, Outcome

MAX_SHARE_BYTES = 1024  # an encrypted share is ~80 bytes (IV + AES-CBC of two ~33-byte shares)


def _shares_of(req, sender):
    """{items field: encoded share} of a RequestShareSecrets, or None when an entry is malformed."""
    items = {}
    for entry in tables(req, "EncryptedShares"):
        recipient, share = text(entry, "FlId"), blob(entry, "Share")
        if not recipient or recipient == sender or not 0 < len(share) <= MAX_SHARE_BYTES:
            return None
        field = share_field(recipient, sender)
        if field in items:
            return None
        items[field] = encode_share(entry.Index(), share)
    return items


def bad_share_secrets(host):
    return wire.share_secrets(REQUEST_ERROR, errors.SS_SCHEMA, next_req_time(), host.ctx.iteration)


async def share_secrets(host, body):
    ctx = host.ctx
    inc = Incoming(host, RequestShareSecrets, body, lambda rc, why, it: wire.share_secrets(
        rc, why, next_req_time(), it))
    iteration, fl_id, reply = inc.iteration, inc.fl_id, inc.reply
    items = _shares_of(inc.req, fl_id) if fl_id else None
    if not items:
        return reply(REQUEST_ERROR, errors.SS_VERIFY)
    if inc.late:
        return reply(OUT_OF_TIME, errors.SS_ITERATION)
    result = await host.state.cipher_submit(ctx.inst, iteration, "shareSecrets",
                                            ctx.cipher.thresholds["shareSecrets"], fl_id, b"", Need("getKeys"),
                                            items, int(next_req_time()))
    return answer(host, "shareSecrets", result, reply, {
        Outcome.THRESHOLD_REACHED: (OUT_OF_TIME, errors.SS_ENOUGH),
        Outcome.NOT_MEMBER: (REQUEST_ERROR, errors.SS_NOT_MEMBER),
        Outcome.DUPLICATE: (SUCCEED, errors.SS_DUPLICATE)}, (SUCCEED, errors.SS_SUCCESS))


def bad_get_secrets(host):
    return wire.get_secrets(REQUEST_ERROR, host.ctx.iteration, next_req_time())


async def get_secrets(host, body):
    ctx = host.ctx
    inc = Incoming(host, GetShareSecrets, body)
    iteration, fl_id = inc.iteration, inc.fl_id
    if not fl_id:
        return wire.get_secrets(REQUEST_ERROR, iteration, next_req_time())
    if inc.late:
        return wire.get_secrets(OUT_OF_TIME, iteration, next_req_time())
    result = await host.state.cipher_join(ctx.inst, iteration, "getSecrets", fl_id, Need("shareSecrets"),
                                          "shareSecrets", ctx.cipher.thresholds["shareSecrets"],
                                          int(next_req_time()))
    outcome = host.gate.check_state_result(result)
    if outcome is Outcome.NOT_READY:
        return wire.get_secrets(SUC_NOT_READY, iteration, next_req_time())
    if outcome is Outcome.NOT_MEMBER:
        return wire.get_secrets(REQUEST_ERROR, iteration, next_req_time())
    counted(host, "getSecrets", result)

    async def all_senders():  # shareSecrets is closed (at its threshold): its senders are final for the iteration
        return tuple(sorted(await host.state.cipher_values(ctx.inst, iteration, "shareSecrets")))
    everyone = await common.cached_reply(ctx, ("shareSecrets senders", iteration), all_senders)
    senders = [s for s in everyone if s != fl_id]
    raw = await host.state.cipher_items(ctx.inst, iteration, "shareSecrets",
                                        [share_field(fl_id, s) for s in senders])
    shares = []
    for sender, item in zip(senders, raw):
        if item is not None:
            index, share = decode_share(item)
            shares.append((sender, share, index))
    return wire.get_secrets(SUCCEED, iteration, next_req_time(), shares)
