"""Disaster-recovery files (seed 001 `config_file_path` JSON with a `recovery` section): what a restarted
server needs to take back its place (node id, rank), persisted atomically per server."""
import json
import os

from mindspore_federated import errors
from mindspore_federated.address import split_host_port

STORAGE_FILE = 1


def load_json_config(path):
    """The JSON config of `--config_file_path` (security and `recovery` sections); {} when not given."""
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise RuntimeError(errors.JSON_CONFIG_LOAD.format(path=path, reason=exc)) from None
    if not isinstance(data, dict):
        raise RuntimeError(errors.JSON_CONFIG_LOAD.format(path=path, reason=errors.JSON_CONFIG_NOT_OBJECT))
    return data


def recovery_path(json_config, http_address):
    """This server's recovery file, or None when the `recovery` section is absent.

    Accepts the reference's `storge_file_path` spelling as well as `storage_file_path`; every server gets its
    own file (suffix = HTTP port) so that servers sharing one config never overwrite each other.
    """
    section = json_config.get("recovery")
    if not isinstance(section, dict):
        return None
    if int(section.get("storage_type", STORAGE_FILE)) != STORAGE_FILE:
        raise RuntimeError(errors.RECOVERY_STORAGE_TYPE)
    base = section.get("storage_file_path") or section.get("storge_file_path") or "recovery.json"
    return f"{base}.{split_host_port(http_address)[1]}"


class RecoveryFile:
    """JSON state of one server: {"node_id", "rank", "fl_name", "instance", "iteration", ...}."""

    def __init__(self, path):
        self.path = path

    def load(self):
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def save(self, data):
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        tmp = f"{self.path}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, sort_keys=True)
        os.replace(tmp, self.path)
