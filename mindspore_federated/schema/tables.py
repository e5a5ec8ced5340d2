"""Build and read any generated flatbuffers table by field name (the cipher messages of both sides use it)."""
import flatbuffers


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


def blob(obj, name):
    """Bytes of ubyte-vector field `name` of a table object (b"" when absent)."""
    if getattr(obj, f"{name}IsNone")():
        return b""
    return getattr(obj, f"{name}AsNumpy")().tobytes()


def text(obj, name):
    """str of string field `name` (None when absent)."""
    value = getattr(obj, name)()
    return value.decode("utf-8", "replace") if value is not None else None


def strings(obj, name):
    """list of str of string-vector field `name`."""
    return [getattr(obj, name)(i).decode("utf-8", "replace") for i in range(getattr(obj, f"{name}Length")())]


def tables(obj, name):
    """list of the nested tables of vector field `name`."""
    return [getattr(obj, name)(i) for i in range(getattr(obj, f"{name}Length")())]
