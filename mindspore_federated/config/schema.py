"""The configuration schema (spec §7): every YAML key declared once with type, default, range and help."""
import dataclasses
import json
from typing import Any, Callable, Optional

from mindspore_federated.log import LEVEL_NAMES
from mindspore_federated.state.topology import parse_topology

__all__ = ["ConfigEntry", "Range", "When", "schema_table", "yaml_scalar", "HYPER_PARAM_KEYS", "ROLES",
           "SECTION_HELP", "ROLE_ALIASES", "BY_KEY", "BY_LEAF", "SECTIONS"]

UINT32_MAX = 2 ** 32 - 1
ROLES = ("server", "scheduler", "worker")
ROLE_ALIASES = {"MS_SERVER": "server", "MS_SCHED": "scheduler", "MS_WORKER": "worker"}

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
        shown = (yaml_scalar(v) if isinstance(v, bool) else str(v) for v in self.values)
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
    shown = yaml_scalar(entry.default)
    return f"default {shown}" if len(shown) <= 40 else "default: the value below"


def _check_cache_address(value):
    """`ip:port`, `unix:<path>`, a Sentinel group or Cluster seed nodes (state/topology.py)."""
    try:
        parse_topology(value)
    except ValueError as exc:
        return str(exc)
    return None


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
_AUTOSCALE = When("autoscale.enable_autoscale", (True,))
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
    _E("distributed_cache.address", str, "Redis address shared by the whole cluster: one Redis, a Sentinel "
       "group (sentinel://ip:port,ip:port/<master_name>) or Redis Cluster seed nodes (cluster://ip:port,ip:port)",
       required=True, unit="ip:port, unix:<path>, sentinel://... or cluster://...", check=_check_cache_address,
       common=True,
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
    # ---- Redis AUTH and database (issue 14): the password is never logged -------------------------
    _E("distributed_cache.username", str, "Redis ACL user of AUTH (empty: the environment's MSF_REDIS_USERNAME, "
       "else the default user)", default="", common=True),
    _E("distributed_cache.password", str, "Redis password of AUTH (empty: the environment's MSF_REDIS_PASSWORD, "
       "else no AUTH); never logged", default="", common=True),
    _E("distributed_cache.db", int, "Redis database number of the cluster's keys", default=0, range=AT_LEAST_0,
       common=True),
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
    # ---- device HTTP against hostile clients (ours, not the reference's; issue 14) ----
    _E("client.max_connections", int, "Device connections a server keeps open at once; past it a connection "
       "gets HTTP 503 and is closed (lowered to what the open-files limit allows)", default=32768,
       range=AT_LEAST_1),
    _E("client.http_header_timeout", float, "Time from the first byte of a request head to its end; a slower "
       "head gets 408 and the connection is closed", default=20.0, unit="s", range=ABOVE_0),
    _E("client.http_body_timeout", float, "Window over which a request body must keep http_body_min_rate; "
       "a slower body gets 408, the connection is closed and its upload slot given back", default=20.0,
       unit="s", range=ABOVE_0),
    _E("client.http_body_min_rate", int, "Minimum average rate of a request body over every "
       "http_body_timeout window (0: at least one byte per window)", default=512, unit="bytes/s",
       range=AT_LEAST_0),
    _E("client.http_idle_timeout", float, "Time a keep-alive connection may wait for its next request",
       default=75.0, unit="s", range=ABOVE_0),
    # ---- observability and management-plane access (ours, not the reference's; issue 17) ----
    _E("metrics.path", str, "Path of the Prometheus endpoint on every server's device port and on the "
       "scheduler's REST port (empty: no endpoint)", default="/metrics", common=True),
    _E("manage.token", str, "Bearer token the scheduler's REST API, dashboard data and /metrics require "
       "(empty: none); the environment variable MSF_MANAGE_TOKEN, when set, wins", default="", common=True),
    # ---- the scheduler's policy autoscaler (issue 17) ------------------------------------------
    _E("autoscale.enable_autoscale", bool, "The scheduler sizes the server fleet from the devices per "
       "iteration (ours, not the reference's)", default=False, common=True),
    _E("autoscale.launcher", str, "How servers are started and stopped: 'local' processes on the scheduler's "
       "machine, or 'kubernetes' (the replicas of the servers' StatefulSet)", default="local",
       choices=("local", "kubernetes"), only_when=_AUTOSCALE, common=True),
    _E("autoscale.min_servers", int, "Fewest servers", default=1, range=AT_LEAST_1, only_when=_AUTOSCALE,
       common=True),
    _E("autoscale.max_servers", int, "Most servers (>= min_servers)", default=4, range=AT_LEAST_1,
       only_when=_AUTOSCALE, common=True),
    _E("autoscale.target_devices_per_server", float, "Devices (startFLJob requests) per iteration one server "
       "should serve", default=100.0, range=ABOVE_0, only_when=_AUTOSCALE, common=True),
    _E("autoscale.hysteresis", float, "Band around the target, as a fraction, inside which the count holds",
       default=0.2, range=Range(0, 1, high_open=True), only_when=_AUTOSCALE, common=True),
    _E("autoscale.cooldown", int, "Least time between two changes of the count", default=60, unit="s",
       range=AT_LEAST_0, only_when=_AUTOSCALE, common=True),
    _E("autoscale.check_interval", float, "How often the scheduler looks for a finished iteration", default=2.0,
       unit="s", range=ABOVE_0, only_when=_AUTOSCALE, common=True),
    _E("autoscale.local_first_port", int, "Device port of the first server the local launcher starts on "
       "127.0.0.1 (the next ones count up)", default=6666, range=Range(1, 65535), only_when=_AUTOSCALE,
       common=True),
    _E("autoscale.k8s_namespace", str, "Namespace of the servers' StatefulSet (empty: the scheduler pod's)",
       default="", only_when=_AUTOSCALE, common=True),
    _E("autoscale.k8s_statefulset", str, "Name of the servers' StatefulSet", default="fl-server",
       only_when=_AUTOSCALE, common=True),
)
del _E

BY_KEY = {entry.key: entry for entry in _SCHEMA}
BY_LEAF = {entry.key.rsplit(".", 1)[-1]: entry.key for entry in _SCHEMA}
SECTION_HELP = {
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
    "metrics": "Prometheus metrics (issue 17)",
    "manage": "Access to the scheduler's management plane (issue 17)",
    "autoscale": "The scheduler's policy autoscaler (read only when enable_autoscale is true)",
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


def _all_sections():
    sections = set()
    for entry in _SCHEMA:
        parts = entry.key.split(".")[:-1]
        sections.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return sections


SECTIONS = frozenset(_all_sections())


def _yaml_float(value):
    text = repr(float(value))
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return text


def yaml_scalar(value):
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
