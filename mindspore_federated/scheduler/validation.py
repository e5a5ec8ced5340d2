"""Request validation of the scheduler's REST API: addresses, bodies and their fields (pure functions)."""
import json
import math

from mindspore_federated.address import parse_address
from mindspore_federated.errors import (
    SCHED_BAD_ADDRESS,
    SCHED_BAD_JSON,
    SCHED_FIELD_NUMBER,
    SCHED_FIELD_POSITIVE,
    SCHED_FIELD_RATIO,
    SCHED_FIELD_UINT,
    SCHED_MANAGE_TYPE,
    SCHED_POST_SIZE,
    ApiError,
    ConfigError,
)
from mindspore_federated.errors import SCHED_MISSING_KEY as MISSING_KEY
from mindspore_federated.errors import SCHED_NEGATIVE as NEGATIVE
from mindspore_federated.errors import SCHED_NODE_IDS_EMPTY as NODE_IDS_EMPTY
from mindspore_federated.errors import SCHED_NODE_IDS_TYPE as NODE_IDS_TYPE
from mindspore_federated.errors import SCHED_NOT_OBJECT as NOT_OBJECT
from mindspore_federated.errors import SCHED_POST_TOO_BIG as POST_TOO_BIG
from mindspore_federated.errors import SCHED_SCALE_INT as SCALE_INT
from mindspore_federated.errors import SCHED_WORKER_SCALE_OUT as WORKER_SCALE_OUT

MAX_BODY = 100 * 1024 * 1024  # bytes; a body of exactly MAX_BODY is accepted, one byte more is refused
UINT32_MAX = 2 ** 32 - 1
UINT_PARAMS = ("global_iteration_time_window", "start_fl_job_threshold", "start_fl_job_time_window",
               "update_model_time_window", "client_epoch_num", "client_batch_size", "fl_iteration_num")



def validate_manage_address(addr):
    """Checks `ip:port` (IPv4, port 1-65535) and returns (ip, port); RuntimeError otherwise."""
    if not isinstance(addr, str):
        raise ConfigError(f"{SCHED_MANAGE_TYPE}, but got {type(addr).__name__}")
    try:
        parsed = parse_address(addr, ipv4_only=True)
    except ValueError:
        raise ConfigError(SCHED_BAD_ADDRESS.format(address=addr)) from None
    return parsed.host, parsed.port


async def read_body(request, limit=MAX_BODY) -> bytearray:
    """The whole request body: empty -> `The post message size is invalid.`, larger than `limit` (by its
    Content-Length or, when streamed, as soon as more than `limit` bytes arrived) -> `The post message is
    bigger than 100mb.`"""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(POST_TOO_BIG)
    data = bytearray()
    async for chunk in request.content.iter_any():
        data += chunk
        if len(data) > limit:
            raise ApiError(POST_TOO_BIG)
    if not data:
        raise ApiError(SCHED_POST_SIZE)
    return data


def parse_json_object(data) -> dict:
    """Parses a request body that must be a JSON object (NaN/Infinity literals are rejected)."""
    def _reject(name):
        raise ValueError(f"invalid literal {name}")
    try:
        value = json.loads(data.decode("utf-8"), parse_constant=_reject)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(SCHED_BAD_JSON.format(detail=str(exc))) from None
    if not isinstance(value, dict):
        raise ApiError(SCHED_BAD_JSON.format(detail=NOT_OBJECT))
    return value


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_uint(key, value):
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= UINT32_MAX:
        raise ApiError(SCHED_FIELD_UINT.format(key=key))
    if value == 0:
        raise ApiError(SCHED_FIELD_POSITIVE.format(key=key))
    return value


def validate_hyper_params(body: dict) -> dict:
    """The recognised /newInstance keys of `body`, type- and range-checked (texts without the prefix)."""
    updates = {key: _check_uint(key, body[key]) for key in UINT_PARAMS if key in body}
    if "update_model_ratio" in body:
        ratio = body["update_model_ratio"]
        if not _is_number(ratio):
            raise ApiError(SCHED_FIELD_NUMBER.format(key="update_model_ratio"))
        if not 0 < ratio <= 1:
            raise ApiError(SCHED_FIELD_RATIO)
        updates["update_model_ratio"] = float(ratio)
    if "client_learning_rate" in body:
        rate = body["client_learning_rate"]
        if not _is_number(rate):
            raise ApiError(SCHED_FIELD_NUMBER.format(key="client_learning_rate"))
        if rate <= 0:
            raise ApiError(SCHED_FIELD_POSITIVE.format(key="client_learning_rate"))
        updates["client_learning_rate"] = float(rate)
    return updates


def parse_scale_num(body: dict, key: str) -> int:
    """server_num / worker_num of a /scaleout body (older API texts)."""
    if key not in body:
        raise ApiError(MISSING_KEY.format(key=key))
    value = body[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiError(SCALE_INT.format(key=key))
    if value < 0:
        raise ApiError(NEGATIVE)
    if value > 0 and key == "worker_num":
        raise ApiError(WORKER_SCALE_OUT)
    return value


def parse_node_ids(body: dict) -> list:
    """node_ids of a /scalein body: a non-empty list of strings, de-duplicated in order."""
    if "node_ids" not in body:
        raise ApiError(MISSING_KEY.format(key="node_ids"))
    ids = body["node_ids"]
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ApiError(NODE_IDS_TYPE)
    if not ids:
        raise ApiError(NODE_IDS_EMPTY)
    return list(dict.fromkeys(ids))
