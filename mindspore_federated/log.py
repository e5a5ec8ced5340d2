"""Package logger: one `mindspore_federated` logger, every line tagged with role and node id."""
import logging
import os
import sys

LOGGER_NAME = "mindspore_federated"
_LOGGER = logging.getLogger(LOGGER_NAME)
_GLOG_LEVELS = {"0": logging.DEBUG, "1": logging.INFO, "2": logging.WARNING, "3": logging.ERROR}
# Level names the YAML key `log_level` accepts (config/schema.py declares the key with these choices).
LEVEL_NAMES = ("DEBUG", "INFO", "WARNING", "ERROR")


class _ContextFilter(logging.Filter):
    """Adds `role` and `node` attributes to every record."""

    role = os.environ.get("MSF_ROLE", "main")
    node = ""

    def filter(self, record):
        record.role = self.role
        record.node = self.node
        return True


_FILTER = _ContextFilter()


def _level_from_env():
    level = os.environ.get("MSF_LOG_LEVEL")
    if level:
        return logging.getLevelName(level.upper()) if not level.isdigit() else int(level)
    return _GLOG_LEVELS.get(os.environ.get("GLOG_v", ""), logging.INFO)


def setup(role=None, node=None, level=None, stream=None):
    """Configures the package logger once per process (idempotent); later calls update role/node/level."""
    if role is not None:
        _FILTER.role = role
    if node is not None:
        _FILTER.node = node
    if not any(getattr(h, "_msf", False) for h in _LOGGER.handlers):
        handler = logging.StreamHandler(stream or sys.stderr)
        handler._msf = True
        handler.setFormatter(logging.Formatter(
            "[%(levelname)s] %(asctime)s [%(role)s%(node)s] %(name)s: %(message)s"))
        handler.addFilter(_FILTER)
        _LOGGER.addHandler(handler)
        _LOGGER.propagate = False
    _LOGGER.setLevel(level if level is not None else _level_from_env())
    return _LOGGER


def apply_config(cfg):
    """Applies the YAML's `log_level` (a role calls this once its config is loaded); returns the level in force.

    An empty or absent `log_level` leaves the level from the environment (MSF_LOG_LEVEL, else GLOG_v 0-3,
    else INFO) untouched; a set one wins over the environment.
    """
    name = cfg.get("log_level") or ""
    if name:
        setup(level=getattr(logging, name))
    return _LOGGER.level


def set_node(node):
    """Sets the node id shown on every log line (` <node>` after the role)."""
    _FILTER.node = f" {node}" if node else ""


def get_logger(name):
    """A child logger of the package logger (use `__name__`)."""
    if _LOGGER.level == logging.NOTSET:
        setup()
    return logging.getLogger(name if name.startswith(LOGGER_NAME) else f"{LOGGER_NAME}.{name}")


def debug(msg, *args):
    """Logs at DEBUG on the package logger (reference-compatible helper)."""
    get_logger(LOGGER_NAME).debug(msg, *args)


def info(msg, *args):
    """Logs at INFO on the package logger."""
    get_logger(LOGGER_NAME).info(msg, *args)


def warning(msg, *args):
    """Logs at WARNING on the package logger."""
    get_logger(LOGGER_NAME).warning(msg, *args)


def error(msg, *args):
    """Logs at ERROR on the package logger."""
    get_logger(LOGGER_NAME).error(msg, *args)
