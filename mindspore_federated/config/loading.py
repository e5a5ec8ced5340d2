"""Loading a configuration: YAML file or parsed document -> validated FlConfig, every problem at once."""
import os
from collections.abc import Mapping

import yaml

from mindspore_federated import errors
from mindspore_federated.config.rules import apply_rules
from mindspore_federated.config.schema import BY_KEY, BY_LEAF, HYPER_PARAM_KEYS, ROLE_ALIASES, ROLES
from mindspore_federated.config.validation import Problems, flatten, type_name, validate_entries
from mindspore_federated.config.views import FlConfig
from mindspore_federated.errors import ConfigError

__all__ = ["load_config", "load_config_dict", "with_overrides", "with_hyper_params"]


def _normalize_role(role):
    role = ROLE_ALIASES.get(role, role)
    if role not in ROLES:
        raise ConfigError(f"Unknown config role '{role}', expected one of {', '.join(ROLES)}")
    return role


def _build(items, path, role, problems):
    """Validates flat raw items; raises one ConfigError listing every problem."""
    values = validate_entries(items, role, problems)
    apply_rules(values, role, problems)
    if problems.lines:
        raise ConfigError("\n".join(problems.lines))
    return FlConfig(path, role, values, items, tuple(problems.warnings))


def load_config_dict(data, path="<dict>", role="server"):
    """Validates an already-parsed YAML document (nested or dotted keys) for `role`."""
    role = _normalize_role(role)
    path = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(errors.CFG_FILE.format(
            path=path, reason=f"the top level must be a mapping, but got {type_name(data)}"))
    problems = Problems(path)
    items = flatten(data, role, problems)
    return _build(items, path, role, problems)


def _read_yaml(path):
    try:
        with open(path, encoding="utf-8") as stream:
            return yaml.safe_load(stream)
    except OSError as exc:
        reason = exc.strerror or str(exc)
    except (yaml.YAMLError, ValueError) as exc:
        reason = str(exc)
    raise ConfigError(errors.CFG_FILE.format(path=path, reason=reason))


def load_config(path, role="server"):
    """Reads and validates the YAML file at `path` for `role` ("server", "scheduler" or "worker")."""
    role = _normalize_role(role)
    path = os.fspath(path)
    return load_config_dict(_read_yaml(path), path=path, role=role)


def _override_key(name):
    """A dotted key, or a unique leaf name such as `start_fl_job_threshold`; None when unknown."""
    if name in BY_KEY:
        return name
    return BY_LEAF.get(name)


def with_overrides(cfg, overrides):
    """A new FlConfig: `cfg`'s raw items with {dotted key or unique leaf name: value} applied, validated like
    the file. None values are skipped (an unset command-line flag); unknown names are errors."""
    problems = Problems(cfg.path)
    items = cfg.raw_items()
    for name, value in overrides.items():
        key = _override_key(name)
        if key is None:
            problems.add_other(errors.CFG_UNKNOWN, key=name)
        elif value is not None:
            items[key] = value
    return _build(items, cfg.path, cfg.role, problems)


def with_hyper_params(cfg, params):
    """A new FlConfig adopting a cluster's hyper-params JSON (unknown and computed keys are ignored)."""
    keys = dict(HYPER_PARAM_KEYS)
    return with_overrides(cfg, {keys[name]: value for name, value in params.items() if keys.get(name)})
