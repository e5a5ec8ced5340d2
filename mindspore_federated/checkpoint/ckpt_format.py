"""The MindSpore ``.ckpt`` file format in pure Python + numpy (no MindSpore, no protobuf): save and load."""
# File format, as written by MindSpore 2.10 ``save_checkpoint`` (learned from the bytes it writes):
#
#   Checkpoint  { repeated Value value = 1; }
#   Value       { required string tag = 1; oneof { TensorProto tensor = 2; MapTensorProto maptensor = 3; } }
#   TensorProto { repeated int64 dims = 1 (unpacked); required string tensor_type = 2;
#                 required bytes tensor_content = 3 (raw little-endian, C order); }
#
# * Every Value is serialised as its own one-value Checkpoint message and the messages are concatenated,
#   which protobuf reads back as one Checkpoint with repeated values.
# * A 0-d tensor has no dims; an ``append_dict`` string has dims [0], tensor_type "str", UTF-32-LE content.
# * Tensors larger than 512 MiB are split with ``np.array_split`` along axis 0 into consecutive Values
#   sharing tag, dims and type; readers concatenate consecutive same-tag Values.
# * ``crc_check=True`` appends the trailer b"crc_num" + crc32(all preceding bytes) as 10 big-endian bytes.
# * MindSpore drops empty tensors when saving; we write them (dims + empty content) and MindSpore reads them.
import logging
import math
import os
import tempfile
import zlib

import numpy as np

__all__ = ["save_checkpoint", "load_checkpoint"]

logger = logging.getLogger("mindspore_federated.checkpoint")

_SLICE_BYTES = 512 * 1024 * 1024  # MindSpore: SLICE_SIZE (KB) * 1024
_CRC_MAGIC = b"crc_num"
_CRC_TRAILER = len(_CRC_MAGIC) + 10
_COPY_CHUNK = 1 << 20

# tensor_type -> numpy dtype (explicitly little-endian) and back.
_NP_DTYPES = {
    "Float16": np.dtype("<f2"), "Float32": np.dtype("<f4"), "Float64": np.dtype("<f8"),
    "Int8": np.dtype("i1"), "Int16": np.dtype("<i2"), "Int32": np.dtype("<i4"), "Int64": np.dtype("<i8"),
    "UInt8": np.dtype("u1"), "UInt16": np.dtype("<u2"), "UInt32": np.dtype("<u4"), "UInt64": np.dtype("<u8"),
    "Bool": np.dtype("?"),
}
_TYPE_NAMES = {(dt.kind, dt.itemsize): name for name, dt in _NP_DTYPES.items()}


# ----------------------------------------------------------------------------------------------- writing

def _varint(value):
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _len_field(key, payload_len):
    return key + _varint(payload_len)


def _prepare(features):
    """(tag bytes, dims, tensor_type bytes, flat contiguous little-endian array) per feature, order kept."""
    items = features.items() if hasattr(features, "items") else features
    entries, seen = [], set()
    for item in items:
        try:
            name, value = item
        except (TypeError, ValueError):
            raise TypeError(f"features must be a dict or (name, array) pairs, got item {item!r}") from None
        if not isinstance(name, str):
            raise TypeError(f"feature name must be str, got {type(name).__name__}")
        if name in seen:
            raise ValueError(f"duplicate feature name {name!r}")
        seen.add(name)
        arr = value if isinstance(value, (np.ndarray, np.generic)) else np.asarray(value, dtype=np.float32)
        arr = np.asarray(arr)
        type_name = _TYPE_NAMES.get((arr.dtype.kind, arr.dtype.itemsize))
        if type_name is None:
            raise TypeError(f"feature {name!r}: unsupported dtype {arr.dtype}")
        little = arr.dtype.newbyteorder("<")
        if arr.dtype != little:
            arr = arr.astype(little)
        dims = arr.shape
        if not arr.flags.c_contiguous:
            arr = arr.copy(order="C")
        entries.append((name.encode("utf-8"), dims, type_name.encode("ascii"), arr.reshape(-1)))
    return entries


def _chunks(dims, flat):
    """The content pieces MindSpore writes for one tensor: one, or an axis-0 split of a tensor > 512 MiB."""
    if flat.nbytes <= _SLICE_BYTES or not dims:
        return [flat]
    count = math.ceil(flat.nbytes / _SLICE_BYTES)
    return [piece.reshape(-1) for piece in np.array_split(flat.reshape(dims), count)]


def _write_entries(f, entries, crc_check):
    crc = 0
    for tag, dims, type_name, flat in entries:
        dims_bytes = b"".join(b"\x08" + _varint(d) for d in dims)
        for piece in _chunks(dims, flat):
            nbytes = piece.nbytes
            tensor_head = (dims_bytes + _len_field(b"\x12", len(type_name)) + type_name
                           + _len_field(b"\x1a", nbytes))
            tensor_len = len(tensor_head) + nbytes
            value_head = _len_field(b"\x0a", len(tag)) + tag + _len_field(b"\x12", tensor_len)
            head = _len_field(b"\x0a", len(value_head) + tensor_len) + value_head + tensor_head
            content = memoryview(piece).cast("B")
            f.write(head)
            f.write(content)
            if crc_check:
                crc = zlib.crc32(content, zlib.crc32(head, crc))
    if crc_check:
        f.write(_CRC_MAGIC + crc.to_bytes(10, "big"))


def save_checkpoint(path, features, *, crc_check=False, fsync=True):
    """Write `features` as a MindSpore checkpoint at `path`, atomically (temp file + rename), mode 0o600.

    `features`: dict name -> array, or an iterable of (name, array) pairs; the order is kept. Arrays keep
    their dtype (Float16/32/64, (U)Int8/16/32/64, Bool); non-array values become float32. Any shape,
    including 0-d and empty (MindSpore itself drops empty tensors; it reads ours back fine).
    With the defaults the bytes are identical to ``mindspore.save_checkpoint`` of the same tensors;
    `crc_check=True` adds MindSpore's CRC trailer (also readable by MindSpore). `fsync` makes the file
    and the rename durable before returning.
    """
    path = os.fspath(path)
    entries = _prepare(features)
    if not entries:
        raise ValueError(f"{path}: nothing to save (a checkpoint needs at least one parameter)")
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            _write_entries(f, entries, crc_check)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if fsync:
        _fsync_dir(directory)


def _fsync_dir(directory):
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


# ----------------------------------------------------------------------------------------------- reading

class _Corrupt(Exception):
    pass


class _Reader:
    """Sequential reader over the protobuf part of a file; tracks the position and (optionally) a crc32."""

    __slots__ = ("f", "pos", "crc", "use_crc")

    def __init__(self, f, use_crc):
        self.f, self.pos, self.crc, self.use_crc = f, 0, 0, use_crc

    def need(self, n, end):
        if n < 0 or self.pos + n > end:
            raise _Corrupt(f"field of {n} bytes overruns its message (ends at byte {end})")

    def read(self, n):
        data = self.f.read(n)
        if len(data) != n:
            raise _Corrupt("unexpected end of file")
        self.pos += n
        if self.use_crc:
            self.crc = zlib.crc32(data, self.crc)
        return data

    def read_into(self, arr):
        view = memoryview(arr).cast("B")
        got = 0
        while got < len(view):
            n = self.f.readinto(view[got:])
            if not n:
                raise _Corrupt("unexpected end of file")
            got += n
        self.pos += got
        if self.use_crc:
            self.crc = zlib.crc32(view, self.crc)

    def skip(self, n):
        if not self.use_crc:
            self.f.seek(n, os.SEEK_CUR)
            self.pos += n
            return
        scratch = np.empty(min(n, _COPY_CHUNK), np.uint8)
        while n:
            step = min(n, len(scratch))
            self.read_into(scratch[:step])
            n -= step

    def varint(self, end):
        result = shift = 0
        while True:
            if self.pos >= end:
                raise _Corrupt("truncated varint")
            byte = self.read(1)[0]
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result
            shift += 7
            if shift >= 70:
                raise _Corrupt("varint longer than 10 bytes")

    def length(self, end):
        n = self.varint(end)
        self.need(n, end)
        return n

    def skip_field(self, wire_type, end):
        if wire_type == 0:
            self.varint(end)
        elif wire_type in (1, 5):
            n = 8 if wire_type == 1 else 4
            self.need(n, end)
            self.skip(n)
        elif wire_type == 2:
            self.skip(self.length(end))
        else:
            raise _Corrupt(f"unsupported wire type {wire_type}")


def _int64(value):
    if value >= 1 << 63:
        value -= 1 << 64
    return value


def _parse_tensor(r, end, want):
    dims, type_name, content = [], None, None
    while r.pos < end:
        key = r.varint(end)
        field, wire = key >> 3, key & 7
        if field == 1 and wire == 0:
            dims.append(_int64(r.varint(end)))
        elif field == 1 and wire == 2:  # packed dims, accepted as protobuf requires
            stop = r.length(end) + r.pos  # length first: it advances pos
            while r.pos < stop:
                dims.append(_int64(r.varint(stop)))
        elif field == 2 and wire == 2:
            raw = r.read(r.length(end))
            try:
                type_name = raw.decode("ascii")
            except UnicodeDecodeError:
                raise _Corrupt("tensor_type is not ASCII") from None
        elif field == 3 and wire == 2:
            n = r.length(end)
            if type_name is not None and not want(type_name):
                r.skip(n)
                content = False  # present but not kept
            else:
                content = np.empty(n, np.uint8)
                r.read_into(content)
        elif field in (1, 2, 3):
            raise _Corrupt(f"TensorProto field {field} has wire type {wire}")
        else:
            r.skip_field(wire, end)
    if r.pos != end:
        raise _Corrupt("TensorProto overruns its length")
    if type_name is None or content is None:
        raise _Corrupt("TensorProto lacks tensor_type or tensor_content")
    if any(d < 0 for d in dims):
        raise _Corrupt(f"negative dimension in {dims}")
    return dims, type_name, content


def _parse_value(r, end, want):
    """(tag, tensor-or-None); tensor is None for a map tensor (skipped)."""
    tag, tensor, has_payload = None, None, False
    while r.pos < end:
        key = r.varint(end)
        field, wire = key >> 3, key & 7
        if field == 1 and wire == 2:
            raw = r.read(r.length(end))
            try:
                tag = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise _Corrupt("parameter name is not UTF-8") from None
        elif field == 2 and wire == 2:
            sub_end = r.length(end) + r.pos  # length first: it advances pos
            tensor, has_payload = _parse_tensor(r, sub_end, want), True
        elif field == 3 and wire == 2:  # MapTensorProto: not a plain parameter, skipped
            r.skip(r.length(end))
            tensor, has_payload = None, True
        elif field in (1, 2, 3):
            raise _Corrupt(f"Value field {field} has wire type {wire}")
        else:
            r.skip_field(wire, end)
    if r.pos != end:
        raise _Corrupt("Value overruns its length")
    if tag is None or not has_payload:
        raise _Corrupt("Value lacks its tag or its tensor")
    return tag, tensor


def _to_array(tag, dims, type_name, pieces, float32_only):
    """numpy array for one parameter (its Values' contents joined), or None when it is skipped."""
    if float32_only and type_name != "Float32":
        return None
    if any(p is False for p in pieces):
        return None
    data = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
    if type_name == "str":
        if data.nbytes % 4:
            raise _Corrupt(f"string parameter {tag!r} has {data.nbytes} bytes, not a multiple of 4")
        chars = data.nbytes // 4
        if not chars:
            return np.array("")
        return data.view(f"<U{chars}").reshape(())
    dtype = _NP_DTYPES.get(type_name)
    if dtype is None:
        logger.warning("checkpoint parameter %r has unsupported tensor_type %r: skipped", tag, type_name)
        return None
    count = math.prod(dims)
    if dims == [0] and data.nbytes == dtype.itemsize:
        dims, count = [], 1  # MindSpore reads dims [0] as a scalar
    if count * dtype.itemsize != data.nbytes:
        raise _Corrupt(f"parameter {tag!r}: {data.nbytes} bytes do not hold {type_name}{list(dims)}")
    return data.view(dtype).reshape(dims)


def _crc_trailer(f, size):
    """Expected crc32 of the protobuf part, or None when the file has no MindSpore CRC trailer."""
    if size < _CRC_TRAILER:
        return None
    f.seek(size - _CRC_TRAILER)
    tail = f.read(_CRC_TRAILER)
    f.seek(0)
    if len(tail) != _CRC_TRAILER or tail[: len(_CRC_MAGIC)] != _CRC_MAGIC:
        return None
    return int.from_bytes(tail[len(_CRC_MAGIC):], "big")


def _parse_file(f, float32_only, require_crc):
    size = os.fstat(f.fileno()).st_size
    expected_crc = _crc_trailer(f, size)
    if require_crc and expected_crc is None:
        raise _Corrupt("no CRC trailer (truncated, or not saved with crc_check)")
    end = size if expected_crc is None else size - _CRC_TRAILER
    r = _Reader(f, expected_crc is not None)

    def want(type_name):
        return not float32_only or type_name == "Float32"

    result = {}
    run_tag, run_meta, run_pieces = None, None, []
    values = 0
    while r.pos < end:
        key = r.varint(end)
        if key != 0x0A:  # field 1, length-delimited: the only field of Checkpoint
            raise _Corrupt(f"unexpected Checkpoint field {key >> 3} (wire type {key & 7})")
        sub_end = r.length(end) + r.pos  # length first: it advances pos
        tag, tensor = _parse_value(r, sub_end, want)
        values += 1
        if run_tag is not None and tag != run_tag:
            _flush(result, run_tag, run_meta, run_pieces, float32_only)
            run_tag, run_meta, run_pieces = None, None, []
        if tensor is None:  # map tensor
            continue
        dims, type_name, content = tensor
        if run_tag is not None and run_meta[1] != type_name:
            raise _Corrupt(f"slices of parameter {tag!r} have different types")
        run_tag, run_meta = tag, (dims, type_name)
        run_pieces.append(content)
    if run_tag is not None:
        _flush(result, run_tag, run_meta, run_pieces, float32_only)
    if values == 0:
        raise _Corrupt("no parameters in the file")
    if expected_crc is not None and r.crc != expected_crc:
        raise _Corrupt("CRC mismatch")
    return result


def _flush(result, tag, meta, pieces, float32_only):
    arr = _to_array(tag, meta[0], meta[1], pieces, float32_only)
    if arr is not None:
        result[tag] = arr


def load_checkpoint(path, float32_only=True, *, require_crc=False):
    """Parameters of a MindSpore checkpoint file as {name: np.ndarray}, in file order.

    With `float32_only` (default) only Float32 parameters are returned; otherwise also Float16/Float64,
    (U)Int8/16/32/64 and Bool ones with the matching dtype, and strings as 0-d str arrays (other types are
    skipped with a warning). Every byte is copied once, straight from the file into an aligned, writable,
    independent array per parameter. A CRC trailer, when present, is verified; `require_crc` also rejects
    a file without one (a file cut exactly between two parameters is otherwise a valid, shorter checkpoint).
    A corrupt, truncated, encrypted or empty file raises ValueError naming the file; OSError (e.g. a
    missing file) propagates.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        try:
            return _parse_file(f, float32_only, require_crc)
        except _Corrupt as exc:
            raise ValueError(f"{path}: not a valid MindSpore checkpoint: {exc}") from None
        except MemoryError:
            raise ValueError(f"{path}: not a valid MindSpore checkpoint: sizes exceed memory") from None
