"""Validation of one YAML document: flattening to dotted keys, coercion, per-key checks, problem lines."""
import logging
import math
import numbers
from collections.abc import Mapping

from mindspore_federated import errors
from mindspore_federated.config.schema import BY_KEY, SECTIONS, schema_table

# The package's logger: warnings read as coming from mindspore_federated.config.
_LOG = logging.getLogger("mindspore_federated.config")
_SCHEMA = schema_table()


# ---- type coercion -----------------------------------------------------------------------------

def type_name(value):
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, (list, tuple)):
        return "list"
    return type(value).__name__


def _shown(value):
    """The offending value for a message: scalars with their repr, containers by kind only."""
    if isinstance(value, (Mapping, list, tuple)):
        return type_name(value)
    return f"{type_name(value)} {value!r}"


def _coerce(entry, value):
    """Returns (typed value, ok); bool is never an int, an int is accepted for a float."""
    if isinstance(value, bool):
        return value, entry.type is bool
    if entry.type is int:
        return (int(value), True) if isinstance(value, numbers.Integral) else (value, False)
    if entry.type is float:
        return (value, True) if isinstance(value, numbers.Real) else (value, False)
    return value, isinstance(value, entry.type)


def _as_float(value):
    """float(value) or None when it is not finite (or too large to be a float)."""
    try:
        result = float(value)
    except OverflowError:
        return None
    return result if math.isfinite(result) else None


# ---- validation ----------------------------------------------------------------------------------

class Problems:
    """Problem lines of one load: per-key ones in schema order, then the others (unknown keys, cipher)."""

    def __init__(self, path):
        self.path = path
        self.per_key = []
        self.others = []
        self.warnings = []
        self.bad_keys = set()

    def add(self, template, key, **fields):
        """A problem of one schema key."""
        self.per_key.append(template.format(key=key, path=self.path, **fields))
        self.bad_keys.add(key)

    def add_other(self, template, **fields):
        """A problem that is not about one schema key's value (reported after the per-key ones)."""
        self.others.append(template.format(path=self.path, **fields))

    @property
    def lines(self):
        return self.per_key + self.others

    def warn(self, text):
        message = f"{text}, yaml config file: {self.path}"
        self.warnings.append(message)
        _LOG.warning("%s", message)


def _is_unset(entry, raw):
    return raw is None or (entry.type is str and raw == "")


def _resolve(entry, raw, problems):
    """Validates one present value; returns the typed value, or the default after reporting a problem."""
    value, ok = _coerce(entry, raw)
    if not ok:
        problems.add(errors.CFG_TYPE, entry.key, type=entry.type.__name__, got=_shown(raw))
        return entry.default
    if entry.type is float:
        value = _as_float(value)
        if value is None:
            problems.add(errors.CFG_RANGE, entry.key, rule=f"expected a finite number, but got {raw!r}")
            return entry.default
    if entry.choices and value not in entry.choices:
        problems.add(errors.CFG_CHOICE, entry.key, choices=f"[{', '.join(entry.choices)}]", value=value)
        return entry.default
    return _check_value(entry, value, raw, problems)


def _check_value(entry, value, raw, problems):
    if entry.range is not None and value not in entry.range:
        problems.add(errors.CFG_RANGE, entry.key, rule=f"expected in range {entry.range}, but got {raw!r}")
        return entry.default
    rule = entry.check(value) if entry.check is not None else None
    if rule is not None:
        problems.add(errors.CFG_RANGE, entry.key, rule=rule)
        return entry.default
    return value


def validate_entries(items, role, problems):
    """Every schema key -> its value (defaults applied), reporting problems in schema order."""
    values = {}
    for entry in _SCHEMA:
        values[entry.key] = _value_of(entry, items, values, role, problems)
    return values


def _value_of(entry, items, values, role, problems):
    if not _in_scope(entry, role) or not entry.is_active(values):
        return entry.default
    raw = items.get(entry.key)
    if _is_unset(entry, raw):
        if entry.is_required(values):
            problems.add(errors.CFG_MISSING, entry.key)
        return entry.default
    return _resolve(entry, raw, problems)


def _in_scope(entry, role):
    return entry.common or role != "scheduler"



# ---- flattening ------------------------------------------------------------------------------------

def _scope_keys(role):
    """(leaves, sections) read by `role`."""
    leaves = {entry.key for entry in _SCHEMA if _in_scope(entry, role)}
    sections = {s for s in SECTIONS if any(leaf.startswith(s + ".") for leaf in leaves)}
    return leaves, sections


def flatten(data, role, problems):
    """Nested mapping -> {dotted key: raw value} of the schema keys `role` reads; reports the rest."""
    leaves, sections = _scope_keys(role)
    items = {}
    _walk(data, "", leaves, sections, items, problems)
    return items


def _walk(mapping, prefix, leaves, sections, items, problems):
    for name, value in mapping.items():
        key = f"{prefix}{name}"
        if key in leaves:
            items[key] = value
        elif key in sections:
            _walk_section(key, value, leaves, sections, items, problems)
        elif key not in SECTIONS and key not in BY_KEY:
            _report_unknown(key, value, prefix, problems)


def _walk_section(key, value, leaves, sections, items, problems):
    if isinstance(value, Mapping):
        _walk(value, key + ".", leaves, sections, items, problems)
    elif value is not None:
        problems.add_other(errors.CFG_TYPE, key=key, type="mapping", got=_shown(value))


def _report_unknown(key, value, prefix, problems):
    if not prefix and (value is None or isinstance(value, Mapping)):
        problems.warn(f"Ignoring unknown section '{key}' (from a newer version?)")
    else:
        problems.add_other(errors.CFG_UNKNOWN, key=key)
