"""Build and read any generated flatbuffers table by field name (the cipher messages of both sides use it)."""
import functools

import flatbuffers
from flatbuffers.table import Table


class _Offset(int):
    """An offset already in the builder (a nested table), told apart from an int scalar."""


def offset(value):
    return _Offset(value)


def _prepare(b, mod, name, value):
    if isinstance(value, _Offset):
        return value
    if isinstance(value, str):
        return _Offset(b.CreateString(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _Offset(b.CreateByteVector(bytes(value)))
    if isinstance(value, (list, tuple)):
        items = [b.CreateString(v) if isinstance(v, str) else v for v in value]
        getattr(mod, f"Start{name}Vector")(b, len(items))
        for item in reversed(items):
            b.PrependUOffsetTRelative(item)
        return _Offset(b.EndVector())
    return value


def table(b, mod, **fields):
    """Adds table `mod` (a generated module) with `fields` (CamelCase name -> str, bytes, list of strings or
    offsets, offset, or scalar; None is left out); returns its offset."""
    prepared = [(name, _prepare(b, mod, name, v)) for name, v in fields.items() if v is not None]
    mod.Start(b)
    for name, value in prepared:
        getattr(mod, f"Add{name}")(b, value)
    return _Offset(mod.End(b))


def message(mod, size_hint=0, **fields):
    """A finished buffer holding one root table `mod`."""
    b = flatbuffers.Builder(size_hint + 256)
    b.Finish(table(b, mod, **fields))
    return bytes(b.Output())


@functools.cache
def _vtable_slot(cls, name):
    """The vtable offset of vector field `name` of generated table class `cls`: the one constant >= 4 its
    generated `{name}IsNone` reads; None when the accessor does not look like that (then the slow path)."""
    consts = [c for c in getattr(cls, f"{name}IsNone").__code__.co_consts if type(c) is int and c >= 4]
    return consts[0] if len(consts) == 1 else None


def blob(obj, name):
    """Bytes of ubyte-vector field `name` of a table object (b"" when absent); read straight from the
    buffer (the generated AsNumpy accessor costs a numpy array per field)."""
    slot = _vtable_slot(type(obj), name)
    if slot is None:
        return b"" if getattr(obj, f"{name}IsNone")() else getattr(obj, f"{name}AsNumpy")().tobytes()
    tab = obj._tab
    o = tab.Offset(slot)
    if not o:
        return b""
    start = tab.Vector(o)
    return bytes(tab.Bytes[start:start + tab.VectorLen(o)])


def text(obj, name):
    """str of string field `name` (None when absent)."""
    value = getattr(obj, name)()
    return value.decode("utf-8", "replace") if value is not None else None


def strings(obj, name):
    """list of str of string-vector field `name`."""
    return [getattr(obj, name)(i).decode("utf-8", "replace") for i in range(getattr(obj, f"{name}Length")())]


def tables(obj, name):
    """list of the nested tables of vector field `name`: the first through the generated accessor (it tells
    their class), the others read straight from the vector (the accessor imports their module per call)."""
    n = getattr(obj, f"{name}Length")()
    slot = _vtable_slot(type(obj), name)
    if n == 0 or slot is None:
        return [getattr(obj, name)(i) for i in range(n)]
    first = getattr(obj, name)(0)
    cls, tab = type(first), obj._tab
    start = tab.Vector(tab.Offset(slot))
    out = [first]
    for i in range(1, n):
        entry = cls()
        entry._tab = Table(tab.Bytes, tab.Indirect(start + 4 * i))
        out.append(entry)
    return out
