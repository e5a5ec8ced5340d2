"""Device-side wire messages: request builders, verify-then-parse response readers and QUANT decoding."""
import enum
import struct
import time
from dataclasses import dataclass, field

import flatbuffers
import numpy as np

from mindspore_federated import _core
from mindspore_federated.errors import JOB_DISABLED, SAFEMODE
from mindspore_federated.schema.fbs import (
    CompressFeatureMap,
    FeatureMap,
    RequestFLJob,
    RequestGetModel,
    RequestPullWeight,
    RequestPushMetrics,
    RequestPushWeight,
    RequestUpdateModel,
)

FILE_IDENTIFIER = b"FLJ0"
_SAFEMODE_B = SAFEMODE.encode()
_FINISHED_B = JOB_DISABLED.encode()
_MAX_TEXT = 4096
_EMPTY_F32 = np.empty(0, np.float32)
_EMPTY_F32.flags.writeable = False
_EMPTY_I8 = np.empty(0, np.int8)
_EMPTY_I8.flags.writeable = False


class ResponseCode(enum.IntEnum):
    """`ResponseCode` of fl_job.fbs."""

    SUCCEED = 200
    SucNotReady = 201
    OutOfTime = 300
    RequestError = 400
    SystemError = 500


class CompressType(enum.IntEnum):
    """`CompressType` of fl_job.fbs."""

    NO_COMPRESS = 0
    DIFF_SPARSE_QUANT = 1
    QUANT = 2


# Device HTTP round name -> (request table, response table).
ROUND_TABLES = {
    "startFLJob": ("RequestFLJob", "ResponseFLJob"),
    "updateModel": ("RequestUpdateModel", "ResponseUpdateModel"),
    "getModel": ("RequestGetModel", "ResponseGetModel"),
    "pullWeight": ("RequestPullWeight", "ResponsePullWeight"),
    "pushWeight": ("RequestPushWeight", "ResponsePushWeight"),
    "pushMetrics": ("RequestPushMetrics", "ResponsePushMetrics"),
}


# ---------------------------------------------------------------------------------------------
# QUANT (spec §6): int8 q -> (q + 128) * scale + min, scale = (max - min) / 255 + 1e-10
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class QuantFeature:
    """One CompressFeatureMap entry: int8 codes plus the min/max of the original weight."""

    data: np.ndarray
    min_val: float
    max_val: float


def quant_scale(min_val, max_val):
    """The QUANT step for a weight with this min/max."""
    return (float(max_val) - float(min_val)) / 255.0 + 1e-10


def quant_decode(data, min_val, max_val):
    """Dequantize int8 codes into a new float32 array, computed in float32 like the Java SDK."""
    out = np.asarray(data, dtype=np.int8).astype(np.float32)
    out += np.float32(128.0)
    out *= np.float32(quant_scale(min_val, max_val))
    out += np.float32(min_val)
    return out


def quant_encode(weight):
    """Quantize a float weight like the server's QUANT download (used by tests and compressing clients)."""
    w = np.ascontiguousarray(weight, dtype=np.float32).reshape(-1)
    lo = float(w.min()) if w.size else 0.0
    hi = float(w.max()) if w.size else 0.0
    scaled = (w.astype(np.float64) - lo) / quant_scale(lo, hi) - 128.0
    codes = np.clip(np.round(scaled), -128, 127).astype(np.int8)
    return QuantFeature(codes, np.float32(lo).item(), np.float32(hi).item())


def decode_features(features, compressed, compress_type):
    """The usable model of a reply: plain features, or the QUANT entries decoded (new arrays)."""
    if compress_type != CompressType.QUANT or not compressed:
        return features
    return {name: quant_decode(q.data, q.min_val, q.max_val) for name, q in compressed.items()}


# ---------------------------------------------------------------------------------------------
# Request builders
# ---------------------------------------------------------------------------------------------

def now_ms():
    """Current epoch time in milliseconds as the decimal string the protocol uses."""
    return str(time.time_ns() // 1_000_000)


def as_float32_vector(value):
    """A contiguous 1-D float32 view (copy only when needed); scalars become length-1 vectors."""
    return np.ascontiguousarray(value, dtype=np.float32).reshape(-1)


def _builder(payload_bytes=0, entries=0):
    return flatbuffers.Builder(int(payload_bytes) + 64 * entries + 512)


def _finish(builder, root, file_identifier):
    builder.Finish(root, file_identifier=FILE_IDENTIFIER if file_identifier else None)
    return bytes(memoryview(builder.Bytes)[builder.Head():])


def _opt_string(builder, value):
    return None if value is None else builder.CreateString(value)


def _string_vector(builder, values):
    offsets = [builder.CreateString(v) for v in values]
    builder.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        builder.PrependUOffsetTRelative(off)
    return builder.EndVector()


def _table_vector(builder, offsets):
    builder.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        builder.PrependUOffsetTRelative(off)
    return builder.EndVector()


def _int_vector(builder, values):
    return builder.CreateNumpyVector(np.asarray(values, dtype=np.int32).reshape(-1))


def _enum_vector(builder, values):
    return builder.CreateNumpyVector(np.asarray(list(values), dtype=np.int8))


def _feature_table(builder, name, value):
    name_off = builder.CreateString(name)
    data_off = builder.CreateNumpyVector(as_float32_vector(value))
    FeatureMap.Start(builder)
    FeatureMap.AddWeightFullname(builder, name_off)
    FeatureMap.AddData(builder, data_off)
    return FeatureMap.End(builder)


def _feature_vector(builder, features):
    return _table_vector(builder, [_feature_table(builder, n, v) for n, v in features.items()])


def _compress_table(builder, name, quant):
    name_off = builder.CreateString(name)
    data_off = builder.CreateNumpyVector(np.ascontiguousarray(quant.data, dtype=np.int8).reshape(-1))
    CompressFeatureMap.Start(builder)
    CompressFeatureMap.AddWeightFullname(builder, name_off)
    CompressFeatureMap.AddCompressData(builder, data_off)
    CompressFeatureMap.AddMinVal(builder, float(quant.min_val))
    CompressFeatureMap.AddMaxVal(builder, float(quant.max_val))
    return CompressFeatureMap.End(builder)


def _compress_vector(builder, compressed):
    return _table_vector(builder, [_compress_table(builder, n, q) for n, q in compressed.items()])


def _payload_size(features):
    return sum(np.asarray(v).size * 4 + len(n) for n, v in features.items())


def build_start_fl_job(fl_name, fl_id, iteration=0, data_size=1, *, timestamp=None, eval_data_size=0,
                       download_compress_types=(), sign_data=None, key_attestation=None, equip_cert=None,
                       equip_ca_cert=None, root_cert=None, file_identifier=False):
    """RequestFLJob body; the PKI fields are written only when given."""
    b = _builder()
    offs = {
        "name": b.CreateString(fl_name), "id": b.CreateString(fl_id),
        "ts": b.CreateString(timestamp if timestamp is not None else now_ms()),
        "sign": None if sign_data is None else b.CreateByteVector(bytes(sign_data)),
        "attest": _opt_string(b, key_attestation), "cert": _opt_string(b, equip_cert),
        "ca": _opt_string(b, equip_ca_cert), "root": _opt_string(b, root_cert),
        "types": _enum_vector(b, download_compress_types) if download_compress_types else None,
    }
    RequestFLJob.Start(b)
    RequestFLJob.AddFlName(b, offs["name"])
    RequestFLJob.AddFlId(b, offs["id"])
    RequestFLJob.AddIteration(b, int(iteration))
    RequestFLJob.AddDataSize(b, int(data_size))
    RequestFLJob.AddTimestamp(b, offs["ts"])
    _add_fl_job_optionals(b, offs)
    RequestFLJob.AddEvalDataSize(b, int(eval_data_size))
    return _finish(b, RequestFLJob.End(b), file_identifier)


def _add_fl_job_optionals(b, offs):
    adders = [("sign", RequestFLJob.AddSignData), ("attest", RequestFLJob.AddKeyAttestation),
              ("cert", RequestFLJob.AddEquipCert), ("ca", RequestFLJob.AddEquipCaCert),
              ("root", RequestFLJob.AddRootCert), ("types", RequestFLJob.AddDownloadCompressTypes)]
    for key, add in adders:
        if offs[key] is not None:
            add(b, offs[key])


def build_update_model(fl_name, fl_id, iteration, features, *, timestamp=None, upload_loss=0.0,
                       upload_accuracy=0.0, signature=None, sign=0, index_array=None,
                       compressed_features=None, upload_compress_type=CompressType.NO_COMPRESS,
                       upload_sparse_rate=0.0, name_vec=None, file_identifier=False):
    """RequestUpdateModel body; `features` maps name -> float32 array, uploaded exactly as given."""
    compressed_features = compressed_features or {}
    size = _payload_size(features) + sum(np.asarray(q.data).size + len(n)
                                         for n, q in compressed_features.items())
    b = _builder(size, len(features) + len(compressed_features))
    offs = {
        "fm": _feature_vector(b, features),
        "cfm": _compress_vector(b, compressed_features) if compressed_features else None,
        "names": _string_vector(b, name_vec) if name_vec is not None else None,
        "index": None if index_array is None else _int_vector(b, index_array),
        "sig": None if signature is None else b.CreateByteVector(bytes(signature)),
        "name": b.CreateString(fl_name), "id": b.CreateString(fl_id),
        "ts": b.CreateString(timestamp if timestamp is not None else now_ms()),
    }
    RequestUpdateModel.Start(b)
    RequestUpdateModel.AddFlName(b, offs["name"])
    RequestUpdateModel.AddFlId(b, offs["id"])
    RequestUpdateModel.AddIteration(b, int(iteration))
    RequestUpdateModel.AddFeatureMap(b, offs["fm"])
    RequestUpdateModel.AddTimestamp(b, offs["ts"])
    RequestUpdateModel.AddUploadLoss(b, float(upload_loss))
    RequestUpdateModel.AddSign(b, int(sign))
    RequestUpdateModel.AddUploadCompressType(b, int(upload_compress_type))
    RequestUpdateModel.AddUploadSparseRate(b, float(upload_sparse_rate))
    RequestUpdateModel.AddUploadAccuracy(b, float(upload_accuracy))
    _add_update_optionals(b, offs)
    return _finish(b, RequestUpdateModel.End(b), file_identifier)


def _add_update_optionals(b, offs):
    adders = [("cfm", RequestUpdateModel.AddCompressFeatureMap), ("names", RequestUpdateModel.AddNameVec),
              ("index", RequestUpdateModel.AddIndexArray), ("sig", RequestUpdateModel.AddSignature)]
    for key, add in adders:
        if offs[key] is not None:
            add(b, offs[key])


def build_get_model(fl_name, iteration, *, timestamp=None, download_compress_types=(), file_identifier=False):
    """RequestGetModel body."""
    b = _builder()
    types = _enum_vector(b, download_compress_types) if download_compress_types else None
    name = b.CreateString(fl_name)
    ts = b.CreateString(timestamp if timestamp is not None else now_ms())
    RequestGetModel.Start(b)
    RequestGetModel.AddFlName(b, name)
    RequestGetModel.AddIteration(b, int(iteration))
    RequestGetModel.AddTimestamp(b, ts)
    if types is not None:
        RequestGetModel.AddDownloadCompressTypes(b, types)
    return _finish(b, RequestGetModel.End(b), file_identifier)


def build_pull_weight(iteration, weight_names, *, file_identifier=False):
    """RequestPullWeight body."""
    b = _builder(entries=len(weight_names))
    names = _string_vector(b, list(weight_names))
    RequestPullWeight.Start(b)
    RequestPullWeight.AddIteration(b, int(iteration))
    RequestPullWeight.AddWeightNames(b, names)
    return _finish(b, RequestPullWeight.End(b), file_identifier)


def build_push_weight(iteration, features, *, file_identifier=False):
    """RequestPushWeight body; `features` maps name -> float32 array."""
    b = _builder(_payload_size(features), len(features))
    fm = _feature_vector(b, features)
    RequestPushWeight.Start(b)
    RequestPushWeight.AddIteration(b, int(iteration))
    RequestPushWeight.AddFeatureMap(b, fm)
    return _finish(b, RequestPushWeight.End(b), file_identifier)


def build_push_metrics(loss, accuracy, *, file_identifier=False):
    """RequestPushMetrics body."""
    b = _builder()
    RequestPushMetrics.Start(b)
    RequestPushMetrics.AddLoss(b, float(loss))
    RequestPushMetrics.AddAccuracy(b, float(accuracy))
    return _finish(b, RequestPushMetrics.End(b), file_identifier)


# ---------------------------------------------------------------------------------------------
# Replies
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlainTextReply:
    """A non-flatbuffers reply (availability text, reason string, or anything that failed verification)."""

    text: str

    @property
    def is_safemode(self):
        """The cluster is switching iteration/instance: retry the same request shortly."""
        return self.text == SAFEMODE

    @property
    def is_finished(self):
        """The training job is disabled or finished: stop."""
        return self.text == JOB_DISABLED


@dataclass(frozen=True)
class PWParamsInfo:
    """Pairwise-mask parameters of the plan."""

    t: int = 0
    p: bytes = b""
    g: int = 0
    prime: bytes = b""


@dataclass(frozen=True)
class DPParamsInfo:
    """Differential-privacy parameters of the plan."""

    dp_eps: float = 0.0
    dp_delta: float = 0.0
    dp_norm_clip: float = 0.0


@dataclass(frozen=True)
class DSParamsInfo:
    """SignDS parameters of the plan."""

    sign_k: float = 0.0
    sign_eps: float = 0.0
    sign_thr_ratio: float = 0.0
    sign_global_lr: float = 0.0
    sign_dim_out: int = 0


@dataclass(frozen=True)
class FLPlanInfo:
    """The FLPlan of a startFLJob reply."""

    server_mode: str = ""
    fl_name: str = ""
    iterations: int = 0
    epochs: int = 0
    mini_batch: int = 0
    shuffle: bool = False
    lr: float = 0.0
    encrypt_type: str = ""
    pw_params: PWParamsInfo = None
    dp_params: DPParamsInfo = None
    ds_params: DSParamsInfo = None


@dataclass
class Reply:
    """Fields every flatbuffers reply has. Feature arrays are read-only zero-copy views of the body."""

    retcode: int = 0
    reason: str = ""

    @property
    def ok(self):
        """The server answered SUCCEED."""
        return self.retcode == ResponseCode.SUCCEED


@dataclass
class StartFLJobReply(Reply):
    """ResponseFLJob."""

    iteration: int = 0
    is_selected: bool = False
    next_req_time: int = 0
    fl_plan: FLPlanInfo = None
    features: dict = field(default_factory=dict)
    timestamp: str = ""
    upload_compress_type: int = CompressType.NO_COMPRESS
    upload_sparse_rate: float = 0.0
    download_compress_type: int = CompressType.NO_COMPRESS
    compressed_features: dict = field(default_factory=dict)

    def model(self):
        """The model to train from: `features`, or the QUANT entries decoded."""
        return decode_features(self.features, self.compressed_features, self.download_compress_type)


@dataclass
class UpdateModelReply(Reply):
    """ResponseUpdateModel."""

    next_req_time: int = 0
    timestamp: str = ""
    features: dict = field(default_factory=dict)


@dataclass
class GetModelReply(Reply):
    """ResponseGetModel; `next_req_time` is read from `timestamp`, where getModel carries it."""

    iteration: int = 0
    features: dict = field(default_factory=dict)
    timestamp: str = ""
    next_req_time: int = 0
    download_compress_type: int = CompressType.NO_COMPRESS
    compressed_features: dict = field(default_factory=dict)

    def model(self):
        """The served model: `features`, or the QUANT entries decoded."""
        return decode_features(self.features, self.compressed_features, self.download_compress_type)


@dataclass
class PullWeightReply(Reply):
    """ResponsePullWeight."""

    iteration: int = 0
    features: dict = field(default_factory=dict)


@dataclass
class PushWeightReply(Reply):
    """ResponsePushWeight."""

    iteration: int = 0


@dataclass
class PushMetricsReply(Reply):
    """ResponsePushMetrics."""


def _ms(value):
    """next_req_time strings are epoch milliseconds; anything else reads as 0."""
    try:
        return max(int(value), 0) if value else 0
    except ValueError:
        return 0


# Replies are read with the small reader below instead of the generated accessors (which cost ~1-20 us per
# field, several ms per thousand devices). It only ever sees bodies `_core.verify` has accepted, so every
# offset is in bounds. A slot is the field's index in the .fbs (fields are only appended, never reordered).
_U8, _I8, _U16 = struct.Struct("<B"), struct.Struct("<b"), struct.Struct("<H")
_I32, _U32, _F32 = struct.Struct("<i"), struct.Struct("<I"), struct.Struct("<f")


def _field(buf, table, slot):
    """Absolute position of field `slot` of the table at `table`, or 0 when the field is absent."""
    vtable = table - _I32.unpack_from(buf, table)[0]
    entry = 4 + 2 * slot
    if entry >= _U16.unpack_from(buf, vtable)[0]:
        return 0
    offset = _U16.unpack_from(buf, vtable + entry)[0]
    return table + offset if offset else 0


def _indirect(buf, table, slot):
    """Position of the table/vector/string an offset field points to, or 0 when absent."""
    pos = _field(buf, table, slot)
    return pos + _U32.unpack_from(buf, pos)[0] if pos else 0


def _vector(buf, table, slot):
    """(length, position of the first element) of a vector or string field; (0, 0) when absent."""
    vec = _indirect(buf, table, slot)
    return (_U32.unpack_from(buf, vec)[0], vec + 4) if vec else (0, 0)


def _scalar(fmt, default):
    def read(buf, table, slot):
        pos = _field(buf, table, slot)
        return fmt.unpack_from(buf, pos)[0] if pos else default
    return read


def _read_str(buf, table, slot):
    length, start = _vector(buf, table, slot)
    return bytes(buf[start:start + length]).decode("utf-8", "replace") if start else ""


def _read_bytes(buf, table, slot):
    length, start = _vector(buf, table, slot)
    return bytes(buf[start:start + length])


def _read_array(buf, table, slot, dtype, empty):
    length, start = _vector(buf, table, slot)
    if not start:
        return empty
    array = np.frombuffer(buf, dtype, length, start)
    array.flags.writeable = False
    return array


def _read_tables(buf, table, slot):
    length, start = _vector(buf, table, slot)
    return [start + 4 * i + _U32.unpack_from(buf, start + 4 * i)[0] for i in range(length)]


_READERS = {
    "int": _scalar(_I32, 0), "byte": _scalar(_I8, 0), "float": _scalar(_F32, 0.0),
    "bool": lambda buf, table, slot: bool(_scalar(_U8, 0)(buf, table, slot)),
    "str": _read_str, "bytes": _read_bytes, "ms": lambda buf, table, slot: _ms(_read_str(buf, table, slot)),
}

# Table -> ((attribute, slot, kind), ...) for the plain fields; vectors of tables are read separately.
_SPECS = {
    "ResponseFLJob": (("retcode", 0, "int"), ("reason", 1, "str"), ("iteration", 2, "int"),
                      ("is_selected", 3, "bool"), ("next_req_time", 4, "ms"), ("timestamp", 7, "str"),
                      ("upload_compress_type", 8, "byte"), ("upload_sparse_rate", 9, "float"),
                      ("download_compress_type", 10, "byte")),
    "ResponseUpdateModel": (("retcode", 0, "int"), ("reason", 1, "str"), ("next_req_time", 3, "ms"),
                            ("timestamp", 4, "str")),
    "ResponseGetModel": (("retcode", 0, "int"), ("reason", 1, "str"), ("iteration", 2, "int"),
                         ("timestamp", 4, "str"), ("next_req_time", 4, "ms"),
                         ("download_compress_type", 5, "byte")),
    "ResponsePullWeight": (("retcode", 0, "int"), ("reason", 1, "str"), ("iteration", 2, "int")),
    "ResponsePushWeight": (("retcode", 0, "int"), ("reason", 1, "str"), ("iteration", 2, "int")),
    "ResponsePushMetrics": (("retcode", 0, "int"),),
    "FLPlan": (("server_mode", 0, "str"), ("fl_name", 1, "str"), ("iterations", 2, "int"),
               ("epochs", 3, "int"), ("mini_batch", 5, "int"), ("shuffle", 6, "bool"), ("lr", 7, "float")),
    "PWParams": (("t", 0, "int"), ("p", 1, "bytes"), ("g", 2, "int"), ("prime", 3, "bytes")),
    "DPParams": (("dp_eps", 0, "float"), ("dp_delta", 1, "float"), ("dp_norm_clip", 2, "float")),
    "DSParams": (("sign_k", 0, "float"), ("sign_eps", 1, "float"), ("sign_thr_ratio", 2, "float"),
                 ("sign_global_lr", 3, "float"), ("sign_dim_out", 4, "int")),
}
_FEATURES_SLOT = {"ResponseFLJob": 6, "ResponseUpdateModel": 2, "ResponseGetModel": 3,
                  "ResponsePullWeight": 3}
_COMPRESSED_SLOT = {"ResponseFLJob": 11, "ResponseGetModel": 6}
_PLAN_SLOT, _CIPHER_SLOT = 5, 10                                 # ResponseFLJob.fl_plan_config, FLPlan.cipher
_ENCRYPT_TYPE, _PW_SLOT, _DP_SLOT, _DS_SLOT = 0, 1, 2, 3         # CipherPublicParams
_FEATURE_NAME, _FEATURE_DATA, _COMPRESS_MIN, _COMPRESS_MAX = 0, 1, 2, 3   # (Compress)FeatureMap
_READ_FLOAT = _READERS["float"]


def _read_fields(buf, table, spec_name):
    return {name: _READERS[kind](buf, table, slot) for name, slot, kind in _SPECS[spec_name]}


def _read_features(buf, root, table_name):
    """name -> read-only float32 view for the `feature_map` of a verified reply."""
    return {_read_str(buf, item, _FEATURE_NAME): _read_array(buf, item, _FEATURE_DATA, np.float32, _EMPTY_F32)
            for item in _read_tables(buf, root, _FEATURES_SLOT[table_name])}


def _read_compressed(buf, root, table_name):
    """name -> QuantFeature (read-only int8 view) for the `compress_feature_map` of a verified reply."""
    return {_read_str(buf, item, _FEATURE_NAME): QuantFeature(
        _read_array(buf, item, _FEATURE_DATA, np.int8, _EMPTY_I8),
        _READ_FLOAT(buf, item, _COMPRESS_MIN), _READ_FLOAT(buf, item, _COMPRESS_MAX))
        for item in _read_tables(buf, root, _COMPRESSED_SLOT[table_name])}


def _read_sub(buf, table, slot, spec_name, cls):
    sub = _indirect(buf, table, slot)
    return cls(**_read_fields(buf, sub, spec_name)) if sub else None


def _read_plan(buf, root):
    plan = _indirect(buf, root, _PLAN_SLOT)
    if not plan:
        return None
    cipher = _indirect(buf, plan, _CIPHER_SLOT)
    if not cipher:
        return FLPlanInfo(**_read_fields(buf, plan, "FLPlan"))
    return FLPlanInfo(**_read_fields(buf, plan, "FLPlan"), encrypt_type=_read_str(buf, cipher, _ENCRYPT_TYPE),
                      pw_params=_read_sub(buf, cipher, _PW_SLOT, "PWParams", PWParamsInfo),
                      dp_params=_read_sub(buf, cipher, _DP_SLOT, "DPParams", DPParamsInfo),
                      ds_params=_read_sub(buf, cipher, _DS_SLOT, "DSParams", DSParamsInfo))


def check_plain_text(table_name, body):
    """A PlainTextReply when `body` is not a verified `table_name` flatbuffer, else None."""
    if body in (_SAFEMODE_B, _FINISHED_B):
        return PlainTextReply(bytes(body).decode())
    if not _core.verify(table_name, body):
        return PlainTextReply(bytes(body[:_MAX_TEXT]).decode("utf-8", "replace"))
    return None


def _parse(table_name, cls, body, with_plan=False):
    """Verify, then read a reply table into `cls`; PlainTextReply when the body is not that table."""
    plain = check_plain_text(table_name, body)
    if plain is not None:
        return plain
    root = _U32.unpack_from(body, 0)[0]
    values = _read_fields(body, root, table_name)
    if table_name in _FEATURES_SLOT:
        values["features"] = _read_features(body, root, table_name)
    if table_name in _COMPRESSED_SLOT:
        values["compressed_features"] = _read_compressed(body, root, table_name)
    if with_plan:
        values["fl_plan"] = _read_plan(body, root)
    return cls(**values)


def parse_start_fl_job(body):
    """StartFLJobReply, or PlainTextReply for a body that is not a valid ResponseFLJob."""
    return _parse("ResponseFLJob", StartFLJobReply, body, with_plan=True)


def parse_update_model(body):
    """UpdateModelReply, or PlainTextReply."""
    return _parse("ResponseUpdateModel", UpdateModelReply, body)


def parse_get_model(body):
    """GetModelReply (next_req_time read from `timestamp`, where getModel carries it), or PlainTextReply."""
    return _parse("ResponseGetModel", GetModelReply, body)


def parse_pull_weight(body):
    """PullWeightReply, or PlainTextReply."""
    return _parse("ResponsePullWeight", PullWeightReply, body)


def parse_push_weight(body):
    """PushWeightReply, or PlainTextReply."""
    return _parse("ResponsePushWeight", PushWeightReply, body)


def parse_push_metrics(body):
    """PushMetricsReply, or PlainTextReply."""
    return _parse("ResponsePushMetrics", PushMetricsReply, body)


PARSERS = {
    "startFLJob": parse_start_fl_job,
    "updateModel": parse_update_model,
    "getModel": parse_get_model,
    "pullWeight": parse_pull_weight,
    "pushWeight": parse_push_weight,
    "pushMetrics": parse_push_metrics,
}
