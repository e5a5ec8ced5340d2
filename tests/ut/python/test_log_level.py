"""`log_level` in the YAML: declared once in the schema, documented in the example YAMLs, applied by log."""
import logging
from pathlib import Path

import pytest
import yaml

from mindspore_federated import config as cfgmod
from mindspore_federated import errors, log
from mindspore_federated.config import load_config, load_config_dict
from mindspore_federated.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = (REPO / "example" / "default_yaml_config.yaml",
            REPO / "example" / "cross_device_lenet_femnist" / "yamls" / "lenet.yaml")
BASE = {"fl_name": "Lenet", "fl_iteration_num": 2, "server_mode": "FEDERATED_LEARNING", "enable_ssl": False,
        "distributed_cache": {"address": "127.0.0.1:6379"},
        "round": {"start_fl_job_threshold": 2, "start_fl_job_time_window": 30000, "update_model_ratio": 1.0,
                  "update_model_time_window": 30000, "global_iteration_time_window": 60000},
        "summary": {"metrics_file": "metrics.json", "failure_event_file": "event.txt"}}


@pytest.fixture
def package_logger():
    """The package logger's level and handlers, restored after the test."""
    logger = logging.getLogger(log.LOGGER_NAME)
    level, handlers, propagate = logger.level, list(logger.handlers), logger.propagate
    yield logger
    logger.setLevel(level)
    logger.handlers[:] = handlers
    logger.propagate = propagate


def test_schema_declares_log_level_once():
    entries = [e for e in cfgmod.schema_table() if e.key.rsplit(".", 1)[-1] == "log_level"]
    assert len(entries) == 1
    entry = entries[0]
    assert entry.key == "log_level" and entry.type is str and entry.common and not entry.required
    assert entry.choices == log.LEVEL_NAMES == ("DEBUG", "INFO", "WARNING", "ERROR")
    assert entry.default == ""


@pytest.mark.parametrize("role", ["server", "scheduler", "worker"])
@pytest.mark.parametrize("level", ["DEBUG", "INFO", "WARNING", "ERROR"])
def test_every_role_reads_each_level(role, level):
    assert load_config_dict({**BASE, "log_level": level}, role=role)["log_level"] == level


def test_absent_or_empty_log_level_is_the_default():
    assert load_config_dict(BASE)["log_level"] == ""
    assert load_config_dict({**BASE, "log_level": ""})["log_level"] == ""
    assert load_config_dict({**BASE, "log_level": None}, role="scheduler")["log_level"] == ""


def test_bad_log_level_is_reported_with_the_other_problems():
    with pytest.raises(ConfigError) as info:
        load_config_dict({**BASE, "log_level": "verbose", "fl_iteration_num": 0, "enable_ssl": "no"},
                         path="x.yaml")
    lines = str(info.value).splitlines()
    choice = errors.CFG_CHOICE.format(key="log_level", path="x.yaml", value="verbose",
                                      choices="[DEBUG, INFO, WARNING, ERROR]")
    assert choice in lines and len(lines) == 3, lines
    with pytest.raises(ConfigError, match="'log_level' is expected to be type str"):
        load_config_dict({**BASE, "log_level": 10})
    with pytest.raises(ConfigError, match="can be only one of"):
        load_config_dict({**BASE, "log_level": "debug"})


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_yamls_document_log_level_and_every_other_key(path):
    text = path.read_text(encoding="utf-8")
    assert "log_level: \"\"" in text and "one of DEBUG | INFO | WARNING | ERROR" in text
    data = yaml.safe_load(text)
    for entry in cfgmod.schema_table():
        node = data
        for part in entry.key.split("."):
            assert part in node, f"{entry.key} missing from {path}"
            node = node[part]
    assert load_config(path)["log_level"] == ""


def test_apply_config_sets_the_level_and_wins_over_the_environment(package_logger, monkeypatch):
    monkeypatch.setenv("MSF_LOG_LEVEL", "ERROR")
    log.setup(role="server")
    assert package_logger.level == logging.ERROR
    for name in log.LEVEL_NAMES:
        cfg = load_config_dict({**BASE, "log_level": name})
        assert log.apply_config(cfg) == getattr(logging, name) == package_logger.level
    assert any(getattr(h, "_msf", False) for h in package_logger.handlers)


def test_apply_config_without_log_level_keeps_the_environment_level(package_logger, monkeypatch):
    monkeypatch.setenv("MSF_LOG_LEVEL", "WARNING")
    log.setup(role="scheduler")
    assert log.apply_config(load_config_dict(BASE, role="scheduler")) == logging.WARNING
    monkeypatch.delenv("MSF_LOG_LEVEL")
    monkeypatch.setenv("GLOG_v", "0")
    log.setup()
    assert log.apply_config(load_config_dict(BASE)) == logging.DEBUG == package_logger.level
