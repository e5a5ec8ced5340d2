"""The loaded configuration: FlConfig (Mapping by dotted key) and its typed, read-only section views.

`cfg.client.http_engine`, `cfg.round.start_fl_job_threshold` and `cfg.encrypt.pw_encrypt.share_secrets_ratio`
are the same values as `cfg["client.http_engine"]` etc., with the schema's defaults already applied, so call
sites never repeat a key string or a default. The section classes are generated from the schema table.
"""
import dataclasses
from collections.abc import Mapping
from types import MappingProxyType

from mindspore_federated.config.rules import parse_participation_time_level
from mindspore_federated.config.schema import HYPER_PARAM_KEYS, SECURE_AGGREGATION_TYPES, schema_table
from mindspore_federated.config.thresholds import cipher_thresholds, update_model_threshold

__all__ = ["FlConfig", "SECTION_CLASSES"]


def _class_name(path):
    leaf = path.rsplit(".", 1)[-1]
    return "".join(part.capitalize() for part in leaf.split("_")) + "Section"


def _schema_tree():
    """section path ("" = top level) -> [(attribute, sub-section path or None, entry or None)] in order."""
    children = {"": []}
    for entry in schema_table():
        parts = entry.key.split(".")
        for depth in range(len(parts) - 1):
            path = ".".join(parts[:depth + 1])
            if path not in children:
                children[path] = []
                children[".".join(parts[:depth])].append((parts[depth], path, None))
        children[".".join(parts[:-1])].append((parts[-1], None, entry))
    return children


_TREE = _schema_tree()


def _make_class(path):
    fields = [(name, SECTION_CLASSES[sub] if sub else entry.type) for name, sub, entry in _TREE[path]]
    cls = dataclasses.make_dataclass(_class_name(path), fields, frozen=True, slots=True)
    cls.__module__ = __name__
    cls.__doc__ = f"The `{path}` section of the configuration (read-only, defaults applied)."
    globals()[cls.__name__] = cls
    return cls


SECTION_CLASSES = {}
for _path in sorted((p for p in _TREE if p), key=lambda p: -p.count(".")):  # innermost first
    SECTION_CLASSES[_path] = _make_class(_path)
del _path


def _section(path, values):
    kwargs = {name: _section(sub, values) if sub else values[entry.key] for name, sub, entry in _TREE[path]}
    return SECTION_CLASSES[path](**kwargs)


# Top-level attribute -> ("section", path) or ("key", dotted key).
_TOP = {name: ("section", sub) if sub else ("key", entry.key) for name, sub, entry in _TREE[""]}


class FlConfig(Mapping):
    """An immutable, validated configuration: `cfg[dotted_key]` gives the typed value (defaults applied), and
    `cfg.<section>.<key>` the same value through a typed section view (`cfg.client.http_engine`).

    Every schema key is present; keys a role does not read (e.g. `round.*` for the scheduler) and keys of an
    unselected encrypt sub-section hold their defaults.
    """

    __slots__ = ("_path", "_role", "_values", "_items", "_warnings", "_sections")

    def __init__(self, path, role, values, items, warnings=()):
        object.__setattr__(self, "_path", path)
        object.__setattr__(self, "_role", role)
        object.__setattr__(self, "_values", MappingProxyType(dict(values)))
        object.__setattr__(self, "_items", MappingProxyType(dict(items)))
        object.__setattr__(self, "_warnings", tuple(warnings))
        object.__setattr__(self, "_sections", {name: _section(path_, self._values)
                                               for name, (kind, path_) in _TOP.items() if kind == "section"})

    def __setattr__(self, name, value):
        raise AttributeError("FlConfig is immutable; use with_overrides()")

    def __delattr__(self, name):
        raise AttributeError("FlConfig is immutable")

    def __reduce__(self):
        return FlConfig, (self._path, self._role, dict(self._values), dict(self._items), self._warnings)

    def __getattr__(self, name):
        """Section views (`cfg.round`) and top-level keys (`cfg.fl_iteration_num`)."""
        kind, target = _TOP.get(name, (None, None)) if not name.startswith("_") else (None, None)
        if kind == "section":
            return self._sections[name]
        if kind == "key":
            return self._values[target]
        raise AttributeError(f"'FlConfig' object has no attribute '{name}'")

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(_TOP))

    def __getitem__(self, key):
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def __repr__(self):
        return f"FlConfig(path={self._path!r}, role={self._role!r}, fl_name={self.fl_name!r})"

    @property
    def path(self):
        return self._path

    @property
    def role(self):
        return self._role

    @property
    def warnings(self):
        """Warnings logged while loading (unknown sections, fallbacks, forced values)."""
        return self._warnings

    @property
    def fl_name(self):
        return self._values["fl_name"]

    @property
    def redis_address(self):
        return self._values["distributed_cache.address"]

    @property
    def server_mode(self):
        return self._values["server_mode"]

    @property
    def encrypt_type(self):
        return self._values["encrypt.encrypt_type"]

    @property
    def enable_ssl(self):
        return self._values["enable_ssl"]

    @property
    def pki_verify(self):
        return self._values["client_verify.pki_verify"]

    @property
    def secure_aggregation(self):
        """True for the pairwise-mask encrypt types (PW_ENCRYPT, STABLE_PW_ENCRYPT)."""
        return self.encrypt_type in SECURE_AGGREGATION_TYPES

    @property
    def participation_time_levels(self):
        """The two bucket bounds in minutes, e.g. (5, 15)."""
        return parse_participation_time_level(self._values["summary.participation_time_level"])

    @property
    def update_model_threshold(self):
        """U = ceil(T * update_model_ratio)."""
        values = self._values
        return update_model_threshold(values["round.start_fl_job_threshold"],
                                      values["round.update_model_ratio"])

    def cipher_thresholds(self):
        """Round name -> counter threshold of the cipher rounds (spec §3.6)."""
        return cipher_thresholds(self._values)

    def as_dict(self):
        """A flat {dotted key: value} copy."""
        return dict(self._values)

    def raw_items(self):
        """A copy of the flat {dotted key: raw value} the file gave (before defaults and coercion)."""
        return dict(self._items)

    def hyper_params(self):
        """The hyper-params JSON object of spec §1.10, keys in the reference order.

        `secure_aggregation` is True for PW_ENCRYPT and STABLE_PW_ENCRYPT. Meaningful for servers and workers
        (the scheduler role leaves round keys at their defaults).
        """
        return {name: (self.secure_aggregation if key is None else self._values[key])
                for name, key in HYPER_PARAM_KEYS}

    def with_overrides(self, overrides):
        """A new FlConfig with {dotted key or unique leaf name: value} applied, validated like the file.

        None values are skipped (an unset command-line flag); unknown names are errors.
        """
        from mindspore_federated.config.loading import with_overrides
        return with_overrides(self, overrides)

    def with_hyper_params(self, params):
        """A new FlConfig adopting a cluster's hyper-params JSON (unknown and computed keys are ignored)."""
        from mindspore_federated.config.loading import with_hyper_params
        return with_hyper_params(self, params)
