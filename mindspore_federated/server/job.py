"""Runs one FL server in this process from a YAML path, command-line overrides and an initial model."""
import os

from mindspore_federated import errors
from mindspore_federated.address import parse_address
from mindspore_federated.config.overrides import merged_overrides
from mindspore_federated.log import get_logger, setup
from mindspore_federated.startup.feature_map import FeatureMap

logger = get_logger("mindspore_federated.startup.federated_local")


def check_address(address, what):
    """`ip:port` with an IPv4 address and a port in 1..65535; returns (ip, port) or raises RuntimeError."""
    if not isinstance(address, str):
        raise RuntimeError(errors.PARAM_TYPE.format(name=what, type="str", got=type(address).__name__))
    try:
        parsed = parse_address(address, ipv4_only=True)
    except ValueError:
        raise RuntimeError(errors.PARAM_ADDRESS.format(name=what, address=address)) from None
    return parsed.host, parsed.port


def _feature_map_from(value):
    """A FeatureMap from a FeatureMap, a dict, a .ckpt path or None."""
    if isinstance(value, str):
        from mindspore_federated.checkpoint import load_checkpoint

        if not os.path.isfile(value):
            raise RuntimeError(errors.START_CHECKPOINT_MISSING.format(path=value))
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


def run_server(yaml_config, http_server_address, tcp_server_ip, checkpoint_dir, ssl_config=None,
               overrides=None, node_id=None, config_file_path="", feature_map=None, callback=None):
    """Blocks for the server's lifetime; returns after SIGTERM/SIGINT (graceful stop). `overrides`: dotted
    YAML key -> value (None: not given), applied over the seed-001 JSON config at `config_file_path`."""
    from mindspore_federated.config import load_config
    from mindspore_federated.recovery import load_json_config, recovery_path
    from mindspore_federated.server.app import ServerApp
    from mindspore_federated.server.capabilities import check_config
    from mindspore_federated.server.pki import DeviceVerifier
    from mindspore_federated.tls import peer_link_options

    setup(role="server")
    cfg = load_config(yaml_config, role="server")
    json_config = load_json_config(config_file_path)
    merged = merged_overrides(json_config, overrides or {})
    if merged:
        cfg = cfg.with_overrides(merged)
    check_address(http_server_address, "http_server_address")
    check_config(cfg)  # refuses what is configured but not built yet (before any TLS material is read)
    if cfg["client_verify.pki_verify"]:
        DeviceVerifier.from_config(cfg)  # the roots (and CRL) must exist and load before anything starts
    device_tls = device_api_tls(cfg, ssl_config)  # before anything touches the cluster
    # mutual TLS between servers: the PKCS#12 files are read (and their passwords checked) before start-up
    peer_tls = peer_link_options(cfg, ssl_config) if cfg.enable_ssl else None
    fm = None if feature_map is None else _feature_map_from(feature_map)
    if fm is not None and len(fm) > 0:
        fm = _apply_recovery_checkpoint(fm, checkpoint_dir, cfg.fl_name)
    # None: the server takes the cluster's declared model, from a live peer, else its newest matching
    # recovery checkpoint, else it fails with START_EMPTY_MODEL. An empty FeatureMap is checked against
    # the declaration like any other (and so fails on a cluster that has a model).
    if checkpoint_dir:
        os.makedirs(checkpoint_dir, exist_ok=True)
    recovery = recovery_path(json_config, http_server_address)
    ServerApp(cfg, http_server_address, tcp_server_ip, checkpoint_dir, fm, callback,
              node_id=node_id, recovery_file=recovery, device_tls=device_tls, peer_tls=peer_tls).run()


def device_api_tls(cfg, ssl_config):
    """enable_ssl: the device API's HTTPS context (server PKCS#12 + server password, TLS >= 1.2, the
    cipher allow-list, expiry warning), with the client PKCS#12 opened too, as the reference does at
    start-up: a missing or wrong password fails here with the reference's text. None without enable_ssl."""
    if not cfg.enable_ssl:
        return None
    from mindspore_federated import tls

    context = tls.https_server_context(cfg, ssl_config)
    tls.load_pkcs12(cfg["ssl.client_cert_path"], ssl_config.client_password)
    return context
