"""YAML overrides from seed-001 command lines: the `--config_file_path` JSON and explicit flags."""

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


def merged_overrides(json_config, flags, role="server"):
    """The JSON config's overrides, then every flag (dotted key -> value) that was given (not None)."""
    out = config_file_overrides(json_config, role)
    out.update({key: value for key, value in flags.items() if value is not None})
    return out
