"""Device wire codec: protocol enums, flatbuffers building blocks for requests, the zero-copy table reader.

The reader reads replies without the generated accessors (which cost ~1-20 us per field, several ms per
thousand devices). It only ever sees bodies `_core.verify` has accepted, so every offset is in bounds. A slot
is the field's index in the .fbs (fields are only appended, never reordered); a test checks the readers'
slots and kinds against mindspore_federated/schema/*.fbs.
"""
import enum
import struct

import flatbuffers
import numpy as np

from mindspore_federated.schema.fbs import CompressFeatureMap, FeatureMap

FILE_IDENTIFIER = b"FLJ0"


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


# ---- building ---------------------------------------------------------------------------------------------

def as_float32_vector(value):
    """A contiguous 1-D float32 view (copy only when needed); scalars become length-1 vectors."""
    return np.ascontiguousarray(value, dtype=np.float32).reshape(-1)


def new_builder(payload_bytes=0, entries=0):
    return flatbuffers.Builder(int(payload_bytes) + 64 * entries + 512)


def finish(builder, root, file_identifier):
    builder.Finish(root, file_identifier=FILE_IDENTIFIER if file_identifier else None)
    return bytes(memoryview(builder.Bytes)[builder.Head():])


def opt_string(builder, value):
    return None if value is None else builder.CreateString(value)


def table_vector(builder, offsets):
    builder.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        builder.PrependUOffsetTRelative(off)
    return builder.EndVector()


def string_vector(builder, values):
    return table_vector(builder, [builder.CreateString(v) for v in values])


def int_vector(builder, values):
    return builder.CreateNumpyVector(np.asarray(values, dtype=np.int32).reshape(-1))


def enum_vector(builder, values):
    return builder.CreateNumpyVector(np.asarray(list(values), dtype=np.int8))


def _feature_table(builder, name, value):
    name_off = builder.CreateString(name)
    data_off = builder.CreateNumpyVector(as_float32_vector(value))
    FeatureMap.Start(builder)
    FeatureMap.AddWeightFullname(builder, name_off)
    FeatureMap.AddData(builder, data_off)
    return FeatureMap.End(builder)


def feature_vector(builder, features):
    return table_vector(builder, [_feature_table(builder, n, v) for n, v in features.items()])


def _compress_table(builder, name, quant):
    name_off = builder.CreateString(name)
    data_off = builder.CreateNumpyVector(np.ascontiguousarray(quant.data, dtype=np.int8).reshape(-1))
    CompressFeatureMap.Start(builder)
    CompressFeatureMap.AddWeightFullname(builder, name_off)
    CompressFeatureMap.AddCompressData(builder, data_off)
    CompressFeatureMap.AddMinVal(builder, float(quant.min_val))
    CompressFeatureMap.AddMaxVal(builder, float(quant.max_val))
    return CompressFeatureMap.End(builder)


def compress_vector(builder, compressed):
    return table_vector(builder, [_compress_table(builder, n, q) for n, q in compressed.items()])


def payload_size(features):
    return sum(np.asarray(v).size * 4 + len(n) for n, v in features.items())


# ---- reading ----------------------------------------------------------------------------------------------

_U8, _I8, _U16 = struct.Struct("<B"), struct.Struct("<b"), struct.Struct("<H")
_I32, U32, _F32 = struct.Struct("<i"), struct.Struct("<I"), struct.Struct("<f")


def field_position(buf, table, slot):
    """Absolute position of field `slot` of the table at `table`, or 0 when the field is absent."""
    vtable = table - _I32.unpack_from(buf, table)[0]
    entry = 4 + 2 * slot
    if entry >= _U16.unpack_from(buf, vtable)[0]:
        return 0
    offset = _U16.unpack_from(buf, vtable + entry)[0]
    return table + offset if offset else 0


def indirect(buf, table, slot):
    """Position of the table/vector/string an offset field points to, or 0 when absent."""
    pos = field_position(buf, table, slot)
    return pos + U32.unpack_from(buf, pos)[0] if pos else 0


def _vector(buf, table, slot):
    """(length, position of the first element) of a vector or string field; (0, 0) when absent."""
    vec = indirect(buf, table, slot)
    return (U32.unpack_from(buf, vec)[0], vec + 4) if vec else (0, 0)


def _scalar(fmt, default):
    def read(buf, table, slot):
        pos = field_position(buf, table, slot)
        return fmt.unpack_from(buf, pos)[0] if pos else default
    return read


def read_str(buf, table, slot):
    length, start = _vector(buf, table, slot)
    return bytes(buf[start:start + length]).decode("utf-8", "replace") if start else ""


def _read_bytes(buf, table, slot):
    length, start = _vector(buf, table, slot)
    return bytes(buf[start:start + length])


def read_array(buf, table, slot, dtype, empty):
    """A read-only zero-copy view of a scalar vector field, or `empty` when absent."""
    length, start = _vector(buf, table, slot)
    if not start:
        return empty
    array = np.frombuffer(buf, dtype, length, start)
    array.flags.writeable = False
    return array


def read_tables(buf, table, slot):
    """Positions of the tables of a vector-of-tables field."""
    length, start = _vector(buf, table, slot)
    return [start + 4 * i + U32.unpack_from(buf, start + 4 * i)[0] for i in range(length)]


def _ms(value):
    """next_req_time strings are epoch milliseconds; anything else reads as 0."""
    try:
        return max(int(value), 0) if value else 0
    except ValueError:
        return 0


# Field kind -> reader(buf, table, slot). "ms" is a string field holding epoch milliseconds.
READERS = {
    "int": _scalar(_I32, 0), "byte": _scalar(_I8, 0), "float": _scalar(_F32, 0.0),
    "bool": lambda buf, table, slot: bool(_scalar(_U8, 0)(buf, table, slot)),
    "str": read_str, "bytes": _read_bytes, "ms": lambda buf, table, slot: _ms(read_str(buf, table, slot)),
}
