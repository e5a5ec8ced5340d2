"""The YAML config read by Scheduler, Servers and Workers: one schema (spec §7), all problems at once.

Modules: `schema` (the table of every key), `validation` (flattening, coercion, per-key checks), `rules`
(fallbacks and cross-key checks), `thresholds` (round thresholds from ratios), `loading` (file/dict ->
FlConfig), `views` (FlConfig and its typed section views), `example` (the example-YAML writer).
"""
from mindspore_federated.config.example import example_yaml
from mindspore_federated.config.loading import load_config, load_config_dict
from mindspore_federated.config.rules import parse_participation_time_level
from mindspore_federated.config.schema import (
    ALLOWED_CIPHERS,
    DEFAULT_PARTICIPATION_TIME_LEVEL,
    DIFF_SPARSE_QUANT,
    DP_ENCRYPT,
    FEDERATED_LEARNING,
    HYBRID_TRAINING,
    HYPER_PARAM_KEYS,
    MAX_PARTICIPATION_MINUTES,
    NO_COMPRESS,
    NO_UPLOAD_COMPRESS_TYPES,
    NOT_ENCRYPT,
    PW_ENCRYPT,
    QUANT,
    ROLES,
    SECURE_AGGREGATION_TYPES,
    SIGNDS,
    STABLE_PW_ENCRYPT,
    UINT32_MAX,
    ConfigEntry,
    Range,
    When,
    schema_table,
)
from mindspore_federated.config.schema import yaml_scalar as _yaml_scalar  # noqa: F401 - kept for tests
from mindspore_federated.config.thresholds import ceil_ratio, cipher_thresholds, update_model_threshold
from mindspore_federated.config.views import FlConfig

__all__ = ["ConfigEntry", "Range", "When", "FlConfig", "load_config", "load_config_dict", "schema_table",
           "example_yaml", "ceil_ratio", "update_model_threshold", "cipher_thresholds",
           "parse_participation_time_level", "ROLES", "HYPER_PARAM_KEYS", "UINT32_MAX", "FEDERATED_LEARNING",
           "HYBRID_TRAINING", "NOT_ENCRYPT", "PW_ENCRYPT", "STABLE_PW_ENCRYPT", "DP_ENCRYPT", "SIGNDS",
           "NO_COMPRESS", "DIFF_SPARSE_QUANT", "QUANT", "SECURE_AGGREGATION_TYPES",
           "NO_UPLOAD_COMPRESS_TYPES",
           "ALLOWED_CIPHERS", "DEFAULT_PARTICIPATION_TIME_LEVEL", "MAX_PARTICIPATION_MINUTES"]
