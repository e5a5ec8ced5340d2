"""After the uploads (spec §5.1): getClientList, reconstructSecrets, and the PKI list signatures
(pushListSign / getListSign; their signature checks come with client verification)."""
from mindspore_federated import errors
from mindspore_federated.schema.fbs import (
    GetClientList,
    RequestAllClientListSign,
    SendClientListSign,
    SendReconstructSecret,
)
from mindspore_federated.schema.tables import tables
from mindspore_federated.server.replies import OUT_OF_TIME, REQUEST_ERROR, SUC_NOT_READY, SUCCEED
from mindspore_federated.server.secagg import wire
from mindspore_federated.server.secagg.common import (
    Incoming,
    blob,
    cached_reply,
    counted,
    next_req_time,
    text,
)
from mindspore_federated.server.secagg.records import encode_shares
from mindspore_federated.state.base import Need, Outcome

MAX_SECRET_SHARE_BYTES = 64  # a Shamir share is at most the prime's 33 bytes


# ---- getClientList ----------------------------------------------------------------------------
def bad_client_list(host):
    return wire.client_list(REQUEST_ERROR, errors.GCL_SCHEMA, (), host.ctx.iteration, next_req_time())


async def client_list(host, body):
    ctx = host.ctx
    inc = Incoming(host, GetClientList, body,
                   lambda rc, why, it: wire.client_list(rc, why, (), it, next_req_time()))
    iteration, fl_id, reply = inc.iteration, inc.fl_id, inc.reply
    if not fl_id:
        return reply(REQUEST_ERROR, errors.GCL_VERIFY)
    if inc.late:
        return reply(OUT_OF_TIME, errors.CIPHER_ITERATION)
    result = await host.state.cipher_join(ctx.inst, iteration, "getClientList", fl_id, Need("updateModel", "s"),
                                          "updateModel", ctx.threshold_update, int(next_req_time()))
    outcome = host.gate.check_state_result(result)
    if outcome is Outcome.NOT_READY:
        return reply(SUC_NOT_READY, errors.GCL_NOT_READY)
    if outcome is Outcome.NOT_MEMBER:
        return reply(REQUEST_ERROR, errors.GCL_NOT_MEMBER.format(fl_id=fl_id))
    counted(host, "getClientList", result)

    async def build():  # updateModel is closed (at its threshold): the list is final for the iteration
        clients = sorted(await host.state.update_set(ctx.inst, iteration))
        return wire.client_list(SUCCEED, errors.GCL_SUCCESS, clients, iteration, next_req_time())
    return await cached_reply(ctx, ("getClientList", iteration), build)


# ---- reconstructSecrets -----------------------------------------------------------------------
def bad_reconstruct(host):
    return wire.reconstruct(REQUEST_ERROR, errors.RS_SCHEMA, host.ctx.iteration, next_req_time())


def _secret_shares(req):
    """[(owner, index, share)] of a SendReconstructSecret, or None when an entry is malformed."""
    out, owners = [], set()
    for entry in tables(req, "ReconstructSecretShares"):
        owner, share = text(entry, "FlId"), blob(entry, "Share")
        if not owner or owner in owners or not 0 < len(share) <= MAX_SECRET_SHARE_BYTES or entry.Index() <= 0:
            return None
        owners.add(owner)
        out.append((owner, entry.Index(), share))
    return out


async def _uploaded(host, iteration, fl_id):
    return fl_id in await host.state.update_set(host.ctx.inst, iteration)


async def reconstruct_secrets(host, body):
    ctx = host.ctx
    inc = Incoming(host, SendReconstructSecret, body,
                   lambda rc, why, it: wire.reconstruct(rc, why, it, next_req_time()))
    iteration, fl_id, req, reply = inc.iteration, inc.fl_id, inc.req, inc.reply
    shares = _secret_shares(req) if fl_id else None
    if not shares:
        return reply(REQUEST_ERROR, errors.RS_VERIFY)
    if inc.late:
        return reply(OUT_OF_TIME, errors.RS_ITERATION)
    needed = ctx.cipher.thresholds["reconstructSecrets"]
    result = await host.state.cipher_submit(ctx.inst, iteration, "reconstructSecrets", needed, fl_id,
                                            encode_shares(shares), Need("getClientList"), None,
                                            int(next_req_time()))
    outcome = host.gate.check_state_result(result)
    if outcome is Outcome.THRESHOLD_REACHED:
        uploaded = await _uploaded(host, iteration, fl_id)
        return reply(SUCCEED if uploaded else OUT_OF_TIME, errors.RS_ENOUGH)
    if outcome is Outcome.NOT_MEMBER:
        if await _uploaded(host, iteration, fl_id):
            return reply(SUCCEED, errors.RS_NOT_LISTED_UPLOADED.format(fl_id=fl_id))
        return reply(REQUEST_ERROR, errors.RS_NOT_UPLOADED)
    if outcome is Outcome.DUPLICATE:
        return reply(SUCCEED, errors.RS_DUPLICATE)
    counted(host, "reconstructSecrets", result)
    return reply(SUCCEED, errors.RS_RECONSTRUCTING if result.count >= needed else errors.RS_NOT_YET)


# ---- pushListSign / getListSign ---------------------------------------------------------------
def bad_push_list_sign(host):
    return wire.push_list_sign(REQUEST_ERROR, errors.PLS_SCHEMA, host.ctx.iteration, next_req_time())


async def push_list_sign(host, body):
    ctx = host.ctx
    inc = Incoming(host, SendClientListSign, body,
                   lambda rc, why, it: wire.push_list_sign(rc, why, it, next_req_time()))
    iteration, fl_id, req, reply = inc.iteration, inc.fl_id, inc.req, inc.reply
    if not fl_id:
        return reply(REQUEST_ERROR, errors.PLS_VERIFY)
    if inc.late:
        return reply(OUT_OF_TIME, errors.PLS_ITERATION)
    result = await host.state.cipher_submit(ctx.inst, iteration, "pushListSign",
                                            ctx.cipher.thresholds["pushListSign"], fl_id, blob(req, "Signature"),
                                            Need("getClientList"), None, int(next_req_time()))
    outcome = host.gate.check_state_result(result)
    if outcome in (Outcome.THRESHOLD_REACHED, Outcome.NOT_MEMBER):
        reason = errors.PLS_ENOUGH if outcome is Outcome.THRESHOLD_REACHED else errors.PLS_NOT_LISTED
        return reply(SUCCEED if await _uploaded(host, iteration, fl_id) else OUT_OF_TIME, reason)
    if outcome is Outcome.DUPLICATE:
        return reply(SUCCEED, errors.EK_DUPLICATE)
    counted(host, "pushListSign", result)
    return reply(SUCCEED, errors.PLS_SUCCESS)


def bad_get_list_sign(host):
    return wire.get_list_sign(REQUEST_ERROR, errors.GLS_SCHEMA, (), host.ctx.iteration, next_req_time())


async def get_list_sign(host, body):
    ctx = host.ctx
    inc = Incoming(host, RequestAllClientListSign, body)
    iteration, fl_id = inc.iteration, inc.fl_id

    def reply(retcode, reason, signs=()):
        return wire.get_list_sign(retcode, reason, signs, iteration, next_req_time())

    if not fl_id:
        return reply(REQUEST_ERROR, errors.GLS_VERIFY)
    if inc.late:
        return reply(OUT_OF_TIME, errors.CIPHER_ITERATION)
    result = await host.state.cipher_join(ctx.inst, iteration, "getListSign", fl_id, Need("pushListSign"),
                                          "pushListSign", ctx.cipher.thresholds["pushListSign"],
                                          int(next_req_time()))
    outcome = host.gate.check_state_result(result)
    if outcome is Outcome.NOT_READY:
        return reply(SUC_NOT_READY, errors.GLS_NOT_READY)
    signs = sorted((await host.state.cipher_values(ctx.inst, iteration, "pushListSign")).items())
    if outcome is Outcome.NOT_MEMBER:
        if await _uploaded(host, iteration, fl_id):
            return reply(SUCCEED, errors.GLS_NOT_SENT_UPLOADED, signs)
        return reply(OUT_OF_TIME, errors.GLS_NOT_SENT)
    counted(host, "getListSign", result)
    return reply(SUCCEED, errors.GLS_SUCCESS, signs)
