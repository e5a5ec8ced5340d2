"""Device reply readers: verify with the C++ verifier, then read the table into a typed reply (zero-copy)."""
from dataclasses import dataclass, field

import numpy as np

from mindspore_federated import _core
from mindspore_federated.client.messages.codec import (
    READERS,
    U32,
    CompressType,
    ResponseCode,
    indirect,
    read_array,
    read_str,
    read_tables,
)
from mindspore_federated.compression import QuantFeature, quant_decode
from mindspore_federated.errors import JOB_DISABLED, SAFEMODE

__all__ = ["PlainTextReply", "PWParamsInfo", "DPParamsInfo", "DSParamsInfo", "FLPlanInfo", "Reply",
           "StartFLJobReply", "UpdateModelReply", "GetModelReply", "PullWeightReply", "PushWeightReply",
           "PushMetricsReply", "decode_features", "check_plain_text", "parse_start_fl_job",
           "parse_update_model",
           "parse_get_model", "parse_pull_weight", "parse_push_weight", "parse_push_metrics", "PARSERS"]

_SAFEMODE_B = SAFEMODE.encode()
_FINISHED_B = JOB_DISABLED.encode()
_MAX_TEXT = 4096
_EMPTY_F32 = np.empty(0, np.float32)
_EMPTY_F32.flags.writeable = False
_EMPTY_I8 = np.empty(0, np.int8)
_EMPTY_I8.flags.writeable = False


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


def decode_features(features, compressed, compress_type):
    """The usable model of a reply: plain features, or the QUANT entries decoded (new arrays)."""
    if compress_type != CompressType.QUANT or not compressed:
        return features
    return {name: quant_decode(q.data, q.min_val, q.max_val) for name, q in compressed.items()}


# Table -> ((attribute, slot, kind), ...) for the plain fields; an attribute is named like its .fbs field
# except where FIELD_ALIASES says otherwise. Vectors of tables and nested tables are in LINKS.
FIELD_SPECS = {
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
# (table, attribute) -> the .fbs field it is read from, where the names differ.
FIELD_ALIASES = {("ResponseGetModel", "next_req_time"): "timestamp"}  # getModel carries next_req_time there
# (table, .fbs field) -> (slot, .fbs type) of the nested tables, vectors of tables and their fields the
# readers follow; the type is what the reader expects to find at that slot.
LINKS = {
    ("ResponseFLJob", "fl_plan_config"): (5, "FLPlan"),
    ("ResponseFLJob", "feature_map"): (6, "[FeatureMap]"),
    ("ResponseFLJob", "compress_feature_map"): (11, "[CompressFeatureMap]"),
    ("ResponseUpdateModel", "feature_map"): (2, "[FeatureMap]"),
    ("ResponseGetModel", "feature_map"): (3, "[FeatureMap]"),
    ("ResponseGetModel", "compress_feature_map"): (6, "[CompressFeatureMap]"),
    ("ResponsePullWeight", "feature_map"): (3, "[FeatureMap]"),
    ("FLPlan", "cipher"): (10, "CipherPublicParams"),
    ("CipherPublicParams", "encrypt_type"): (0, "string"),
    ("CipherPublicParams", "pw_params"): (1, "PWParams"),
    ("CipherPublicParams", "dp_params"): (2, "DPParams"),
    ("CipherPublicParams", "ds_params"): (3, "DSParams"),
    ("FeatureMap", "weight_fullname"): (0, "string"),
    ("FeatureMap", "data"): (1, "[float]"),
    ("CompressFeatureMap", "weight_fullname"): (0, "string"),
    ("CompressFeatureMap", "compress_data"): (1, "[int8]"),
    ("CompressFeatureMap", "min_val"): (2, "float"),
    ("CompressFeatureMap", "max_val"): (3, "float"),
}
_FEATURES_SLOT = {table: slot for (table, name), (slot, _) in LINKS.items() if name == "feature_map"}
_COMPRESSED_SLOT = {table: slot for (table, name), (slot, _) in LINKS.items()
                    if name == "compress_feature_map"}
_PLAN_SLOT, _CIPHER_SLOT = LINKS["ResponseFLJob", "fl_plan_config"][0], LINKS["FLPlan", "cipher"][0]
_ENCRYPT_TYPE, _PW_SLOT, _DP_SLOT, _DS_SLOT = (LINKS["CipherPublicParams", name][0] for name in
                                               ("encrypt_type", "pw_params", "dp_params", "ds_params"))
_FEATURE_NAME, _FEATURE_DATA = LINKS["FeatureMap", "weight_fullname"][0], LINKS["FeatureMap", "data"][0]
_COMPRESS_NAME, _COMPRESS_DATA, _COMPRESS_MIN, _COMPRESS_MAX = (
    LINKS["CompressFeatureMap", name][0]
    for name in ("weight_fullname", "compress_data", "min_val", "max_val"))
_READ_FLOAT = READERS["float"]


def _read_fields(buf, table, spec_name):
    return {name: READERS[kind](buf, table, slot) for name, slot, kind in FIELD_SPECS[spec_name]}


def _read_features(buf, root, table_name):
    """name -> read-only float32 view for the `feature_map` of a verified reply."""
    return {read_str(buf, item, _FEATURE_NAME): read_array(buf, item, _FEATURE_DATA, np.float32, _EMPTY_F32)
            for item in read_tables(buf, root, _FEATURES_SLOT[table_name])}


def _read_compressed(buf, root, table_name):
    """name -> QuantFeature (read-only int8 view) for the `compress_feature_map` of a verified reply."""
    return {read_str(buf, item, _COMPRESS_NAME): QuantFeature(
        read_array(buf, item, _COMPRESS_DATA, np.int8, _EMPTY_I8),
        _READ_FLOAT(buf, item, _COMPRESS_MIN), _READ_FLOAT(buf, item, _COMPRESS_MAX))
        for item in read_tables(buf, root, _COMPRESSED_SLOT[table_name])}


def _read_sub(buf, table, slot, spec_name, cls):
    sub = indirect(buf, table, slot)
    return cls(**_read_fields(buf, sub, spec_name)) if sub else None


def _read_plan(buf, root):
    plan = indirect(buf, root, _PLAN_SLOT)
    if not plan:
        return None
    cipher = indirect(buf, plan, _CIPHER_SLOT)
    if not cipher:
        return FLPlanInfo(**_read_fields(buf, plan, "FLPlan"))
    return FLPlanInfo(**_read_fields(buf, plan, "FLPlan"), encrypt_type=read_str(buf, cipher, _ENCRYPT_TYPE),
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
    root = U32.unpack_from(body, 0)[0]
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
