"""FedAvg device rounds (startFLJob, updateModel, getModel): validation in the reference's order, retcodes and
reason texts, and the cached success replies. Bodies were verified by the C++ verifier before.

Each handler takes the RoundHost (server/round_table.py) and the body, and returns the reply bytes."""
import json

import numpy as np

from mindspore_federated import _core, errors
from mindspore_federated.clock import now_ms
from mindspore_federated.errors import Unavailable
from mindspore_federated.metrics.server import count_rejected_update, count_unverified_update
from mindspore_federated.schema.fbs import RequestFLJob, RequestGetModel
from mindspore_federated.server import replies
from mindspore_federated.server.compressed import upload_compression
from mindspore_federated.server.replies import OUT_OF_TIME, REQUEST_ERROR, SUC_NOT_READY, SUCCEED
from mindspore_federated.server.secagg import signds
from mindspore_federated.server.secagg.settings import SIGNDS
from mindspore_federated.state.base import Outcome

MAX_DATA_SIZE = 65535
QUANT = 2
COMPRESS_ERROR = 4  # local error: a compressed upload failed its checks (`detail` says which)
PLAN_DEFAULTS = (("reconstruct_secrets_threshold", 1), ("dp_eps", 50.0), ("dp_delta", 0.01),
                 ("dp_norm_clip", 1.0), ("sign_k", 0.01), ("sign_eps", 100.0), ("sign_thr_ratio", 0.6),
                 ("sign_global_lr", 0.1), ("sign_dim_out", 0), ("encrypt_type", "NOT_ENCRYPT"))


def _str(value):
    return value.decode("utf-8", "replace") if value is not None else None


def _wants_quant(req, length_fn, item_fn):
    return any(item_fn(i) == QUANT for i in range(length_fn()))


def download_compress(ctx, req):
    """The download compression: QUANT when the cluster compresses and the device accepts it, else None."""
    if not ctx.download_quant:
        return None
    return "QUANT" if _wants_quant(req, req.DownloadCompressTypesLength, req.DownloadCompressTypes) else None


def fl_plan(ctx):
    """The FL plan a startFLJob reply carries: the hyper-parameters with the reference's defaults."""
    plan = dict(ctx.hp)
    plan.update(fl_name=ctx.cfg.fl_name, server_mode=ctx.cfg.server_mode,
                upload_compress_type=upload_compression(ctx.hp))
    for key, default in PLAN_DEFAULTS:
        plan.setdefault(key, default)
    plan["prime"] = ctx.cipher.prime
    return plan


# ---- startFLJob -------------------------------------------------------------------------------
async def start_fl_job(host, body):
    ctx, stats = host.ctx, host.ctx.stats
    if not ctx.has_current_model():
        raise Unavailable(errors.SAFEMODE)
    req = RequestFLJob.RequestFLJob.GetRootAs(body, 0)
    fl_id, ts = _str(req.FlId()), _str(req.Timestamp())
    if not fl_id or req.FlName() is None or ts is None:
        # spec §3.1/§3.7: the field-presence failure is answered with the reason as plain text
        stats.start_total += 1
        return errors.FLJOB_VERIFY.encode()
    data_size = req.DataSize()
    local_error = 1 if data_size < 1 else 2 if data_size > MAX_DATA_SIZE else 0
    meta = json.dumps({"data_size": data_size, "now_time": now_ms(), "eval_data_size": req.EvalDataSize()})
    iteration = ctx.iteration
    result = await host.state.start_fl_job(ctx.inst, iteration, ctx.threshold_start, fl_id, meta, now_ms(),
                                           local_error)
    outcome = host.gate.check_state_result(result)
    stats.start_total += 1  # every reply of the round counts in "total" (spec §8.2), accepted or not
    if outcome is Outcome.THRESHOLD_REACHED:
        return _fl_job_reject(host, errors.FLJOB_THRESHOLD)
    if outcome is Outcome.LOCAL_ERROR:
        return _fl_job_reject(host, errors.FLJOB_DATA_SMALL if local_error == 1 else errors.FLJOB_DATA_LARGE)
    if outcome is Outcome.DUPLICATE:
        return _fl_job_reject(host, errors.FLJOB_DEVICE_META.format(fl_id=fl_id))
    host.windows.started("startFLJob", result.window_start_ms)
    stats.start_accept += 1
    if result.count >= ctx.threshold_start:
        host.windows.complete("startFLJob")
    return cached_fl_job_reply(host, download_compress(ctx, req))


def _fl_job_reject(host, reason):
    return replies.fl_job(OUT_OF_TIME, reason, host.ctx.iteration, host.windows.next_req_time())


def cached_fl_job_reply(host, compress):
    ctx = host.ctx
    it, nxt = ctx.iteration, host.windows.next_req_time()
    return ctx.replies.get(("fl", it, nxt, compress), lambda: replies.fl_job(
        SUCCEED, errors.FLJOB_SUCCESS, it, nxt, fl_plan(ctx), ctx.model_for(it - 1), ctx.spec.reply_order,
        compress))


# ---- updateModel ------------------------------------------------------------------------------
def _check_features(spec, body, spans, tolerate_missing=False):
    """(local_error, missing name, arrays): 1 feature verify failed, 3 empty map, 2 missing weight, 0 ok.

    Arrays are zero-copy float32 views into the request body. Hybrid training tolerates missing weights."""
    arrays = {}
    for name, offset, count, finite in spans:
        if not finite or spec.sizes.get(name) != count:
            return 1, None, None
        arrays[name] = np.frombuffer(body, np.float32, count, offset)
    if not arrays:
        return 3, None, None
    missing = None if tolerate_missing else min((n for n in spec.aggregated if n not in arrays), default=None)
    if missing is not None:  # the reference names the first missing weight in sorted name order
        return 2, missing, None
    return 0, None, arrays


async def update_model(host, body):
    """Returns None when the body is not a valid RequestUpdateModel (verified and read in one C++ pass)."""
    ctx, stats = host.ctx, host.ctx.stats
    parsed = _core.read_update_model(body)
    stats.update_total += 1  # every reply of the round counts in "total" (spec §8.2), accepted or not
    if parsed is None:
        return None
    fields_ok, fl_id, req_iteration, loss, accuracy, sign, spans, compressed = parsed
    if not fields_ok:
        count_unverified_update()
        return replies.update_model(REQUEST_ERROR, errors.UPDATE_VERIFY, host.windows.next_req_time())
    signds_upload = sign != 0 and ctx.cipher.mode == SIGNDS
    if signds_upload:
        local_error, detail, arrays = signds.rebuild(ctx, body, spans, sign)
    elif compressed is None:
        local_error, detail, arrays = _check_features(ctx.spec, body, spans, ctx.hybrid)
    else:  # DIFF_SPARSE_QUANT: checked in full here, decoded into the accumulator once accepted
        detail, arrays = ctx.decoder.check(ctx, body, req_iteration, compressed)
        local_error = COMPRESS_ERROR if detail else 0
    iteration = ctx.iteration
    # Small updates are accumulated without suspending right after the script answers, so the script
    # may count them for aggregation at once (one round trip); large ones are counted after accumulating.
    inline = ctx.acc.is_inline(arrays)
    result = await host.state.update_model(ctx.inst, iteration, ctx.threshold_update, fl_id, ctx.node_id,
                                           req_iteration, local_error, now_ms(), count_now=inline,
                                           need_secrets=ctx.cipher.pw)
    outcome = host.gate.check_state_result(result)
    if outcome is Outcome.DUPLICATE:  # a retry of an accepted update (its reply was lost): counted once
        return cached_update_reply(host)
    if outcome is not Outcome.ACCEPTED:
        return _update_reject(host, outcome, local_error, fl_id, req_iteration, detail)
    host.windows.started("updateModel", None)
    if signds_upload:
        signds.weight(arrays, result.meta["data_size"])
    await host.lifecycle.accumulate(iteration, arrays, result.meta, loss, accuracy)
    stats.update_accept += 1
    if inline:
        await host.lifecycle.on_aggregation_count(iteration, result.aggregated)
    else:
        await host.lifecycle.count_for_aggregation(iteration)
    return cached_update_reply(host)


def _update_reject(host, outcome, local_error, fl_id, req_iteration, detail):
    count_rejected_update(outcome, local_error)
    next_time = host.windows.next_req_time()
    if outcome is Outcome.THRESHOLD_REACHED:
        return replies.update_model(OUT_OF_TIME, errors.UPDATE_ENOUGH, next_time)
    if outcome is Outcome.NO_DEVICE_META:
        return replies.update_model(OUT_OF_TIME, errors.UPDATE_NO_META.format(fl_id=fl_id), next_time)
    if outcome is Outcome.WRONG_ITERATION:
        return replies.update_model(OUT_OF_TIME, errors.UPDATE_ITERATION.format(
            iteration=req_iteration, current=host.ctx.iteration, next_time=next_time, fl_id=fl_id), next_time)
    if outcome is Outcome.NOT_MEMBER:
        return replies.update_model(OUT_OF_TIME, errors.UPDATE_NOT_SECRETS.format(fl_id=fl_id), next_time)
    if outcome is Outcome.LOCAL_ERROR and local_error == COMPRESS_ERROR:
        reason = errors.COMPRESS_REJECTED.format(fl_id=fl_id, detail=detail, next_time=next_time)
        return replies.update_model(REQUEST_ERROR, reason, next_time)
    if outcome is Outcome.LOCAL_ERROR:
        reason = {1: errors.UPDATE_FEATURES.format(next_time=next_time),
                  2: errors.UPDATE_MISSING_WEIGHT.format(name=detail, fl_id=fl_id),
                  3: errors.UPDATE_EMPTY.format(fl_id=fl_id)}[local_error]
        return replies.update_model(REQUEST_ERROR, reason, next_time)
    return replies.update_model(OUT_OF_TIME, errors.UPDATE_DUPLICATE.format(fl_id=fl_id), next_time)


def cached_update_reply(host):
    nxt = host.windows.next_req_time()
    return host.ctx.replies.get(("um", nxt),
                                lambda: replies.update_model(SUCCEED, errors.UPDATE_SUCCESS, nxt))


# ---- getModel ---------------------------------------------------------------------------------
def get_model(host, body):
    ctx, stats = host.ctx, host.ctx.stats
    req = RequestGetModel.RequestGetModel.GetRootAs(body, 0)
    stats.get_total += 1
    current = ctx.iteration
    requested = req.Iteration()
    model_iteration = requested if ctx.store.get(requested) is not None else current - 1
    if (requested == current and ctx.store.newest_iteration() < current) or \
            ctx.store.get(model_iteration) is None:
        return replies.get_model(SUC_NOT_READY, errors.GETMODEL_NOT_READY.format(iteration=current), current,
                                 host.windows.next_req_time())
    stats.get_accept += 1
    return cached_get_model_reply(host, model_iteration, download_compress(ctx, req))


def cached_get_model_reply(host, model_iteration, compress):
    ctx = host.ctx
    it = ctx.iteration
    return ctx.replies.get(("gm", it, model_iteration, compress), lambda: replies.get_model(
        SUCCEED, errors.GETMODEL_SUCCESS.format(iteration=it), it, "", ctx.model_for(model_iteration),
        ctx.spec.reply_order, compress))
