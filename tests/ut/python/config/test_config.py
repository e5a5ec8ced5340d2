"""YAML configuration: schema, typed values and defaults, every problem reported at once, spec rules."""
import copy
import logging
import pickle
from pathlib import Path

import pytest
import yaml

from mindspore_federated import config as cfgmod
from mindspore_federated import errors
from mindspore_federated.config import load_config, load_config_dict
from mindspore_federated.errors import ConfigError

REPO = Path(__file__).resolve().parents[4]
EXAMPLE = REPO / "example" / "default_yaml_config.yaml"
P = "<dict>"

GOOD = {
    "fl_name": "Lenet",
    "fl_iteration_num": 25,
    "server_mode": "FEDERATED_LEARNING",
    "enable_ssl": False,
    "distributed_cache": {"type": "redis", "address": "127.0.0.1:6379"},
    "round": {"start_fl_job_threshold": 2, "start_fl_job_time_window": 30000, "update_model_ratio": 1.0,
              "update_model_time_window": 30000, "global_iteration_time_window": 60000},
    "summary": {"metrics_file": "metrics.json", "failure_event_file": "event.txt"},
}
PW_SECTION = {"share_secrets_ratio": 1.0, "cipher_time_window": 3000, "reconstruct_secrets_threshold": 1}
SSL_SECTION = {"server_cert_path": "server.p12", "client_cert_path": "client.p12", "ca_cert_path": "ca.crt",
               "cipher_list": "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384"}


def good(**sections):
    """A deep copy of GOOD with sections/keys updated (nested dicts are merged one level deep)."""
    data = copy.deepcopy(GOOD)
    for name, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(name), dict):
            data[name].update(value)
        else:
            data[name] = value
    return data


def without(data, dotted):
    data = copy.deepcopy(data)
    *parents, leaf = dotted.split(".")
    node = data
    for part in parents:
        node = node[part]
    del node[leaf]
    return data


def problems(data, role="server"):
    with pytest.raises(ConfigError) as info:
        load_config_dict(data, role=role)
    return str(info.value).split("\n")


def missing(key, path=P):
    return errors.CFG_MISSING.format(key=key, path=path)


def line(text):
    """A problem line of a dict-loaded config."""
    return f"{text}, yaml config file: {P}"


def pw_encrypt(encrypt_type="PW_ENCRYPT", **pw_keys):
    """An encrypt section selecting a pairwise-mask type with a complete pw_encrypt sub-section."""
    return {"encrypt_type": encrypt_type, "pw_encrypt": dict(PW_SECTION, **pw_keys)}


def write_yaml(tmp_path, text, name="cfg.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def config_log():
    """Records the config module's log records (the package logger may not propagate to the root)."""
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger(cfgmod.__name__)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(old_level)


# ---- a good file ---------------------------------------------------------------------------------

def test_good_file_loads_typed_values_and_defaults(tmp_path):
    path = write_yaml(tmp_path, yaml.safe_dump(good(round={"update_model_ratio": 1})))
    cfg = load_config(path)
    assert cfg.path == str(path) and cfg.role == "server"
    assert cfg["round.start_fl_job_threshold"] == 2
    assert cfg["round.update_model_ratio"] == 1.0 and isinstance(cfg["round.update_model_ratio"], float)
    assert (cfg.fl_name, cfg.redis_address) == ("Lenet", "127.0.0.1:6379")
    assert cfg.server_mode == "FEDERATED_LEARNING"
    assert cfg.enable_ssl is False and cfg.encrypt_type == "NOT_ENCRYPT" and cfg.pki_verify is False
    # Defaults of absent optional keys.
    assert cfg["summary.continuous_failure_times"] == 10
    assert cfg["summary.participation_time_level"] == "5,15" and cfg.participation_time_levels == (5, 15)
    assert cfg["compression.upload_sparse_rate"] == 0.4
    assert cfg["client.client_epoch_num"] == 25 and cfg["client.client_learning_rate"] == 0.001
    assert cfg["client_verify.replay_attack_time_diff"] == 600000
    assert cfg["ssl.cert_expire_warning_time_in_day"] == 90
    assert cfg.get("no.such.key") is None and cfg.get("no.such.key", 7) == 7
    assert cfg.warnings == ()


def test_every_schema_key_is_present_in_as_dict():
    cfg = load_config_dict(good())
    flat = cfg.as_dict()
    assert list(flat) == [entry.key for entry in cfgmod.schema_table()]
    flat["fl_name"] = "changed"
    assert cfg.fl_name == "Lenet"


def test_dotted_keys_are_accepted_in_dicts():
    data = without(good(), "round.start_fl_job_threshold")
    data["round.start_fl_job_threshold"] = 5
    assert load_config_dict(data)["round.start_fl_job_threshold"] == 5


def test_config_is_immutable_and_picklable():
    cfg = load_config_dict(good(), path="x.yaml")
    with pytest.raises(AttributeError):
        cfg.fl_name = "other"
    with pytest.raises(TypeError):
        cfg["fl_name"] = "other"
    clone = pickle.loads(pickle.dumps(cfg))
    assert clone == cfg and clone.path == "x.yaml" and clone.role == "server"


# ---- every problem at once ------------------------------------------------------------------------

BAD_YAML = """\
fl_name: ""
fl_iteration_num: "25"
server_mode: FEDERATED
enable_ssl: 1
distributed_cache:
  address: 127.0.0.1:6379
round:
  start_fl_job_threshold: true
  start_fl_job_time_window: 30000
  update_model_ratio: 0
  update_model_time_window: {window: 3000}
summary:
  metrics_file: metrics.json
  failure_event_file: event.txt
  bogus: 1
encrypt:
  encrypt_type: PW
unsupervised:
  cluster_client_num: 10
"""


def test_bad_file_lists_every_problem_once(tmp_path, config_log):
    path = write_yaml(tmp_path, BAD_YAML)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert isinstance(info.value, RuntimeError)
    suffix = f", yaml config file: {path}"
    assert str(info.value).split("\n") == [
        f"The parameter 'fl_name' is missing{suffix}",
        f"The parameter 'fl_iteration_num' is expected to be type int, but got str '25'{suffix}",
        f"The value of parameter 'server_mode' can be only one of [FEDERATED_LEARNING, HYBRID_TRAINING], "
        f"but got 'FEDERATED'{suffix}",
        f"The parameter 'enable_ssl' is expected to be type bool, but got int 1{suffix}",
        f"The parameter 'round.start_fl_job_threshold' is expected to be type int, but got bool True{suffix}",
        f"Failed to check value of parameter 'round.update_model_ratio': expected in range (0, 1], "
        f"but got 0{suffix}",
        f"The parameter 'round.update_model_time_window' is expected to be type int, but got mapping{suffix}",
        f"The parameter 'round.global_iteration_time_window' is missing{suffix}",
        f"The value of parameter 'encrypt.encrypt_type' can be only one of [NOT_ENCRYPT, PW_ENCRYPT, "
        f"STABLE_PW_ENCRYPT, DP_ENCRYPT, SIGNDS], but got 'PW'{suffix}",
        f"The parameter 'summary.bogus' is not a known configuration key{suffix}",
    ]
    assert [r.getMessage() for r in config_log] == [
        f"Ignoring unknown section 'unsupervised' (from a newer version?){suffix}"]


# ---- type rules ------------------------------------------------------------------------------------

@pytest.mark.parametrize("key,value,type_name", [
    ("round.start_fl_job_threshold", "1", "int"),
    ("round.start_fl_job_time_window", "10000", "int"),
    ("round.update_model_ratio", "1.0", "float"),
    ("round.global_iteration_time_window", "30000", "int"),
    ("compression.upload_sparse_rate", "0.4", "float"),
    ("client.client_learning_rate", "0.01", "float"),
])
def test_quoted_number_is_a_type_error(key, value, type_name):
    section, leaf = key.split(".")
    assert problems(good(**{section: {leaf: value}})) == [
        line(f"The parameter '{key}' is expected to be type {type_name}, but got str '{value}'")]


@pytest.mark.parametrize("key,type_name", [
    ("round.global_iteration_time_window", "int"), ("round.update_model_ratio", "float"),
    ("summary.metrics_file", "str"), ("client_verify.pki_verify", "bool"),
])
def test_mapping_where_a_scalar_is_expected_is_a_type_error(key, type_name):
    section, leaf = key.split(".")
    lines = problems(good(**{section: {leaf: {"key": 3000.0}}}))
    assert lines == [f"The parameter '{key}' is expected to be type {type_name}, but got mapping, "
                     f"yaml config file: {P}"]


def test_mapping_for_a_top_level_scalar_and_scalar_for_a_section():
    lines = problems(good(fl_name={"a": 1}, summary=5))
    assert lines == [
        f"The parameter 'fl_name' is expected to be type str, but got mapping, yaml config file: {P}",
        missing("summary.metrics_file"), missing("summary.failure_event_file"),
        f"The parameter 'summary' is expected to be type mapping, but got int 5, yaml config file: {P}",
    ]


def test_list_is_a_type_error():
    assert problems(good(round={"start_fl_job_threshold": [1, 2]})) == [
        f"The parameter 'round.start_fl_job_threshold' is expected to be type int, but got list, "
        f"yaml config file: {P}"]


def test_bool_is_not_an_int_and_int_is_not_a_bool():
    lines = problems(good(enable_ssl=0, round={"start_fl_job_threshold": False}))
    assert lines == [
        f"The parameter 'enable_ssl' is expected to be type bool, but got int 0, yaml config file: {P}",
        f"The parameter 'round.start_fl_job_threshold' is expected to be type int, but got bool False, "
        f"yaml config file: {P}"]


def test_bool_is_not_a_float_and_float_is_not_an_int():
    lines = problems(good(round={"update_model_ratio": True, "start_fl_job_time_window": 3000.0}))
    assert lines == [
        f"The parameter 'round.start_fl_job_time_window' is expected to be type int, but got float 3000.0, "
        f"yaml config file: {P}",
        f"The parameter 'round.update_model_ratio' is expected to be type float, but got bool True, "
        f"yaml config file: {P}"]


def test_int_is_accepted_for_a_float_then_range_checked():
    cfg = load_config_dict(good(encrypt={"encrypt_type": "SIGNDS", "signds": {"sign_eps": 100}}))
    assert cfg["encrypt.signds.sign_eps"] == 100.0 and isinstance(cfg["encrypt.signds.sign_eps"], float)
    assert problems(good(encrypt={"encrypt_type": "SIGNDS", "signds": {"sign_eps": 101}})) == [
        line("Failed to check value of parameter 'encrypt.signds.sign_eps': expected in range (0, 100], "
             "but got 101")]


def test_non_finite_float_is_a_range_error():
    lines = problems(good(round={"update_model_ratio": float("nan")}))
    assert lines == [line("Failed to check value of parameter 'round.update_model_ratio': "
                          "expected a finite number, but got nan")]


def test_empty_string_counts_as_missing_for_required_str_and_default_for_optional():
    lines = problems(good(fl_name="", distributed_cache={"address": ""}))
    assert lines == [missing("fl_name"), missing("distributed_cache.address")]
    cfg = load_config_dict(good(encrypt={"encrypt_type": ""}, summary={"participation_time_level": ""}))
    assert cfg.encrypt_type == "NOT_ENCRYPT" and cfg["summary.participation_time_level"] == "5,15"


def test_null_value_counts_as_missing():
    assert problems(good(server_mode=None)) == [missing("server_mode")]


# ---- missing keys ------------------------------------------------------------------------------------

def test_missing_round_section_reports_its_keys_in_schema_order():
    lines = problems(without(good(), "round"))
    assert lines == [missing(f"round.{leaf}") for leaf in (
        "start_fl_job_threshold", "start_fl_job_time_window", "update_model_ratio",
        "update_model_time_window", "global_iteration_time_window")]


def test_empty_round_section_is_like_a_missing_one():
    assert problems(good(round=None))[0] == missing("round.start_fl_job_threshold")


@pytest.mark.parametrize("key", [
    "fl_name", "fl_iteration_num", "server_mode", "enable_ssl", "distributed_cache.address",
    "round.start_fl_job_threshold", "round.update_model_ratio", "summary.metrics_file",
    "summary.failure_event_file"])
def test_each_required_key(key):
    assert problems(without(good(), key)) == [missing(key)]


def test_empty_file_reports_every_required_key(tmp_path):
    path = write_yaml(tmp_path, "")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = str(info.value).split("\n")
    assert lines[0] == missing("fl_name", path) and len(lines) == 12


# ---- enums and ranges ---------------------------------------------------------------------------------

@pytest.mark.parametrize("key,value,choices", [
    ("compression.upload_compress_type", "QUANT", "[NO_COMPRESS, DIFF_SPARSE_QUANT]"),
    ("compression.download_compress_type", "DIFF_SPARSE_QUANT", "[NO_COMPRESS, QUANT]"),
    ("distributed_cache.type", "memcached", "[redis]"),
])
def test_enum_errors(key, value, choices):
    section, leaf = key.split(".")
    assert problems(good(**{section: {leaf: value}})) == [
        line(f"The value of parameter '{key}' can be only one of {choices}, but got '{value}'")]


def test_enum_with_wrong_type_is_a_type_error():
    assert problems(good(encrypt={"encrypt_type": 0})) == [
        line("The parameter 'encrypt.encrypt_type' is expected to be type str, but got int 0")]


RANGE_CASES = [
    # key, extra sections enabling the key, good values, bad values
    ("round.update_model_ratio", {}, [1e-9, 0.5, 1, 1.0], [0, 0.0, -0.1, 1.01]),
    ("round.start_fl_job_threshold", {}, [1, 2 ** 32 - 1], [0, -1, 2 ** 32]),
    ("round.global_iteration_time_window", {}, [1, 2 ** 32 - 1], [0, 2 ** 32]),
    ("fl_iteration_num", {}, [1, 2 ** 32 - 1], [0, 2 ** 32]),
    ("summary.continuous_failure_times", {}, [1, 1000], [0]),
    ("compression.upload_sparse_rate", {}, [0.01, 1], [0, 1.5]),
    ("client.client_learning_rate", {}, [1e-6], [0, -1]),
    ("client.client_batch_size", {}, [1], [0]),
    ("client_verify.replay_attack_time_diff", {}, [0, 10], [-1]),
    ("encrypt.signds.sign_k", {"encrypt": {"encrypt_type": "SIGNDS"}}, [0.25, 0.001], [0, 0.0, 0.26]),
    ("encrypt.signds.sign_thr_ratio", {"encrypt": {"encrypt_type": "SIGNDS"}}, [0.5, 1], [0.49, 1.01]),
    ("encrypt.signds.sign_dim_out", {"encrypt": {"encrypt_type": "SIGNDS"}}, [0, 50], [-1, 51]),
    ("encrypt.signds.sign_global_lr", {"encrypt": {"encrypt_type": "SIGNDS"}}, [0.1], [0.0]),
    ("encrypt.dp_encrypt.dp_delta", {"encrypt": {"encrypt_type": "DP_ENCRYPT"}}, [0.5], [0.0, 1.0]),
    ("encrypt.dp_encrypt.dp_eps", {"encrypt": {"encrypt_type": "DP_ENCRYPT"}}, [0.1], [0.0]),
    ("encrypt.pw_encrypt.share_secrets_ratio", {"encrypt": {"encrypt_type": "STABLE_PW_ENCRYPT"}},
     [1], [0, 1.01]),
    ("encrypt.pw_encrypt.cipher_time_window", {"encrypt": {"encrypt_type": "STABLE_PW_ENCRYPT"}},
     [1], [0, 2 ** 32]),
    ("ssl.cert_expire_warning_time_in_day", {"enable_ssl": True}, [7, 180], [6, 181]),
]


def _with_value(key, extra, value):
    data = good(**extra)
    if key.startswith("ssl."):
        data["ssl"] = dict(SSL_SECTION)
    if key.startswith("encrypt.pw_encrypt."):
        data["encrypt"]["pw_encrypt"] = dict(PW_SECTION)
    node = data
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return data


@pytest.mark.parametrize("key,extra,good_values,bad_values", RANGE_CASES, ids=[c[0] for c in RANGE_CASES])
def test_range_boundaries(key, extra, good_values, bad_values):
    for value in good_values:
        assert load_config_dict(_with_value(key, extra, value))[key] == value
    for value in bad_values:
        lines = problems(_with_value(key, extra, value))
        assert len(lines) == 1 and lines[0].startswith(f"Failed to check value of parameter '{key}': "), lines
        assert lines[0].endswith(f", but got {value!r}, yaml config file: {P}")


def test_range_message_names_the_interval():
    lines = problems(good(round={"start_fl_job_threshold": 0}))
    assert lines == [f"Failed to check value of parameter 'round.start_fl_job_threshold': expected in range "
                     f"[1, 4294967295], but got 0, yaml config file: {P}"]


@pytest.mark.parametrize("address", ["127.0.0.1:6379", "localhost:1", "unix:/tmp/redis.sock", "[::1]:6379",
                                     "sentinel://127.0.0.1:26379,10.0.0.2:26379/mymaster",
                                     "sentinel://[::1]:26379/m", "cluster://127.0.0.1:7000",
                                     "cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002"])
def test_valid_cache_addresses(address):
    assert load_config_dict(good(distributed_cache={"address": address})).redis_address == address


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.1:", ":6379", "127.0.0.1:65536", "h:0", "unix:",
                                     "127.0.0.1:port", "sentinel://127.0.0.1:26379", "sentinel://127.0.0.1:26379/",
                                     "sentinel:///m", "sentinel://127.0.0.1:26379,,h:1/m", "cluster://",
                                     "cluster://127.0.0.1", "cluster://127.0.0.1:7000,"])
def test_invalid_cache_addresses(address):
    lines = problems(good(distributed_cache={"address": address}))
    assert len(lines) == 1
    assert lines[0].startswith("Failed to check value of parameter 'distributed_cache.address': expected")


# ---- participation_time_level ------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["abc", "15,5", "5,5", "0,5", "5,2881", "5", "5,15,30", "-1,5", "a,b",
                                  "5;15"])
def test_invalid_participation_time_level_falls_back(text, config_log):
    cfg = load_config_dict(good(summary={"participation_time_level": text}))
    assert cfg["summary.participation_time_level"] == "5,15" and cfg.participation_time_levels == (5, 15)
    assert len(cfg.warnings) == 1 and f"'{text}'" in cfg.warnings[0]
    assert [r.getMessage() for r in config_log] == list(cfg.warnings)


@pytest.mark.parametrize("text,levels", [("10,20", (10, 20)), ("1,2880", (1, 2880)), (" 3, 4", (3, 4))])
def test_valid_participation_time_level(text, levels, config_log):
    cfg = load_config_dict(good(summary={"participation_time_level": text}))
    assert cfg.participation_time_levels == levels and cfg.warnings == () and config_log == []


def test_participation_time_level_must_be_a_string():
    assert problems(good(summary={"participation_time_level": 5})) == [
        f"The parameter 'summary.participation_time_level' is expected to be type str, but got int 5, "
        f"yaml config file: {P}"]


# ---- unknown keys ------------------------------------------------------------------------------------

def test_unknown_keys_are_errors_in_document_order():
    data = good(round={"start_fl_job_treshold": 2}, fl_nmae="x", encrypt={"pw_encrypt": {"ratio": 1}})
    assert problems(data) == [errors.CFG_UNKNOWN.format(key=key, path=P) for key in (
        "round.start_fl_job_treshold", "fl_nmae", "encrypt.pw_encrypt.ratio")]


def test_unknown_top_level_sections_only_warn(config_log):
    cfg = load_config_dict(good(unsupervised={"cluster_client_num": 1000, "eval_type": "SILHOUETTE_SCORE"},
                                aggregation=None))
    assert cfg.warnings == (
        f"Ignoring unknown section 'unsupervised' (from a newer version?), yaml config file: {P}",
        f"Ignoring unknown section 'aggregation' (from a newer version?), yaml config file: {P}")
    assert [r.levelno for r in config_log] == [logging.WARNING, logging.WARNING]
    assert "unsupervised.cluster_client_num" not in cfg


# ---- encrypt sub-sections ----------------------------------------------------------------------------

GARBAGE_ENCRYPT = {
    "pw_encrypt": {"share_secrets_ratio": "x", "cipher_time_window": 0},
    "dp_encrypt": {"dp_eps": {"a": 1}, "dp_delta": 5.0},
    "signds": {"sign_k": 1.0, "sign_dim_out": "0"},
}


def test_unselected_encrypt_sections_are_not_checked_and_keep_defaults():
    cfg = load_config_dict(good(encrypt={"encrypt_type": "NOT_ENCRYPT", **copy.deepcopy(GARBAGE_ENCRYPT)}))
    assert cfg["encrypt.dp_encrypt.dp_eps"] == 50.0 and cfg["encrypt.signds.sign_k"] == 0.01
    assert cfg["encrypt.pw_encrypt.share_secrets_ratio"] == 1.0


def test_only_the_selected_encrypt_section_is_checked():
    encrypt = {"encrypt_type": "DP_ENCRYPT", **copy.deepcopy(GARBAGE_ENCRYPT)}
    assert problems(good(encrypt=encrypt)) == [
        f"The parameter 'encrypt.dp_encrypt.dp_eps' is expected to be type float, but got mapping, "
        f"yaml config file: {P}",
        f"Failed to check value of parameter 'encrypt.dp_encrypt.dp_delta': expected in range (0, 1), "
        f"but got 5.0, yaml config file: {P}"]


def test_dp_values_are_read_when_selected():
    cfg = load_config_dict(good(encrypt={"encrypt_type": "DP_ENCRYPT", "dp_encrypt": {"dp_eps": 10}}))
    assert cfg["encrypt.dp_encrypt.dp_eps"] == 10.0 and cfg["encrypt.dp_encrypt.dp_delta"] == 0.01


@pytest.mark.parametrize("encrypt_type", ["PW_ENCRYPT", "STABLE_PW_ENCRYPT"])
def test_pw_section_is_required_for_pw_types(encrypt_type):
    lines = problems(good(encrypt={"encrypt_type": encrypt_type}))
    assert lines == [missing(f"encrypt.pw_encrypt.{leaf}") for leaf in (
        "share_secrets_ratio", "cipher_time_window", "reconstruct_secrets_threshold")]


def test_pw_keys_are_optional_for_other_types():
    assert load_config_dict(good(encrypt={"encrypt_type": "SIGNDS"})).encrypt_type == "SIGNDS"


# ---- PW_ENCRYPT cipher thresholds ---------------------------------------------------------------------

def test_pw_encrypt_with_threshold_one_fails_cipher_init():
    lines = problems(good(round={"start_fl_job_threshold": 1}, encrypt=pw_encrypt()))
    assert len(lines) == 1 and lines[0].startswith(errors.CIPHER_INIT)
    assert lines[0] == line("cipher init fail. The shareSecrets threshold 1 is smaller than "
                            "reconstruct_secrets_threshold + 1 = 2 (start_fl_job_threshold 1, "
                            "share_secrets_ratio 1.0)")


def test_pw_encrypt_with_enough_clients_loads():
    cfg = load_config_dict(good(encrypt=pw_encrypt()))
    assert cfg.secure_aggregation and cfg.cipher_thresholds()["shareSecrets"] == 2


def test_stable_pw_does_not_run_cipher_init():
    data = good(round={"start_fl_job_threshold": 1}, encrypt=pw_encrypt("STABLE_PW_ENCRYPT"))
    assert load_config_dict(data).secure_aggregation


def test_cipher_thresholds_follow_the_spec():
    cfg = load_config_dict(good(round={"start_fl_job_threshold": 10, "update_model_ratio": 0.7},
                                encrypt=pw_encrypt(share_secrets_ratio=0.7, reconstruct_secrets_threshold=2)))
    assert cfg.update_model_threshold == 7  # exact decimal ceil(10 * 0.7), not ceil(7.000000000000001)
    assert cfg.cipher_thresholds() == {
        "exchangeKeys": 7, "getKeys": 7, "shareSecrets": 7, "getSecrets": 7, "getClientList": 5,
        "reconstructSecrets": 3, "pushListSign": 4, "getListSign": 3}


def test_cipher_init_failure_with_a_larger_reconstruct_threshold():
    data = good(round={"start_fl_job_threshold": 4}, encrypt=pw_encrypt(reconstruct_secrets_threshold=4))
    lines = problems(data)
    assert lines[0].startswith("cipher init fail. The shareSecrets threshold 4 is smaller than "
                               "reconstruct_secrets_threshold + 1 = 5")


def test_cipher_check_is_skipped_when_its_inputs_are_invalid():
    lines = problems(good(round={"start_fl_job_threshold": 1}, encrypt=pw_encrypt(share_secrets_ratio=0)))
    assert len(lines) == 1 and lines[0].startswith(
        "Failed to check value of parameter 'encrypt.pw_encrypt.share_secrets_ratio'")


# ---- compression rule ----------------------------------------------------------------------------------

@pytest.mark.parametrize("encrypt,forced", [
    (pw_encrypt(), True),
    ({"encrypt_type": "SIGNDS"}, True),
    ({"encrypt_type": "DP_ENCRYPT"}, False),
    ({"encrypt_type": "NOT_ENCRYPT"}, False),
])
def test_upload_compression_is_forced_off_with_pw_and_signds(encrypt, forced, config_log):
    cfg = load_config_dict(good(encrypt=encrypt, compression={"upload_compress_type": "DIFF_SPARSE_QUANT"}))
    assert cfg["compression.upload_compress_type"] == ("NO_COMPRESS" if forced else "DIFF_SPARSE_QUANT")
    assert len(cfg.warnings) == len(config_log) == int(forced)
    if forced:
        assert "'compression.upload_compress_type' is forced to 'NO_COMPRESS'" in cfg.warnings[0]
        assert cfg.hyper_params()["upload_compress_type"] == "NO_COMPRESS"


# ---- SSL and PKI ---------------------------------------------------------------------------------------



def test_ssl_keys_are_required_only_when_ssl_is_enabled():
    assert load_config_dict(good(ssl={"server_cert_path": 5})).enable_ssl is False
    assert problems(good(enable_ssl=True)) == [missing(f"ssl.{leaf}") for leaf in (
        "server_cert_path", "client_cert_path", "ca_cert_path", "cipher_list")]
    cfg = load_config_dict(good(enable_ssl=True, ssl=SSL_SECTION))
    assert cfg["ssl.server_cert_path"] == "server.p12" and cfg["ssl.crl_path"] == ""


def test_cipher_list_is_checked_against_the_allow_list():
    ciphers = "ECDHE-RSA-AES128-GCM-SHA256:RC4-MD5"
    lines = problems(good(enable_ssl=True, ssl=dict(SSL_SECTION, cipher_list=ciphers)))
    assert len(lines) == 1 and lines[0].startswith("Failed to check value of parameter 'ssl.cipher_list': "
                                                   "unsupported cipher suite(s) RC4-MD5; allowed: ")


def test_pki_roots_are_required_when_pki_verify():
    assert problems(good(client_verify={"pki_verify": True})) == [
        missing("client_verify.root_first_ca_path"), missing("client_verify.root_second_ca_path")]
    cfg = load_config_dict(good(client_verify={"pki_verify": True, "root_first_ca_path": "a.pem",
                                               "root_second_ca_path": "b.pem"}))
    assert cfg.pki_verify and cfg.hyper_params()["pki_verify"] is True


# ---- roles -------------------------------------------------------------------------------------------

def test_scheduler_needs_only_common_keys():
    data = {key: value for key, value in good().items() if key not in ("round", "summary")}
    data["client"] = {"bogus": 1, "client_epoch_num": "x"}
    cfg = load_config_dict(data, role="scheduler")
    assert cfg.role == "scheduler" and cfg.fl_name == "Lenet" and cfg["round.start_fl_job_threshold"] is None
    assert problems(data, role="server")[0] == missing("round.start_fl_job_threshold")


def test_scheduler_still_checks_common_keys():
    data = without(good(fl_iteration_num=0), "fl_name")
    assert problems(data, role="scheduler") == [
        missing("fl_name"),
        line("Failed to check value of parameter 'fl_iteration_num': expected in range [1, 4294967295], "
             "but got 0")]
    assert problems(good(enable_ssl=True), role="scheduler")[0] == missing("ssl.server_cert_path")


def test_worker_reads_everything_and_role_aliases():
    assert problems(without(good(), "round.update_model_ratio"), role="worker") == [
        missing("round.update_model_ratio")]
    assert load_config_dict(good(), role="MS_SCHED").role == "scheduler"
    with pytest.raises(ConfigError, match="Unknown config role 'client'"):
        load_config_dict(good(), role="client")


# ---- hyper params --------------------------------------------------------------------------------------

HYPER_KEYS = [
    "global_iteration_time_window", "start_fl_job_threshold", "start_fl_job_time_window",
    "update_model_ratio", "update_model_time_window", "client_epoch_num", "client_batch_size",
    "client_learning_rate", "fl_iteration_num", "secure_aggregation", "encrypt_type", "share_secrets_ratio",
    "cipher_time_window", "reconstruct_secrets_threshold", "dp_eps", "dp_delta", "dp_norm_clip", "sign_k",
    "sign_eps", "sign_thr_ratio", "sign_global_lr", "sign_dim_out", "upload_compress_type",
    "upload_sparse_rate", "download_compress_type", "enable_ssl", "pki_verify"]


def test_hyper_params_keys_order_and_values():
    params = load_config_dict(good()).hyper_params()
    assert list(params) == HYPER_KEYS
    assert params["global_iteration_time_window"] == 60000 and params["start_fl_job_threshold"] == 2
    assert params["update_model_ratio"] == 1.0 and params["secure_aggregation"] is False
    assert params["encrypt_type"] == "NOT_ENCRYPT" and params["cipher_time_window"] == 1
    assert params["dp_eps"] == 50.0 and params["sign_dim_out"] == 0 and params["enable_ssl"] is False


def test_hyper_params_of_pw_encrypt():
    params = load_config_dict(good(encrypt=pw_encrypt())).hyper_params()
    assert params["secure_aggregation"] is True and params["cipher_time_window"] == 3000


def test_with_hyper_params_adopts_a_cluster_declaration():
    cfg = load_config_dict(good())
    declared = dict(cfg.hyper_params(), start_fl_job_threshold=8, client_learning_rate=0.5,
                    aggregation_type="FEDAVG")
    adopted = cfg.with_hyper_params(declared)
    assert adopted["round.start_fl_job_threshold"] == 8 and adopted["client.client_learning_rate"] == 0.5
    assert adopted.hyper_params() == {k: v for k, v in declared.items() if k != "aggregation_type"}


# ---- overrides -------------------------------------------------------------------------------------------

def test_with_overrides_by_dotted_key_and_leaf_name():
    cfg = load_config_dict(good(), path="job.yaml")
    new = cfg.with_overrides({"start_fl_job_threshold": 8, "round.update_model_ratio": 0.5,
                              "client_learning_rate": None})
    assert new["round.start_fl_job_threshold"] == 8 and new["round.update_model_ratio"] == 0.5
    assert new["client.client_learning_rate"] == 0.001
    assert new.path == "job.yaml" and new.role == "server"
    assert cfg["round.start_fl_job_threshold"] == 2


def test_with_overrides_is_validated_like_the_file():
    cfg = load_config_dict(good(), path="job.yaml")
    with pytest.raises(ConfigError) as info:
        cfg.with_overrides({"start_fl_job_threshold": "8", "update_model_ratio": 2, "no_such_flag": 1})
    assert str(info.value).split("\n") == [
        "The parameter 'round.start_fl_job_threshold' is expected to be type int, but got str '8', "
        "yaml config file: job.yaml",
        "Failed to check value of parameter 'round.update_model_ratio': expected in range (0, 1], but got 2, "
        "yaml config file: job.yaml",
        "The parameter 'no_such_flag' is not a known configuration key, yaml config file: job.yaml"]


def test_with_overrides_applies_spec_rules():
    cfg = load_config_dict(good(encrypt=pw_encrypt()))
    with pytest.raises(ConfigError, match="^cipher init fail"):
        cfg.with_overrides({"start_fl_job_threshold": 1})


# ---- files -------------------------------------------------------------------------------------------

def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"Failed to load yaml config file: {path}: No such file or directory"


def test_yaml_syntax_error(tmp_path):
    path = write_yaml(tmp_path, "fl_name: [unclosed\nround: {\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"Failed to load yaml config file: {path}: ")


def test_top_level_must_be_a_mapping(tmp_path):
    path = write_yaml(tmp_path, "- a\n- b\n")
    with pytest.raises(ConfigError, match="the top level must be a mapping, but got list"):
        load_config(path)


# ---- schema table and example ---------------------------------------------------------------------------

def test_schema_table_is_well_formed():
    entries = cfgmod.schema_table()
    keys = [entry.key for entry in entries]
    # 59 + metrics.path, manage.token + 11 autoscale.* (issue 17) + 5 client.* (issue 14)
    assert len(keys) == len(set(keys)) == 77
    assert {key for _, key in cfgmod.HYPER_PARAM_KEYS if key} <= set(keys)
    for entry in entries:
        assert entry.type in (int, float, str, bool) and entry.help
        assert entry.default is not None or entry.required or entry.example is not None, entry.key
        if entry.default is not None and entry.type is not str:
            assert type(entry.default) is entry.type, entry.key
    sections = [key for key in keys if key.startswith(("ssl.", "distributed_cache.", "metrics.", "manage.",
                                                       "autoscale."))]
    assert {e.key for e in entries if e.common} == {
        "fl_name", "fl_iteration_num", "server_mode", "enable_ssl", "log_level", *sections}


def test_example_file_is_the_generated_example():
    assert EXAMPLE.read_text(encoding="utf-8") == cfgmod.example_yaml()


@pytest.mark.parametrize("role", ["server", "scheduler", "worker"])
def test_example_file_loads(role, config_log):
    cfg = load_config(EXAMPLE, role=role)
    assert cfg.fl_name == "Lenet" and cfg.redis_address == "127.0.0.1:6379"
    assert cfg.server_mode == "FEDERATED_LEARNING" and cfg.enable_ssl is False
    assert cfg.warnings == () and config_log == []


def test_example_mentions_every_key_with_its_default():
    text = cfgmod.example_yaml()
    data = yaml.safe_load(text)
    for entry in cfgmod.schema_table():
        node = data
        for part in entry.key.split("."):
            node = node[part]
        assert node == entry.example_value, entry.key
        if entry.default is not None and len(repr(entry.default)) < 30:
            assert f"default {cfgmod._yaml_scalar(entry.default)}" in text


def test_example_with_every_encrypt_type_selected_loads():
    data = yaml.safe_load(cfgmod.example_yaml())
    for encrypt_type in ("PW_ENCRYPT", "STABLE_PW_ENCRYPT", "DP_ENCRYPT", "SIGNDS"):
        data["encrypt"]["encrypt_type"] = encrypt_type
        assert load_config_dict(data).encrypt_type == encrypt_type
    data["enable_ssl"] = True
    assert load_config_dict(data)["ssl.ca_cert_path"] == "ca.crt"
