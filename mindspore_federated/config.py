"""The YAML config read by Scheduler, Servers and Workers: one schema (spec §7), all problems at once."""
import dataclasses
import json
import logging
import math
import numbers
import os
import textwrap
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Callable, Optional

import yaml

from mindspore_federated import errors
from mindspore_federated.log import LEVEL_NAMES
from mindspore_federated.errors import ConfigError

_LOG = logging.getLogger(__name__)

__all__ = ["ConfigEntry", "Range", "When", "FlConfig", "load_config", "load_config_dict", "schema_table",
           "example_yaml", "ceil_ratio", "cipher_thresholds", "parse_participation_time_level", "ROLES",
           "HYPER_PARAM_KEYS"]

UINT32_MAX = 2 ** 32 - 1
ROLES = ("server", "scheduler", "worker")
_ROLE_ALIASES = {"MS_SERVER": "server", "MS_SCHED": "scheduler", "MS_WORKER": "worker"}

FEDERATED_LEARNING, HYBRID_TRAINING = "FEDERATED_LEARNING", "HYBRID_TRAINING"
NOT_ENCRYPT, PW_ENCRYPT, STABLE_PW_ENCRYPT = "NOT_ENCRYPT", "PW_ENCRYPT", "STABLE_PW_ENCRYPT"
DP_ENCRYPT, SIGNDS = "DP_ENCRYPT", "SIGNDS"
NO_COMPRESS, DIFF_SPARSE_QUANT, QUANT = "NO_COMPRESS", "DIFF_SPARSE_QUANT", "QUANT"
# Pairwise-mask secure aggregation (the two encrypt types that run the cipher rounds).
SECURE_AGGREGATION_TYPES = (PW_ENCRYPT, STABLE_PW_ENCRYPT)
# Encrypt types under which uploads cannot be compressed (spec §6).
NO_UPLOAD_COMPRESS_TYPES = (SIGNDS, PW_ENCRYPT)
ALLOWED_CIPHERS = (
    "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305", "ECDHE-PSK-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-CCM", "ECDHE-ECDSA-AES256-CCM", "ECDHE-ECDSA-CHACHA20-POLY1305")
DEFAULT_PARTICIPATION_TIME_LEVEL = "5,15"
MAX_PARTICIPATION_MINUTES = 2880


# ---- schema building blocks ------------------------------------------------------------------

def _fmt_number(x):
    """Shows 1.0 as 1 and 0.25 as 0.25 (range bounds in messages and docs)."""
    return str(int(x)) if float(x).is_integer() else repr(x)


@dataclasses.dataclass(frozen=True)
class Range:
    """A numeric interval; `None` bounds are unbounded; NaN is never inside."""

    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value):
        if self.low is not None and not (value > self.low if self.low_open else value >= self.low):
            return False
        return self.high is None or bool(value < self.high if self.high_open else value <= self.high)

    def __str__(self):
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {_fmt_number(self.low)}"
        return (f"{'(' if self.low_open else '['}{_fmt_number(self.low)}, "
                f"{_fmt_number(self.high)}{')' if self.high_open else ']'}")


U32 = Range(1, UINT32_MAX)
AT_LEAST_0 = Range(0)
AT_LEAST_1 = Range(1)
ABOVE_0 = Range(0, low_open=True)
RATIO = Range(0, 1, low_open=True)  # (0, 1]


@dataclasses.dataclass(frozen=True)
class When:
    """A condition on an earlier key of the schema, e.g. `enable_ssl is true`."""

    key: str
    values: tuple

    def holds(self, values):
        return values.get(self.key) in self.values

    def __str__(self):
        shown = (_yaml_scalar(v) if isinstance(v, bool) else str(v) for v in self.values)
        return f"{self.key} is {' or '.join(shown)}"


@dataclasses.dataclass(frozen=True)
class ConfigEntry:
    """One YAML key: dotted path, type, requirement, allowed values, default, unit and help."""

    key: str
    type: type
    help: str
    required: bool = False
    default: Any = None
    unit: str = ""
    range: Optional[Range] = None
    choices: tuple = ()
    only_when: Optional[When] = None      # not read (nor checked) unless this holds; default applies
    required_when: Optional[When] = None  # required (in addition to `required`) when this holds
    common: bool = False                  # loaded for every role; otherwise only for servers/workers
    check: Optional[Callable[[Any], Optional[str]]] = None  # extra value check -> problem text or None
    example: Any = None                   # value shown in example_yaml() when it differs from the default

    @property
    def example_value(self):
        return self.default if self.example is None else self.example

    def is_active(self, values):
        return self.only_when is None or self.only_when.holds(values)

    def is_required(self, values):
        return self.required or (self.required_when is not None and self.required_when.holds(values))

    def describe(self):
        """One line: type, unit, requirement, allowed values and default."""
        return ", ".join(self.describe_parts())

    def describe_parts(self):
        parts = [self.type.__name__ + (f" ({self.unit})" if self.unit else ""), _describe_requirement(self)]
        if self.choices:
            parts.append("one of " + " | ".join(self.choices))
        if self.range is not None:
            parts.append(f"range {self.range}")
        parts.append(_describe_default(self))
        return parts


def _describe_requirement(entry):
    if entry.required:
        return "required" if entry.only_when is None else f"required when {entry.only_when}"
    if entry.required_when is not None:
        return f"optional, required when {entry.required_when}"
    return "optional" if entry.only_when is None else f"optional, read only when {entry.only_when}"


def _describe_default(entry):
    if entry.default is None:
        return "no default"
    shown = _yaml_scalar(entry.default)
    return f"default {shown}" if len(shown) <= 40 else "default: the value below"


def _check_cache_address(value):
    """`ip:port` (port 1..65535) or `unix:<path>`."""
    if value.startswith("unix:"):
        return None if len(value) > len("unix:") else f"expected 'unix:<path>', but got '{value}'"
    host, sep, port = value.rpartition(":")
    if sep and host and port.isascii() and port.isdigit() and 1 <= int(port) <= 65535:
        return None
    return f"expected 'ip:port' or 'unix:<path>', but got '{value}'"


def _check_cipher_list(value):
    """A `:`-separated subset of the allowed ECDHE suites."""
    ciphers = [c for c in value.split(":") if c]
    unknown = [c for c in ciphers if c not in ALLOWED_CIPHERS]
    if unknown:
        return f"unsupported cipher suite(s) {', '.join(unknown)}; allowed: {', '.join(ALLOWED_CIPHERS)}"
    return None if ciphers else "no cipher suite given"


_SSL = When("enable_ssl", (True,))
_PW = When("encrypt.encrypt_type", SECURE_AGGREGATION_TYPES)
_DP = When("encrypt.encrypt_type", (DP_ENCRYPT,))
_DS = When("encrypt.encrypt_type", (SIGNDS,))
_PKI = When("client_verify.pki_verify", (True,))
_E = ConfigEntry

# The whole schema, in the order problems are reported (spec §7).
_SCHEMA = (
    # ---- common keys: every role -------------------------------------------------------------
    _E("fl_name", str, "Job name: namespaces every Redis key and prefixes checkpoint files",
       required=True, common=True, example="Lenet"),
    _E("fl_iteration_num", int, "Number of iterations before the instance finishes",
       required=True, default=20, range=U32, common=True, example=25),
    _E("server_mode", str, "FEDERATED_LEARNING (devices only) or HYBRID_TRAINING (devices and cloud workers)",
       required=True, choices=(FEDERATED_LEARNING, HYBRID_TRAINING), common=True, example=FEDERATED_LEARNING),
    _E("enable_ssl", bool, "TLS for the device and scheduler HTTP APIs, inter-server TCP and Redis; "
       "must match across servers", required=True, default=False, common=True),
    _E("log_level", str, "Level of the mindspore_federated logger of every role; empty: the environment's "
       "MSF_LOG_LEVEL, else GLOG_v (0 DEBUG, 1 INFO, 2 WARNING, 3 ERROR), else INFO", default="",
       choices=LEVEL_NAMES, common=True),
    _E("distributed_cache.type", str, "Distributed cache kind (only redis is implemented)",
       default="redis", choices=("redis",), common=True),
    _E("distributed_cache.address", str, "Redis address shared by the whole cluster",
       required=True, unit="ip:port or unix:<path>", check=_check_cache_address, common=True,
       example="127.0.0.1:6379"),
    _E("distributed_cache.plugin_lib_path", str, "Unused (reserved for cache plugins)", default="",
       common=True),
    _E("distributed_cache.cacert_filename", str, "CA certificate file for TLS to Redis (when enable_ssl)",
       default="", common=True),
    _E("distributed_cache.capath", str, "CA directory for TLS to Redis (when enable_ssl)", default="",
       common=True),
    _E("distributed_cache.cert_filename", str, "Client certificate file for TLS to Redis (when enable_ssl)",
       default="", common=True),
    _E("distributed_cache.private_key_filename", str,
       "Client private key file for TLS to Redis (when enable_ssl)", default="", common=True),
    _E("distributed_cache.server_name", str, "Expected Redis server name (SNI) for TLS (when enable_ssl)",
       default="", common=True),
    _E("ssl.server_cert_path", str, "PKCS#12 file (cert + key) of the HTTPS and inter-server TCP servers",
       required=True, default="", unit="file", only_when=_SSL, common=True, example="server.p12"),
    _E("ssl.client_cert_path", str, "PKCS#12 file (cert + key) of the inter-server TCP client",
       required=True, default="", unit="file", only_when=_SSL, common=True, example="client.p12"),
    _E("ssl.ca_cert_path", str, "CA certificate used to verify peers", required=True, default="", unit="file",
       only_when=_SSL, common=True, example="ca.crt"),
    _E("ssl.crl_path", str, "Certificate revocation list (empty: none)", default="", unit="file",
       only_when=_SSL, common=True),
    _E("ssl.cipher_list", str, "Allowed TLS cipher suites, ':'-separated subset of the 9 ECDHE suites",
       required=True, default=":".join(ALLOWED_CIPHERS), only_when=_SSL, check=_check_cipher_list,
       common=True),
    _E("ssl.cert_expire_warning_time_in_day", int, "Warn when a certificate expires within this many days",
       default=90, unit="days", range=Range(7, 180), only_when=_SSL, common=True),
    # ---- servers and workers only --------------------------------------------------------------
    _E("round.start_fl_job_threshold", int, "T: startFLJob requests needed per iteration",
       required=True, range=U32, example=2),
    _E("round.start_fl_job_time_window", int, "startFLJob round window", required=True, default=300000,
       unit="ms", range=U32, example=30000),
    _E("round.update_model_ratio", float, "updateModel threshold U = ceil(T * update_model_ratio)",
       required=True, default=1.0, range=RATIO),
    _E("round.update_model_time_window", int, "updateModel round window", required=True, default=300000,
       unit="ms", range=U32, example=30000),
    _E("round.global_iteration_time_window", int, "Global iteration timeout; also drives Redis key TTLs",
       required=True, default=3600000, unit="ms", range=U32, example=60000),
    _E("summary.metrics_file", str, "Per-iteration metrics, JSON Lines", required=True,
       default="metrics.json", unit="path"),
    _E("summary.failure_event_file", str, "Continuous-failure events", required=True, default="event.txt",
       unit="path"),
    _E("summary.continuous_failure_times", int, "Failed iterations in a row that write one failure event",
       default=10, range=AT_LEAST_1),
    _E("summary.data_rate_dir", str, "Directory of per-day data-rate files (empty: disabled)", default="",
       unit="dir"),
    _E("summary.participation_time_level", str, "Participation-time buckets 'a,b' with 0 < a < b <= 2880; "
       "an invalid value falls back to '5,15'", default=DEFAULT_PARTICIPATION_TIME_LEVEL, unit="minutes"),
    _E("encrypt.encrypt_type", str, "Privacy mechanism", default=NOT_ENCRYPT,
       choices=(NOT_ENCRYPT, PW_ENCRYPT, STABLE_PW_ENCRYPT, DP_ENCRYPT, SIGNDS)),
    _E("encrypt.pw_encrypt.share_secrets_ratio", float,
       "r: ratio between consecutive cipher round thresholds", required=True, default=1.0, range=RATIO,
       only_when=_PW),
    _E("encrypt.pw_encrypt.cipher_time_window", int, "Window of every cipher round", required=True, default=1,
       unit="ms", range=U32, only_when=_PW, example=3000),
    _E("encrypt.pw_encrypt.reconstruct_secrets_threshold", int, "t: secret shares needed (M = t + 1 clients)",
       required=True, default=1, range=U32, only_when=_PW),
    _E("encrypt.dp_encrypt.dp_eps", float, "DP epsilon", default=50.0, range=ABOVE_0, only_when=_DP),
    _E("encrypt.dp_encrypt.dp_delta", float, "DP delta", default=0.01, range=Range(0, 1, True, True),
       only_when=_DP),
    _E("encrypt.dp_encrypt.dp_norm_clip", float, "DP norm clip", default=1.0, range=ABOVE_0, only_when=_DP),
    _E("encrypt.signds.sign_k", float, "SignDS top-k ratio", default=0.01,
       range=Range(0, 0.25, low_open=True), only_when=_DS),
    _E("encrypt.signds.sign_eps", float, "SignDS privacy budget", default=100.0,
       range=Range(0, 100, low_open=True), only_when=_DS),
    _E("encrypt.signds.sign_thr_ratio", float, "SignDS threshold ratio", default=0.6, range=Range(0.5, 1),
       only_when=_DS),
    _E("encrypt.signds.sign_global_lr", float, "SignDS server step size", default=0.1, range=ABOVE_0,
       only_when=_DS),
    _E("encrypt.signds.sign_dim_out", int, "SignDS output dimension", default=0, range=Range(0, 50),
       only_when=_DS),
    _E("compression.upload_compress_type", str, "Upload compression advertised to devices; forced to "
       "NO_COMPRESS with PW_ENCRYPT or SIGNDS", default=NO_COMPRESS,
       choices=(NO_COMPRESS, DIFF_SPARSE_QUANT)),
    _E("compression.upload_sparse_rate", float, "Kept fraction of DIFF_SPARSE_QUANT uploads", default=0.4,
       range=RATIO),
    _E("compression.download_compress_type", str, "Download compression (used when the device asks for it)",
       default=NO_COMPRESS, choices=(NO_COMPRESS, QUANT)),
    _E("client_verify.pki_verify", bool, "Verify device certificates and signatures; must match across "
       "servers", default=False),
    _E("client_verify.root_first_ca_path", str, "First root CA of device certificates", default="",
       unit="file", required_when=_PKI),
    _E("client_verify.root_second_ca_path", str, "Second root CA of device certificates", default="",
       unit="file", required_when=_PKI),
    _E("client_verify.equip_crl_path", str, "CRL of equipment certificates (empty: none)", default="",
       unit="file"),
    _E("client_verify.replay_attack_time_diff", int, "Maximum device clock skew of signed requests",
       default=600000, unit="ms", range=AT_LEAST_0),
    _E("client.http_url_prefix", str, "Prefix of the device URLs (should end with '/'; empty: '/')",
       default=""),
    _E("client.client_epoch_num", int, "Local epochs per iteration (FLPlan.epochs)", default=25,
       range=AT_LEAST_1, example=20),
    _E("client.client_batch_size", int, "Local mini-batch size (FLPlan.mini_batch)", default=32,
       range=AT_LEAST_1),
    _E("client.client_learning_rate", float, "Local learning rate (FLPlan.lr)", default=0.001, range=ABOVE_0,
       example=0.01),
    _E("client.connection_num", int, "Maximum inter-server/worker TCP connections", default=10000,
       range=AT_LEAST_1),
    _E("client.max_concurrent_uploads", int, "Upload bodies (updateModel/pushWeight) a server reads and "
       "processes at once; bounds its memory to about this many model copies (ours, not the reference's)",
       default=8, range=AT_LEAST_1),
    _E("client.http_engine", str, "HTTP server of the device API: 'fast' (a lean HTTP/1.1 protocol, about half "
       "the CPU per request) or 'aiohttp' (ours, not the reference's)", default="fast",
       choices=("fast", "aiohttp")),
)
del _E

_BY_KEY = {entry.key: entry for entry in _SCHEMA}
_BY_LEAF = {entry.key.rsplit(".", 1)[-1]: entry.key for entry in _SCHEMA}
_SECTION_HELP = {
    "distributed_cache": "Redis, the single source of truth of the cluster",
    "ssl": "TLS material, read only when enable_ssl is true",
    "round": "Round thresholds and windows",
    "summary": "Per-iteration summary files",
    "encrypt": "Privacy: only the sub-section of the selected encrypt_type is read",
    "encrypt.pw_encrypt": "Read only when encrypt_type is PW_ENCRYPT or STABLE_PW_ENCRYPT (then required)",
    "encrypt.dp_encrypt": "Read only when encrypt_type is DP_ENCRYPT",
    "encrypt.signds": "Read only when encrypt_type is SIGNDS",
    "compression": "Model compression",
    "client_verify": "Device certificate verification (PKI) and replay protection",
    "client": "Training plan sent to devices, and connection limits",
}

# Hyper-param JSON keys (spec §1.10), in order -> config key; None = computed.
HYPER_PARAM_KEYS = (
    ("global_iteration_time_window", "round.global_iteration_time_window"),
    ("start_fl_job_threshold", "round.start_fl_job_threshold"),
    ("start_fl_job_time_window", "round.start_fl_job_time_window"),
    ("update_model_ratio", "round.update_model_ratio"),
    ("update_model_time_window", "round.update_model_time_window"),
    ("client_epoch_num", "client.client_epoch_num"),
    ("client_batch_size", "client.client_batch_size"),
    ("client_learning_rate", "client.client_learning_rate"),
    ("fl_iteration_num", "fl_iteration_num"),
    ("secure_aggregation", None),
    ("encrypt_type", "encrypt.encrypt_type"),
    ("share_secrets_ratio", "encrypt.pw_encrypt.share_secrets_ratio"),
    ("cipher_time_window", "encrypt.pw_encrypt.cipher_time_window"),
    ("reconstruct_secrets_threshold", "encrypt.pw_encrypt.reconstruct_secrets_threshold"),
    ("dp_eps", "encrypt.dp_encrypt.dp_eps"),
    ("dp_delta", "encrypt.dp_encrypt.dp_delta"),
    ("dp_norm_clip", "encrypt.dp_encrypt.dp_norm_clip"),
    ("sign_k", "encrypt.signds.sign_k"),
    ("sign_eps", "encrypt.signds.sign_eps"),
    ("sign_thr_ratio", "encrypt.signds.sign_thr_ratio"),
    ("sign_global_lr", "encrypt.signds.sign_global_lr"),
    ("sign_dim_out", "encrypt.signds.sign_dim_out"),
    ("upload_compress_type", "compression.upload_compress_type"),
    ("upload_sparse_rate", "compression.upload_sparse_rate"),
    ("download_compress_type", "compression.download_compress_type"),
    ("enable_ssl", "enable_ssl"),
    ("pki_verify", "client_verify.pki_verify"),
)


def schema_table():
    """Every ConfigEntry, in schema (and error-report) order."""
    return _SCHEMA


def ceil_ratio(count, ratio):
    """ceil(count * ratio) on the exact decimal values (0.7 * 10 is 7, not 8 as in binary floating point)."""
    return math.ceil(Decimal(int(count)) * Decimal(repr(float(ratio))))


# ---- type coercion -----------------------------------------------------------------------------

def _type_name(value):
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, (list, tuple)):
        return "list"
    return type(value).__name__


def _shown(value):
    """The offending value for a message: scalars with their repr, containers by kind only."""
    if isinstance(value, (Mapping, list, tuple)):
        return _type_name(value)
    return f"{_type_name(value)} {value!r}"


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

class _Problems:
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


def _validate_entries(items, role, problems):
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


# ---- spec rules applied after the per-key checks ------------------------------------------------

def parse_participation_time_level(text):
    """'a,b' -> (a, b) when 0 < a < b <= 2880, else None."""
    parts = [part.strip() for part in str(text).split(",")]
    if len(parts) != 2 or not all(part.isascii() and part.isdigit() for part in parts):
        return None
    low, high = int(parts[0]), int(parts[1])
    return (low, high) if 0 < low < high <= MAX_PARTICIPATION_MINUTES else None


def _apply_participation_fallback(values, problems):
    key = "summary.participation_time_level"
    if parse_participation_time_level(values[key]) is None:
        problems.warn(f"Invalid {key} '{values[key]}' (expected 'a,b' minutes with 0 < a < b <= "
                      f"{MAX_PARTICIPATION_MINUTES}), using '{DEFAULT_PARTICIPATION_TIME_LEVEL}'")
        values[key] = DEFAULT_PARTICIPATION_TIME_LEVEL


def _apply_upload_compress_rule(values, problems):
    encrypt_type = values["encrypt.encrypt_type"]
    compress_type = values["compression.upload_compress_type"]
    if compress_type != NO_COMPRESS and encrypt_type in NO_UPLOAD_COMPRESS_TYPES:
        problems.warn(f"The encrypt_type '{encrypt_type}' and upload_compress_type '{compress_type}' "
                      f"conflict: in '{encrypt_type}' mode 'compression.upload_compress_type' is forced to "
                      f"'{NO_COMPRESS}'")
        values["compression.upload_compress_type"] = NO_COMPRESS


_CIPHER_KEYS = ("round.start_fl_job_threshold", "round.update_model_ratio", "encrypt.encrypt_type",
                "encrypt.pw_encrypt.share_secrets_ratio", "encrypt.pw_encrypt.reconstruct_secrets_threshold")


def cipher_thresholds(values):
    """Counter thresholds of the cipher rounds (spec §3.6) from flat config values."""
    update = ceil_ratio(values["round.start_fl_job_threshold"], values["round.update_model_ratio"])
    ratio = values["encrypt.pw_encrypt.share_secrets_ratio"]
    minimum = values["encrypt.pw_encrypt.reconstruct_secrets_threshold"] + 1
    exchange = max(ceil_ratio(values["round.start_fl_job_threshold"], ratio), update)
    get_keys = max(ceil_ratio(exchange, ratio), update)
    share = max(ceil_ratio(get_keys, ratio), update)
    client_list = max(ceil_ratio(update, ratio), minimum)
    push_sign = max(ceil_ratio(client_list, ratio), minimum)
    return {"exchangeKeys": exchange, "getKeys": get_keys, "shareSecrets": share,
            "getSecrets": max(ceil_ratio(share, ratio), update), "getClientList": client_list,
            "reconstructSecrets": minimum, "pushListSign": push_sign,
            "getListSign": max(ceil_ratio(push_sign, ratio), minimum)}


def _check_cipher_init(values, problems):
    """PW_ENCRYPT needs shareSecrets threshold >= reconstruct_secrets_threshold + 1, else cipher init fail."""
    if values["encrypt.encrypt_type"] != PW_ENCRYPT or problems.bad_keys.intersection(_CIPHER_KEYS):
        return
    thresholds = cipher_thresholds(values)
    share, minimum = thresholds["shareSecrets"], thresholds["reconstructSecrets"]
    if share < minimum:
        problems.add_other(
            errors.CIPHER_INIT + " The shareSecrets threshold {share} is smaller than "
            "reconstruct_secrets_threshold + 1 = {minimum} (start_fl_job_threshold {threshold}, "
            "share_secrets_ratio {ratio}), yaml config file: {path}", share=share, minimum=minimum,
            threshold=values["round.start_fl_job_threshold"],
            ratio=values["encrypt.pw_encrypt.share_secrets_ratio"])


def _apply_rules(values, role, problems):
    if role == "scheduler":
        return
    _apply_participation_fallback(values, problems)
    _apply_upload_compress_rule(values, problems)
    _check_cipher_init(values, problems)


# ---- flattening ------------------------------------------------------------------------------------

def _all_sections():
    sections = set()
    for entry in _SCHEMA:
        parts = entry.key.split(".")[:-1]
        sections.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return sections


_SECTIONS = frozenset(_all_sections())


def _scope_keys(role):
    """(leaves, sections) read by `role`."""
    leaves = {entry.key for entry in _SCHEMA if _in_scope(entry, role)}
    sections = {s for s in _SECTIONS if any(leaf.startswith(s + ".") for leaf in leaves)}
    return leaves, sections


def _flatten(data, role, problems):
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
        elif key not in _SECTIONS and key not in _BY_KEY:
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


# ---- loading -----------------------------------------------------------------------------------------

def _normalize_role(role):
    role = _ROLE_ALIASES.get(role, role)
    if role not in ROLES:
        raise ConfigError(f"Unknown config role '{role}', expected one of {', '.join(ROLES)}")
    return role


def _build(items, path, role, problems):
    """Validates flat raw items; raises one ConfigError listing every problem."""
    values = _validate_entries(items, role, problems)
    _apply_rules(values, role, problems)
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
            path=path, reason=f"the top level must be a mapping, but got {_type_name(data)}"))
    problems = _Problems(path)
    items = _flatten(data, role, problems)
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
    if name in _BY_KEY:
        return name
    return _BY_LEAF.get(name)


# ---- the loaded configuration -------------------------------------------------------------------------

class FlConfig(Mapping):
    """An immutable, validated configuration: `cfg[dotted_key]` gives the typed value (defaults applied).

    Every schema key is present; keys a role does not read (e.g. `round.*` for the scheduler) and keys of an
    unselected encrypt sub-section hold their defaults.
    """

    __slots__ = ("_path", "_role", "_values", "_items", "_warnings")

    def __init__(self, path, role, values, items, warnings=()):
        object.__setattr__(self, "_path", path)
        object.__setattr__(self, "_role", role)
        object.__setattr__(self, "_values", MappingProxyType(dict(values)))
        object.__setattr__(self, "_items", MappingProxyType(dict(items)))
        object.__setattr__(self, "_warnings", tuple(warnings))

    def __setattr__(self, name, value):
        raise AttributeError("FlConfig is immutable; use with_overrides()")

    def __delattr__(self, name):
        raise AttributeError("FlConfig is immutable")

    def __reduce__(self):
        return FlConfig, (self._path, self._role, dict(self._values), dict(self._items), self._warnings)

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
        return ceil_ratio(values["round.start_fl_job_threshold"], values["round.update_model_ratio"])

    def cipher_thresholds(self):
        """Round name -> counter threshold of the cipher rounds (spec §3.6)."""
        return cipher_thresholds(self._values)

    def as_dict(self):
        """A flat {dotted key: value} copy."""
        return dict(self._values)

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
        problems = _Problems(self._path)
        items = dict(self._items)
        for name, value in overrides.items():
            key = _override_key(name)
            if key is None:
                problems.add_other(errors.CFG_UNKNOWN, key=name)
            elif value is not None:
                items[key] = value
        return _build(items, self._path, self._role, problems)

    def with_hyper_params(self, params):
        """A new FlConfig adopting a cluster's hyper-params JSON (unknown and computed keys are ignored)."""
        keys = dict(HYPER_PARAM_KEYS)
        return self.with_overrides({keys[name]: value for name, value in params.items() if keys.get(name)})


# ---- example YAML --------------------------------------------------------------------------------------

def _yaml_float(value):
    text = repr(float(value))
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return text


def _yaml_scalar(value):
    """A YAML literal that yaml.safe_load reads back as the same Python value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _yaml_float(value)
    if value is None:
        return "null"
    return json.dumps(str(value))


_EXAMPLE_HEADER = (
    "# MindSpore Federated cloud cluster configuration (spec section 7).",
    "# The Scheduler, every Server and every Worker read this same file. The scheduler reads only the",
    "# common keys (fl_name, fl_iteration_num, server_mode, enable_ssl, log_level, distributed_cache, ssl);",
    "# servers and workers read everything. Each key is documented as: help, then type (unit), whether",
    "# it is required, allowed values, and the default applied when the key is absent or empty.",
    "# Generated by mindspore_federated.config.example_yaml() (a test keeps both equal); regenerate with",
    "#   python -c 'from mindspore_federated.config import example_yaml; print(example_yaml(), end=\"\")' \\",
    "#     > example/default_yaml_config.yaml",
)


def _section_lines(current, sections):
    """Header lines for the sections entered between the previous key and this one."""
    common = 0
    while common < min(len(current), len(sections)) and current[common] == sections[common]:
        common += 1
    lines = []
    for depth in range(common, len(sections)):
        indent = "  " * depth
        help_text = _SECTION_HELP.get(".".join(sections[:depth + 1]))
        lines.append("")
        if help_text:
            lines += _comment(indent, help_text)
        lines.append(f"{indent}{sections[depth]}:")
    return lines


def _entry_lines(entry, after_header):
    *sections, leaf = entry.key.split(".")
    indent = "  " * len(sections)
    lines = [] if after_header else [""]
    lines += _comment(indent, entry.help) + _comment_parts(indent, entry.describe_parts())
    lines.append(f"{indent}{leaf}: {_yaml_scalar(entry.example_value)}")
    return lines


def _comment_parts(indent, parts, width=100):
    """`# [a, b, c]` split between parts so that lines stay within `width`."""
    lines, current = [], "["
    for i, part in enumerate(parts):
        piece = part + ("]" if i == len(parts) - 1 else ",")
        if current not in ("[", "") and len(indent) + 3 + len(current) + len(piece) > width:
            lines.append(current)
            current = ""
        current = f"{current} {piece}" if current not in ("[", "") else current + piece
    lines.append(current)
    return [f"{indent}# {line}" for line in lines]


def _comment(indent, text, width=100):
    return [f"{indent}# {line}" for line in textwrap.wrap(text, width - len(indent) - 2)]


def example_yaml():
    """A complete, commented YAML document with every key, loadable as role server."""
    lines = list(_EXAMPLE_HEADER)
    current = []
    for entry in _SCHEMA:
        sections = entry.key.split(".")[:-1]
        headers = _section_lines(current, sections)
        lines += headers
        lines += _entry_lines(entry, after_header=bool(headers))
        current = sections
    return "\n".join(lines) + "\n"
