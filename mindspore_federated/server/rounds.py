"""Device rounds (startFLJob, updateModel, getModel, pullWeight, pushWeight, pushMetrics): validation in
the reference's order, retcodes and reason texts. Bodies were verified by the C++ verifier before."""
import json
import math
import time

import numpy as np

from mindspore_federated import _core, errors
from mindspore_federated.schema.fbs import (
    RequestFLJob,
    RequestGetModel,
    RequestPullWeight,
    RequestPushMetrics,
    RequestPushWeight,
)
from mindspore_federated.server import replies
from mindspore_federated.server.replies import OUT_OF_TIME, REQUEST_ERROR, SUC_NOT_READY, SUCCEED
from mindspore_federated.state.base import Outcome

MAX_DATA_SIZE = 65535
QUANT = 2


class Unavailable(Exception):
    """The request cannot be served now; the plain-text reply is the message."""


def _str(value):
    return value.decode("utf-8", "replace") if value is not None else None


def now_ms():
    return int(time.time() * 1000)


def _wants_quant(req, length_fn, item_fn):
    return any(item_fn(i) == QUANT for i in range(length_fn()))


class Rounds:
    """Round handlers bound to one server (`node`): each takes a verified body and returns reply bytes."""

    def __init__(self, node):
        self.node = node

    # ---- startFLJob ---------------------------------------------------------------------------
    async def start_fl_job(self, body):
        node, stats = self.node, self.node.stats
        if not node.has_current_model():
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
        iteration = node.iteration
        result = await node.state.start_fl_job(node.inst, iteration, node.threshold_start, fl_id, meta, now_ms(),
                                               local_error)
        outcome = node.check_state_result(result)
        stats.start_total += 1  # every reply of the round counts in "total" (spec §8.2), accepted or not
        if outcome is Outcome.THRESHOLD_REACHED:
            return self._fl_job_reject(errors.FLJOB_THRESHOLD)
        if outcome is Outcome.LOCAL_ERROR:
            return self._fl_job_reject(errors.FLJOB_DATA_SMALL if local_error == 1 else errors.FLJOB_DATA_LARGE)
        if outcome is Outcome.DUPLICATE:
            return self._fl_job_reject(errors.FLJOB_DEVICE_META.format(fl_id=fl_id))
        node.on_round_started("startFLJob", result.window_start_ms)
        stats.start_accept += 1
        if result.count >= node.threshold_start:
            node.on_round_complete("startFLJob")
        compress = "QUANT" if node.download_quant and _wants_quant(
            req, req.DownloadCompressTypesLength, req.DownloadCompressTypes) else None
        return node.cached_fl_job_reply(compress)

    def _fl_job_reject(self, reason):
        node = self.node
        return replies.fl_job(OUT_OF_TIME, reason, node.iteration, node.next_req_time())

    # ---- updateModel --------------------------------------------------------------------------
    def _check_features(self, body, spans):
        """(local_error, missing name, arrays): 1 feature verify failed, 3 empty map, 2 missing weight, 0 ok.

        Arrays are zero-copy float32 views into the request body."""
        spec = self.node.spec
        arrays = {}
        for name, offset, count, finite in spans:
            if not finite or spec.sizes.get(name) != count:
                return 1, None, None
            arrays[name] = np.frombuffer(body, np.float32, count, offset)
        if not arrays:
            return 3, None, None
        missing = min((name for name in spec.aggregated if name not in arrays), default=None)
        if missing is not None:  # the reference names the first missing weight in sorted name order
            return 2, missing, None
        return 0, None, arrays

    async def update_model(self, body):
        """Returns None when the body is not a valid RequestUpdateModel (verified and read in one C++ pass)."""
        node, stats = self.node, self.node.stats
        parsed = _core.read_update_model(body)
        stats.update_total += 1  # every reply of the round counts in "total" (spec §8.2), accepted or not
        if parsed is None:
            return None
        fields_ok, fl_id, req_iteration, loss, accuracy, _sign, spans = parsed
        if not fields_ok:
            return replies.update_model(REQUEST_ERROR, errors.UPDATE_VERIFY, node.next_req_time())
        local_error, missing, arrays = self._check_features(body, spans)
        iteration = node.iteration
        # Small updates are accumulated without suspending right after the script answers, so the script
        # may count them for aggregation at once (one round trip); large ones are counted after accumulating.
        inline = node.acc.is_inline(arrays)
        result = await node.state.update_model(node.inst, iteration, node.threshold_update, fl_id, node.node_id,
                                               req_iteration, local_error, now_ms(), count_now=inline)
        outcome = node.check_state_result(result)
        if outcome is Outcome.DUPLICATE:  # a retry of an accepted update (its reply was lost): counted once
            return node.cached_update_reply()
        if outcome is not Outcome.ACCEPTED:
            return self._update_reject(outcome, local_error, fl_id, req_iteration, missing)
        node.on_round_started("updateModel", None)
        await node.accumulate(iteration, arrays, result.meta, loss, accuracy)
        stats.update_accept += 1
        if inline:
            await node.on_aggregation_count(iteration, result.aggregated)
        else:
            await node.count_for_aggregation(iteration)
        return node.cached_update_reply()

    def _update_reject(self, outcome, local_error, fl_id, req_iteration, missing):
        node = self.node
        next_time = node.next_req_time()
        if outcome is Outcome.THRESHOLD_REACHED:
            return replies.update_model(OUT_OF_TIME, errors.UPDATE_ENOUGH, next_time)
        if outcome is Outcome.NO_DEVICE_META:
            return replies.update_model(OUT_OF_TIME, errors.UPDATE_NO_META.format(fl_id=fl_id), next_time)
        if outcome is Outcome.WRONG_ITERATION:
            return replies.update_model(OUT_OF_TIME, errors.UPDATE_ITERATION.format(
                iteration=req_iteration, current=node.iteration, next_time=next_time, fl_id=fl_id), next_time)
        if outcome is Outcome.LOCAL_ERROR:
            reason = {1: errors.UPDATE_FEATURES.format(next_time=next_time),
                      2: errors.UPDATE_MISSING_WEIGHT.format(name=missing, fl_id=fl_id),
                      3: errors.UPDATE_EMPTY.format(fl_id=fl_id)}[local_error]
            return replies.update_model(REQUEST_ERROR, reason, next_time)
        return replies.update_model(OUT_OF_TIME, errors.UPDATE_DUPLICATE.format(fl_id=fl_id), next_time)

    # ---- getModel -----------------------------------------------------------------------------
    def get_model(self, body):
        node, stats = self.node, self.node.stats
        req = RequestGetModel.RequestGetModel.GetRootAs(body, 0)
        stats.get_total += 1
        current = node.iteration
        requested = req.Iteration()
        model_iteration = requested if node.store.get(requested) is not None else current - 1
        if (requested == current and node.store.newest_iteration() < current) or \
                node.store.get(model_iteration) is None:
            return replies.get_model(SUC_NOT_READY, errors.GETMODEL_NOT_READY.format(iteration=current), current,
                                     node.next_req_time())
        stats.get_accept += 1
        compress = "QUANT" if node.download_quant and _wants_quant(
            req, req.DownloadCompressTypesLength, req.DownloadCompressTypes) else None
        return node.cached_get_model_reply(model_iteration, compress)

    # ---- hybrid rounds ------------------------------------------------------------------------
    def pull_weight(self, body):
        node = self.node
        req = RequestPullWeight.RequestPullWeight.GetRootAs(body, 0)
        current = node.iteration
        if req.Iteration() != current:
            return replies.pull_weight(SUC_NOT_READY, errors.PULL_ITERATION.format(
                iteration=req.Iteration(), current=current), current)
        model = node.store.get(current - 1)
        if model is None:
            return replies.pull_weight(SUC_NOT_READY, errors.PULL_NOT_DONE, current)
        names = [_str(req.WeightNames(i)) for i in range(req.WeightNamesLength())] or node.spec.reply_order
        for name in names:
            if name not in model.weights:
                return replies.pull_weight(REQUEST_ERROR, errors.PULL_UNKNOWN.format(name=name), current)
        return replies.pull_weight(SUCCEED, "", current, model, names)

    async def push_weight(self, body):
        node = self.node
        req = RequestPushWeight.RequestPushWeight.GetRootAs(body, 0)
        current = node.iteration
        if req.Iteration() != current:
            return replies.push_weight(SUC_NOT_READY, errors.PUSH_ITERATION.format(
                iteration=req.Iteration(), current=current), current)
        if req.FeatureMapLength() == 0:
            return replies.push_weight(SUC_NOT_READY, errors.PUSH_EMPTY, current)
        pushed = {}
        for i in range(req.FeatureMapLength()):
            fm = req.FeatureMap(i)
            name, data = _str(fm.WeightFullname()), fm.DataAsNumpy()
            if name in node.spec.sizes and not isinstance(data, int) and data.size == node.spec.sizes[name]:
                pushed[name] = data
        if not await node.push_model(current, pushed):
            return replies.push_weight(SUCCEED, errors.PUSH_FINISHED.format(iteration=current), current)
        return replies.push_weight(SUCCEED, errors.PUSH_SUCCESS, current)

    async def push_metrics(self, body):
        node = self.node
        req = RequestPushMetrics.RequestPushMetrics.GetRootAs(body, 0)
        if not (math.isfinite(req.Loss()) and math.isfinite(req.Accuracy())):
            return replies.push_metrics(REQUEST_ERROR)
        await node.on_push_metrics(req.Loss(), req.Accuracy())
        return replies.push_metrics(SUCCEED)
