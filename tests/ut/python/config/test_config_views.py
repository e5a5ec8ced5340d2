"""Typed section views of FlConfig (`cfg.client.http_engine`) and the one update-model threshold function."""
import dataclasses
import pickle

import pytest

from mindspore_federated import config as cfgmod
from mindspore_federated.config import FlConfig, load_config_dict, update_model_threshold

BASE = {
    "fl_name": "Views", "fl_iteration_num": 3, "server_mode": "FEDERATED_LEARNING", "enable_ssl": False,
    "distributed_cache": {"address": "127.0.0.1:6379"},
    "round": {"start_fl_job_threshold": 25, "start_fl_job_time_window": 30000, "update_model_ratio": 0.28,
              "update_model_time_window": 30000, "global_iteration_time_window": 60000},
    "summary": {"metrics_file": "m.json", "failure_event_file": "e.txt"},
    "client": {"http_engine": "aiohttp"},
}


def view_value(cfg, key):
    value = cfg
    for part in key.split("."):
        value = getattr(value, part)
    return value


def test_every_schema_key_is_an_attribute_with_the_mapping_value():
    cfg = load_config_dict(BASE)
    for entry in cfgmod.schema_table():
        assert view_value(cfg, entry.key) == cfg[entry.key], entry.key
    assert len(cfg) == len(cfgmod.schema_table())  # Mapping access unchanged


def test_defaults_come_from_the_schema_not_the_call_site():
    cfg = load_config_dict(BASE)
    assert cfg.client.http_engine == "aiohttp"
    assert cfg.client.max_concurrent_uploads == 8 and cfg.client.connection_num == 10000
    assert cfg.client.http_url_prefix == "" and cfg.summary.continuous_failure_times == 10
    assert cfg.encrypt.pw_encrypt.share_secrets_ratio == 1.0
    assert cfg.distributed_cache.address == cfg.redis_address == "127.0.0.1:6379"
    assert cfg.fl_iteration_num == 3 and cfg.log_level == ""


def test_sections_are_typed_read_only_dataclasses():
    cfg = load_config_dict(BASE)
    section = cfg.round
    assert dataclasses.is_dataclass(section) and type(section).__name__ == "RoundSection"
    types = {f.name: f.type for f in dataclasses.fields(section)}
    assert types["start_fl_job_threshold"] is int and types["update_model_ratio"] is float
    with pytest.raises(dataclasses.FrozenInstanceError):
        section.start_fl_job_threshold = 1
    with pytest.raises(AttributeError):
        _ = cfg.nonexistent_section
    with pytest.raises(AttributeError, match="immutable"):
        cfg.round = None
    assert {"round", "client", "encrypt", "fl_iteration_num"} <= set(dir(cfg))


def test_views_survive_pickling_and_overrides():
    cfg = load_config_dict(BASE)
    again = pickle.loads(pickle.dumps(cfg))
    assert isinstance(again, FlConfig) and again.client == cfg.client and again.round == cfg.round
    changed = cfg.with_overrides({"client.http_engine": "fast", "start_fl_job_threshold": 4})
    assert changed.client.http_engine == "fast" and changed.round.start_fl_job_threshold == 4
    assert cfg.client.http_engine == "aiohttp"


@pytest.mark.parametrize("threshold, ratio, expected", [
    (25, 0.28, 7),    # 25 * 0.28 is 7.000000000000001 in binary floating point
    (10, 0.7, 7),     # 7.000000000000001 as well
    (100, 0.29, 29),  # 28.999999999999996: no rounding down either
    (3, 0.5, 2), (1, 0.01, 1), (2, 1.0, 2), (4294967295, 1.0, 4294967295),
])
def test_update_model_threshold_is_exact(threshold, ratio, expected):
    assert update_model_threshold(threshold, ratio) == expected


def test_config_and_server_compute_the_same_threshold():
    cfg = load_config_dict(BASE)
    assert cfg.update_model_threshold == 7
    hp = cfg.hyper_params()  # what a server reads back from Redis
    assert update_model_threshold(hp["start_fl_job_threshold"], hp["update_model_ratio"]) == 7
    from mindspore_federated.server.engine.context import EngineContext
    from mindspore_federated.server.engine.reply_cache import ReplyCache

    ctx = object.__new__(EngineContext)  # only what apply_hyper_params touches
    ctx.replies = ReplyCache()
    ctx.apply_hyper_params(hp)
    assert ctx.threshold_update == 7  # the server's engine: the same exact-decimal rule
