"""Hybrid-training device rounds: pullWeight, pushWeight, pushMetrics (bodies verified by the C++ verifier).

Each handler takes the RoundHost (server/round_table.py) and the body, and returns the reply bytes."""
import math

from mindspore_federated import errors
from mindspore_federated.schema.fbs import RequestPullWeight, RequestPushMetrics, RequestPushWeight
from mindspore_federated.server import replies
from mindspore_federated.server.replies import REQUEST_ERROR, SUC_NOT_READY, SUCCEED


def _str(value):
    return value.decode("utf-8", "replace") if value is not None else None


def pull_weight(host, body):
    """The devices' aggregate of the current iteration; not ready before (a server that did not aggregate
    fetches it from a peer meanwhile, for the worker's next poll)."""
    ctx = host.ctx
    req = RequestPullWeight.RequestPullWeight.GetRootAs(body, 0)
    current = ctx.iteration
    if req.Iteration() != current:
        return replies.pull_weight(SUC_NOT_READY, errors.PULL_ITERATION.format(
            iteration=req.Iteration(), current=current), current)
    names = [_str(req.WeightNames(i)) for i in range(req.WeightNamesLength())] or ctx.spec.reply_order
    for name in names:   # the names are checked against the declared model, ready or not
        if name not in ctx.spec.sizes:
            return replies.pull_weight(REQUEST_ERROR, errors.PULL_UNKNOWN.format(name=name), current)
    model = host.lifecycle.device_model_here(current)
    if model is None:
        return replies.pull_weight(SUC_NOT_READY, errors.PULL_NOT_DONE, current)
    return replies.pull_weight(SUCCEED, "", current, model, names)


async def push_weight(host, body):
    ctx = host.ctx
    req = RequestPushWeight.RequestPushWeight.GetRootAs(body, 0)
    current = ctx.iteration
    if req.Iteration() != current:
        return replies.push_weight(SUC_NOT_READY, errors.PUSH_ITERATION.format(
            iteration=req.Iteration(), current=current), current)
    if req.FeatureMapLength() == 0:
        return replies.push_weight(SUC_NOT_READY, errors.PUSH_EMPTY, current)
    pushed = {}
    for i in range(req.FeatureMapLength()):
        fm = req.FeatureMap(i)
        name, data = _str(fm.WeightFullname()), fm.DataAsNumpy()
        if name in ctx.spec.sizes and not isinstance(data, int) and data.size == ctx.spec.sizes[name]:
            pushed[name] = data
    claimed = await host.state.claim(ctx.inst, current, "pushWeight", ctx.node_id)
    if claimed != ctx.node_id or ctx.iteration != current or not host.lifecycle.push_model(current, pushed):
        return replies.push_weight(SUCCEED, errors.PUSH_FINISHED.format(iteration=current), current)
    return replies.push_weight(SUCCEED, errors.PUSH_SUCCESS, current)


async def push_metrics(host, body):
    req = RequestPushMetrics.RequestPushMetrics.GetRootAs(body, 0)
    if not (math.isfinite(req.Loss()) and math.isfinite(req.Accuracy())):
        return replies.push_metrics(REQUEST_ERROR)
    await host.lifecycle.push_metrics(req.Loss(), req.Accuracy())
    return replies.push_metrics(SUCCEED)
