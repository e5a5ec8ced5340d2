"""FLServerJob and FlSchedulerJob: the reference-compatible entry points that run a role in this process."""
import ipaddress
import os

from mindspore_federated import errors
from mindspore_federated.log import get_logger, setup
from mindspore_federated.startup.feature_map import FeatureMap

logger = get_logger(__name__)

# Seed-001 `--config_file_path` JSON: its security keys (top level, as in the deployment guide) and the YAML
# keys they set. Explicit command-line flags win over the file, the file wins over the YAML.
CONFIG_FILE_KEYS = {
    "server_cert_path": "ssl.server_cert_path",
    "client_cert_path": "ssl.client_cert_path",
    "ca_cert_path": "ssl.ca_cert_path",
    "crl_path": "ssl.crl_path",
    "cipher_list": "ssl.cipher_list",
    "cert_expire_warning_time_in_day": "ssl.cert_expire_warning_time_in_day",
    "connection_num": "client.connection_num",
}


def config_file_overrides(json_config, role="server"):
    """YAML overrides (dotted key -> value) from the security keys of a seed-001 JSON config.

    The scheduler takes only the `ssl.*` keys (it reads no `client.*` key); `recovery` is handled by the
    servers (see mindspore_federated.recovery)."""
    out = {}
    for name, key in CONFIG_FILE_KEYS.items():
        if name in json_config and (role == "server" or key.startswith("ssl.")):
            out[key] = json_config[name]
    return out


def check_address(address, what):
    """`ip:port` with an IPv4 address and a port in 1..65535; returns (ip, port) or raises RuntimeError."""
    if not isinstance(address, str):
        raise RuntimeError(f"Parameter '{what}' should be str, but got {type(address).__name__}")
    host, sep, port = address.rpartition(":")
    try:
        ipaddress.IPv4Address(host)
        port_num = int(port)
    except ValueError:
        port_num = -1
    if not sep or not 1 <= port_num <= 65535:
        raise RuntimeError(f"Invalid {what}: {address!r}, expected 'ipv4:port' with port in [1, 65535]")
    return host, port_num


def _feature_map_from(value):
    """A FeatureMap from a FeatureMap, a dict, a .ckpt path or None."""
    if isinstance(value, str):
        from mindspore_federated.checkpoint import load_checkpoint

        if not os.path.isfile(value):
            raise RuntimeError(f"The checkpoint file {value} does not exist")
        fm = FeatureMap()
        for name, arr in load_checkpoint(value).items():
            fm.add_feature(name, arr, True)
        return fm
    return FeatureMap.from_any(value)


def _apply_recovery_checkpoint(fm, checkpoint_dir, fl_name):
    """Replaces the initial weights with the newest loadable recovery checkpoint, if any."""
    if not checkpoint_dir or not os.path.isdir(checkpoint_dir):
        return fm
    from mindspore_federated.checkpoint import RecoveryCheckpoints

    def matches(weights):
        return len(fm) == 0 or (list(weights) == fm.names() and all(
            weights[name].shape == fm[name].shape for name in weights))

    newest = RecoveryCheckpoints(checkpoint_dir, fl_name).newest(accept=matches)
    if newest is None:
        return fm
    path, weights = newest
    logger.info("loading recovery checkpoint %s", path)
    out = FeatureMap()
    for name, arr in weights.items():
        require_aggr = fm[name].require_aggr if name in fm else True
        out.add_feature(name, arr, require_aggr)
    return out


class FLServerJob:
    """Runs one FL server (device HTTP API + cluster membership) in this process."""

    def __init__(self, yaml_config, http_server_address, tcp_server_ip="127.0.0.1", checkpoint_dir="./fl_ckpt/",
                 ssl_config=None):
        for name, value in (("yaml_config", yaml_config), ("http_server_address", http_server_address),
                            ("tcp_server_ip", tcp_server_ip), ("checkpoint_dir", checkpoint_dir)):
            if not isinstance(value, str):
                raise RuntimeError(f"Parameter '{name}' should be str, but got {type(value).__name__}")
        self.yaml_config = yaml_config
        self.http_server_address = http_server_address
        self.tcp_server_ip = tcp_server_ip
        self.checkpoint_dir = checkpoint_dir
        self.ssl_config = ssl_config
        self.overrides = {}          # dotted YAML key -> value (command-line flags of the launch scripts)
        self.node_id = None          # explicit node id (else MS_NODE_ID, the recovery file, or generated)
        self.config_file_path = ""   # seed-001 JSON config with a `recovery` section

    def run(self, feature_map=None, callback=None):
        """Blocks for the server's lifetime; returns after SIGTERM/SIGINT (graceful stop)."""
        from mindspore_federated.config import load_config
        from mindspore_federated.server.app import ServerApp
        from mindspore_federated.server.capabilities import check_config

        setup(role="server")
        from mindspore_federated.recovery import load_json_config, recovery_path

        cfg = load_config(self.yaml_config, role="server")
        json_config = load_json_config(self.config_file_path)
        overrides = {**config_file_overrides(json_config),
                     **{k: v for k, v in self.overrides.items() if v is not None}}
        if overrides:
            cfg = cfg.with_overrides(overrides)
        check_address(self.http_server_address, "http_server_address")
        check_config(cfg)  # refuses what is configured but not built yet (before any TLS material is read)
        if cfg.enable_ssl and (self.ssl_config is None or not self.ssl_config.client_password):
            raise RuntimeError(errors.SSL_CLIENT_PASSWORD_EMPTY)
        fm = None if feature_map is None else _feature_map_from(feature_map)
        if fm is not None and len(fm) > 0:
            fm = _apply_recovery_checkpoint(fm, self.checkpoint_dir, cfg.fl_name)
        # None: the server takes the cluster's declared model, from a live peer, else its newest matching
        # recovery checkpoint, else it fails with START_EMPTY_MODEL. An empty FeatureMap is checked against
        # the declaration like any other (and so fails on a cluster that has a model).
        if self.checkpoint_dir:
            os.makedirs(self.checkpoint_dir, exist_ok=True)
        recovery = recovery_path(json_config, self.http_server_address)
        ServerApp(cfg, self.http_server_address, self.tcp_server_ip, self.checkpoint_dir, fm, callback,
                  node_id=self.node_id, recovery_file=recovery).run()


class FlSchedulerJob:
    """Runs the Scheduler's REST management plane in this process."""

    def __init__(self, yaml_config, manage_address="127.0.0.1:11202", ssl_config=None):
        if not isinstance(manage_address, str):
            raise RuntimeError(errors.SCHED_MANAGE_TYPE)
        self.yaml_config = yaml_config
        self.manage_address = manage_address
        self.ssl_config = ssl_config

    def run(self):
        """Blocks while serving; returns after SIGTERM/SIGINT."""
        from mindspore_federated import scheduler

        setup(role="scheduler")
        return scheduler.run_scheduler(self.yaml_config, self.manage_address, self.ssl_config)
