"""Flatbuffers replies of the device API, built with the generated tables. Replies that carry a model are
cached by the caller (server/node.py); the small ones (every error reply) are memoised here, since building
one with the Python flatbuffers builder costs tens of microseconds and a flood of bad requests repeats the
same few."""
import functools

import flatbuffers
import numpy as np

from mindspore_federated.schema.fbs import (
    CipherPublicParams,
    CompressFeatureMap,
    CompressType,
    DPParams,
    DSParams,
    FeatureMap,
    FLPlan,
    PWParams,
    ResponseFLJob,
    ResponseGetModel,
    ResponsePullWeight,
    ResponsePushMetrics,
    ResponsePushWeight,
    ResponseUpdateModel,
)

SUCCEED, SUC_NOT_READY, OUT_OF_TIME, REQUEST_ERROR, SYSTEM_ERROR = 200, 201, 300, 400, 500
COMPRESS_NAMES = {"NO_COMPRESS": CompressType.CompressType.NO_COMPRESS,
                  "DIFF_SPARSE_QUANT": CompressType.CompressType.DIFF_SPARSE_QUANT,
                  "QUANT": CompressType.CompressType.QUANT}


def _builder(payload_bytes=0):
    return flatbuffers.Builder(payload_bytes + 1024)


def _feature_vector(b, model, names, start_vector):
    """A vector of FeatureMap tables for `names` (in that order) of `model`."""
    tables = []
    for name in names:
        fname = b.CreateString(name)
        data = b.CreateNumpyVector(model.weights[name])
        FeatureMap.Start(b)
        FeatureMap.AddWeightFullname(b, fname)
        FeatureMap.AddData(b, data)
        tables.append(FeatureMap.End(b))
    return _offsets(b, tables, start_vector)


def _offsets(b, offsets, start_vector):
    start_vector(b, len(offsets))
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _compressed_vector(b, model, names, start_vector):
    tables = []
    for name in names:
        quant = model.quantized(name)
        fname = b.CreateString(name)
        data = b.CreateNumpyVector(quant.data)
        CompressFeatureMap.Start(b)
        CompressFeatureMap.AddWeightFullname(b, fname)
        CompressFeatureMap.AddCompressData(b, data)
        CompressFeatureMap.AddMinVal(b, quant.min_val)
        CompressFeatureMap.AddMaxVal(b, quant.max_val)
        tables.append(CompressFeatureMap.End(b))
    return _offsets(b, tables, start_vector)


def _cipher(b, plan):
    encrypt_type = b.CreateString(plan["encrypt_type"])
    p = b.CreateNumpyVector(np.zeros(32, np.uint8))
    prime = b.CreateNumpyVector(np.frombuffer(plan.get("prime", b"\0" * 33), np.uint8))
    PWParams.Start(b)
    PWParams.AddT(b, plan["reconstruct_secrets_threshold"])
    PWParams.AddP(b, p)
    PWParams.AddG(b, 1)
    PWParams.AddPrime(b, prime)
    pw = PWParams.End(b)
    DPParams.Start(b)
    DPParams.AddDpEps(b, plan["dp_eps"])
    DPParams.AddDpDelta(b, plan["dp_delta"])
    DPParams.AddDpNormClip(b, plan["dp_norm_clip"])
    dp = DPParams.End(b)
    DSParams.Start(b)
    DSParams.AddSignK(b, plan["sign_k"])
    DSParams.AddSignEps(b, plan["sign_eps"])
    DSParams.AddSignThrRatio(b, plan["sign_thr_ratio"])
    DSParams.AddSignGlobalLr(b, plan["sign_global_lr"])
    DSParams.AddSignDimOut(b, plan["sign_dim_out"])
    ds = DSParams.End(b)
    CipherPublicParams.Start(b)
    CipherPublicParams.AddEncryptType(b, encrypt_type)
    CipherPublicParams.AddPwParams(b, pw)
    CipherPublicParams.AddDpParams(b, dp)
    CipherPublicParams.AddDsParams(b, ds)
    return CipherPublicParams.End(b)


def _fl_plan(b, plan):
    cipher = _cipher(b, plan)
    server_mode = b.CreateString(plan["server_mode"])
    fl_name = b.CreateString(plan["fl_name"])
    FLPlan.Start(b)
    FLPlan.AddServerMode(b, server_mode)
    FLPlan.AddFlName(b, fl_name)
    FLPlan.AddIterations(b, plan["fl_iteration_num"])
    FLPlan.AddEpochs(b, plan["client_epoch_num"])
    FLPlan.AddMiniBatch(b, plan["client_batch_size"])
    FLPlan.AddLr(b, plan["client_learning_rate"])
    FLPlan.AddCipher(b, cipher)
    return FLPlan.End(b)


SMALL_REPLY_CACHE = 1024


def _small(build):
    """Memoises a builder of payload-free replies (all arguments hashable; the bytes are immutable)."""
    return functools.lru_cache(maxsize=SMALL_REPLY_CACHE)(build)


def fl_job(retcode, reason, iteration, next_req_time, plan=None, model=None, names=(), compress=None):
    """ResponseFLJob; `plan` (dict of hyper-params + fl_name/server_mode) and `model` only on success."""
    if plan is None and model is None:
        return _small_fl_job(retcode, reason, iteration, str(next_req_time))
    return _fl_job(retcode, reason, iteration, next_req_time, plan, model, names, compress)


@_small
def _small_fl_job(retcode, reason, iteration, next_req_time):
    return _fl_job(retcode, reason, iteration, next_req_time)


def _fl_job(retcode, reason, iteration, next_req_time, plan=None, model=None, names=(), compress=None):
    b = _builder(model.nbytes() if model is not None else 0)
    fm = cfm = plan_off = None
    if model is not None:
        if compress == "QUANT":
            cfm = _compressed_vector(b, model, names, ResponseFLJob.StartCompressFeatureMapVector)
        else:
            fm = _feature_vector(b, model, names, ResponseFLJob.StartFeatureMapVector)
    if plan is not None:
        plan_off = _fl_plan(b, plan)
    reason_off = b.CreateString(reason)
    next_off = b.CreateString(str(next_req_time))
    ResponseFLJob.Start(b)
    ResponseFLJob.AddRetcode(b, retcode)
    ResponseFLJob.AddReason(b, reason_off)
    ResponseFLJob.AddIteration(b, iteration)
    ResponseFLJob.AddIsSelected(b, retcode == SUCCEED)
    ResponseFLJob.AddNextReqTime(b, next_off)
    if plan_off is not None:
        ResponseFLJob.AddFlPlanConfig(b, plan_off)
        ResponseFLJob.AddUploadCompressType(b, COMPRESS_NAMES[plan.get("upload_compress_type", "NO_COMPRESS")])
        ResponseFLJob.AddUploadSparseRate(b, plan.get("upload_sparse_rate", 0.0))
    if fm is not None:
        ResponseFLJob.AddFeatureMap(b, fm)
    if cfm is not None:
        ResponseFLJob.AddCompressFeatureMap(b, cfm)
        ResponseFLJob.AddDownloadCompressType(b, COMPRESS_NAMES["QUANT"])
    b.Finish(ResponseFLJob.End(b))
    return bytes(b.Output())


def update_model(retcode, reason, next_req_time=""):
    """ResponseUpdateModel."""
    return _update_model(retcode, reason, str(next_req_time))


@_small
def _update_model(retcode, reason, next_req_time):
    b = _builder()
    reason_off = b.CreateString(reason)
    next_off = b.CreateString(str(next_req_time))
    ResponseUpdateModel.Start(b)
    ResponseUpdateModel.AddRetcode(b, retcode)
    ResponseUpdateModel.AddReason(b, reason_off)
    ResponseUpdateModel.AddNextReqTime(b, next_off)
    b.Finish(ResponseUpdateModel.End(b))
    return bytes(b.Output())


def get_model(retcode, reason, iteration, timestamp="", model=None, names=(), compress=None):
    """ResponseGetModel; `timestamp` carries next_req_time as in the reference."""
    if model is None:
        return _small_get_model(retcode, reason, iteration, str(timestamp))
    return _get_model(retcode, reason, iteration, timestamp, model, names, compress)


@_small
def _small_get_model(retcode, reason, iteration, timestamp):
    return _get_model(retcode, reason, iteration, timestamp)


def _get_model(retcode, reason, iteration, timestamp="", model=None, names=(), compress=None):
    b = _builder(model.nbytes() if model is not None else 0)
    fm = cfm = None
    if model is not None:
        if compress == "QUANT":
            cfm = _compressed_vector(b, model, names, ResponseGetModel.StartCompressFeatureMapVector)
        else:
            fm = _feature_vector(b, model, names, ResponseGetModel.StartFeatureMapVector)
    reason_off = b.CreateString(reason)
    ts_off = b.CreateString(str(timestamp))
    ResponseGetModel.Start(b)
    ResponseGetModel.AddRetcode(b, retcode)
    ResponseGetModel.AddReason(b, reason_off)
    ResponseGetModel.AddIteration(b, iteration)
    ResponseGetModel.AddTimestamp(b, ts_off)
    if fm is not None:
        ResponseGetModel.AddFeatureMap(b, fm)
    if cfm is not None:
        ResponseGetModel.AddCompressFeatureMap(b, cfm)
        ResponseGetModel.AddDownloadCompressType(b, COMPRESS_NAMES["QUANT"])
    b.Finish(ResponseGetModel.End(b))
    return bytes(b.Output())


def pull_weight(retcode, reason, iteration, model=None, names=()):
    """ResponsePullWeight."""
    if model is None:
        return _small_pull_weight(retcode, reason, iteration)
    return _pull_weight(retcode, reason, iteration, model, names)


@_small
def _small_pull_weight(retcode, reason, iteration):
    return _pull_weight(retcode, reason, iteration)


def _pull_weight(retcode, reason, iteration, model=None, names=()):
    b = _builder(model.nbytes() if model is not None else 0)
    fm = _feature_vector(b, model, names, ResponsePullWeight.StartFeatureMapVector) if model else None
    reason_off = b.CreateString(reason)
    ResponsePullWeight.Start(b)
    ResponsePullWeight.AddRetcode(b, retcode)
    ResponsePullWeight.AddReason(b, reason_off)
    ResponsePullWeight.AddIteration(b, iteration)
    if fm is not None:
        ResponsePullWeight.AddFeatureMap(b, fm)
    b.Finish(ResponsePullWeight.End(b))
    return bytes(b.Output())


@_small
def push_weight(retcode, reason, iteration):
    """ResponsePushWeight."""
    b = _builder()
    reason_off = b.CreateString(reason)
    ResponsePushWeight.Start(b)
    ResponsePushWeight.AddRetcode(b, retcode)
    ResponsePushWeight.AddReason(b, reason_off)
    ResponsePushWeight.AddIteration(b, iteration)
    b.Finish(ResponsePushWeight.End(b))
    return bytes(b.Output())


@_small
def push_metrics(retcode):
    """ResponsePushMetrics."""
    b = _builder()
    ResponsePushMetrics.Start(b)
    ResponsePushMetrics.AddRetcode(b, retcode)
    b.Finish(ResponsePushMetrics.End(b))
    return bytes(b.Output())
