"""HTTPS material of the scheduler's REST API: a PKCS#12 file and its password into an SSL context."""
from mindspore_federated.errors import SSL_CLIENT_PASSWORD_EMPTY, SSL_PKCS12, ConfigError


def _opt(cfg, key):
    try:
        value = cfg[key]
    except (KeyError, LookupError, AttributeError):
        return None
    return value if value not in ("", None) else None


def server_ssl_context(cfg, ssl_config):
    """HTTPS context from `ssl.server_cert_path` (PKCS#12) and SSLConfig.server_password."""
    import ssl
    import tempfile

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12
    if ssl_config is None or not ssl_config.client_password:
        raise ConfigError(SSL_CLIENT_PASSWORD_EMPTY)
    try:
        with open(cfg["ssl.server_cert_path"], "rb") as f:
            key, cert, chain = pkcs12.load_key_and_certificates(f.read(), (ssl_config.server_password or "").encode())
    except (OSError, ValueError, TypeError):
        raise ConfigError(SSL_PKCS12) from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if _opt(cfg, "ssl.cipher_list"):
        context.set_ciphers(cfg["ssl.cipher_list"])
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pem += b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [cert, *(chain or [])])
    with tempfile.NamedTemporaryFile(suffix=".pem") as f:  # ssl loads key material from files only
        f.write(pem)
        f.flush()
        context.load_cert_chain(f.name)
    return context
