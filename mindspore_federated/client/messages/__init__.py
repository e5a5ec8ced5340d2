"""Device-side wire messages: `codec` (enums and flatbuffers primitives), `requests` (one builder per round),
`replies` (verify-then-read reply readers); QUANT decoding comes from mindspore_federated.compression."""
from mindspore_federated.client.messages.cipher import CIPHER_PARSERS, CIPHER_TABLES
from mindspore_federated.client.messages.codec import (
    FILE_IDENTIFIER,
    ROUND_TABLES,
    CompressType,
    ResponseCode,
    as_float32_vector,
)
from mindspore_federated.client.messages.replies import (
    PARSERS as _ROUND_PARSERS,
)
from mindspore_federated.client.messages.replies import (
    DPParamsInfo,
    DSParamsInfo,
    FLPlanInfo,
    GetModelReply,
    PlainTextReply,
    PullWeightReply,
    PushMetricsReply,
    PushWeightReply,
    PWParamsInfo,
    Reply,
    StartFLJobReply,
    UpdateModelReply,
    check_plain_text,
    decode_features,
    parse_get_model,
    parse_pull_weight,
    parse_push_metrics,
    parse_push_weight,
    parse_start_fl_job,
    parse_update_model,
)
from mindspore_federated.client.messages.requests import (
    build_get_model,
    build_pull_weight,
    build_push_metrics,
    build_push_weight,
    build_start_fl_job,
    build_update_model,
)
from mindspore_federated.clock import now_ms_text as now_ms
from mindspore_federated.compression import QuantFeature, quant_decode, quant_encode, quant_scale

PARSERS = {**_ROUND_PARSERS, **CIPHER_PARSERS}
CIPHER_ROUNDS = tuple(CIPHER_TABLES)

__all__ = [
    "FILE_IDENTIFIER", "ROUND_TABLES", "CompressType", "ResponseCode", "as_float32_vector", "now_ms",
    "QuantFeature", "quant_decode", "quant_encode", "quant_scale", "decode_features",
    "build_start_fl_job", "build_update_model", "build_get_model", "build_pull_weight", "build_push_weight",
    "build_push_metrics",
    "PlainTextReply", "PWParamsInfo", "DPParamsInfo", "DSParamsInfo", "FLPlanInfo", "Reply",
    "StartFLJobReply",
    "UpdateModelReply", "GetModelReply", "PullWeightReply", "PushWeightReply", "PushMetricsReply",
    "check_plain_text", "parse_start_fl_job", "parse_update_model", "parse_get_model", "parse_pull_weight",
    "parse_push_weight", "parse_push_metrics", "PARSERS", "CIPHER_ROUNDS",
]
