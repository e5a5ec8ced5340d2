"""TLS material: PKCS#12 file + password -> ssl.SSLContext for every TLS endpoint (HTTPS, inter-server TCP).

One home for the scheduler's and servers' HTTPS, the mutual TLS between servers (and later workers and the C++
link): certificate files and cipher list come from the config's `ssl.*` keys, the passwords from SSLConfig.
Errors are the reference's texts ("PKCS12_parse failed", "The client password's value is empty.").
"""
import datetime
import os
import secrets
import ssl
import tempfile
from dataclasses import dataclass

from mindspore_federated import errors
from mindspore_federated.errors import ConfigError
from mindspore_federated.log import get_logger

__all__ = ["Pkcs12Material", "load_pkcs12", "require_passwords", "expiry_warning", "server_context",
           "client_context", "https_server_context", "peer_server_context", "peer_client_context",
           "peer_link_options", "LinkOptions"]

logger = get_logger(__name__)
MIN_TLS_VERSION = ssl.TLSVersion.TLSv1_2


@dataclass(frozen=True)
class Pkcs12Material:
    """The private key, certificate and CA chain of one PKCS#12 file (cryptography objects)."""

    path: str
    key: object
    cert: object
    chain: tuple = ()

    @property
    def not_after(self):
        """Expiry of the certificate (timezone-aware UTC datetime)."""
        return self.cert.not_valid_after_utc

    def pem(self, key_password):
        """Key (encrypted with `key_password`) followed by the certificate and its chain, as PEM bytes."""
        from cryptography.hazmat.primitives import serialization

        key = self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.BestAvailableEncryption(key_password))
        return key + b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (self.cert, *self.chain))


def load_pkcs12(path, password):
    """Reads a PKCS#12 file (any encryption OpenSSL 3 writes by default); ConfigError(SSL_PKCS12) when the
    file cannot be read, the password is wrong, or it holds no key and certificate."""
    from cryptography.hazmat.primitives.serialization import pkcs12

    try:
        with open(path, "rb") as f:
            key, cert, chain = pkcs12.load_key_and_certificates(f.read(), (password or "").encode())
    except (OSError, ValueError, TypeError):
        raise ConfigError(errors.SSL_PKCS12) from None
    if key is None or cert is None:
        raise ConfigError(errors.SSL_PKCS12)
    return Pkcs12Material(os.fspath(path), key, cert, tuple(chain or ()))


def require_passwords(ssl_config):
    """The reference's start-up check: TLS needs an SSLConfig with a client password."""
    if ssl_config is None or not ssl_config.client_password:
        raise ConfigError(errors.SSL_CLIENT_PASSWORD_EMPTY)


def expiry_warning(material, warn_days, now=None):
    """The warning text when the certificate expires within `warn_days` days (or has expired), else None."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    left = material.not_after - now
    shown = material.not_after.strftime("%Y-%m-%d %H:%M:%S")
    if left.total_seconds() <= 0:
        return errors.SSL_CERT_EXPIRED.format(path=material.path, not_after=shown)
    if left <= datetime.timedelta(days=warn_days):
        return errors.SSL_CERT_EXPIRING.format(path=material.path, days=left.days, not_after=shown)
    return None


def _load_chain(context, material):
    """Loads key + chain into `context`. ssl reads key material from files only: the key is written to a
    private temporary file encrypted with a one-time password, and the file is gone when this returns."""
    key_password = secrets.token_bytes(32).hex().encode()
    with tempfile.NamedTemporaryFile(suffix=".pem") as f:  # mode 0600
        f.write(material.pem(key_password))
        f.flush()
        context.load_cert_chain(f.name, password=key_password)


def _verify_peers(context, ca_path, crl_path):
    if not ca_path:
        raise ConfigError(errors.SSL_CA_MISSING)
    try:
        context.load_verify_locations(cafile=ca_path)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(errors.SSL_CA_LOAD.format(path=ca_path, reason=exc)) from None
    if crl_path:
        try:
            context.load_verify_locations(cafile=crl_path)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(errors.SSL_CRL_LOAD.format(path=crl_path, reason=exc)) from None
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF


def _base(protocol, cipher_list):
    context = ssl.SSLContext(protocol)
    context.minimum_version = MIN_TLS_VERSION
    if cipher_list:
        try:
            context.set_ciphers(cipher_list)
        except ssl.SSLError:
            raise ConfigError(errors.SSL_CIPHERS.format(ciphers=cipher_list)) from None
    return context


def _warn_expiry(material, warn_days):
    text = expiry_warning(material, warn_days) if warn_days else None
    if text:
        logger.warning("%s", text)


def server_context(material, *, cipher_list=None, ca_path=None, crl_path=None, require_client_cert=False,
                   warn_days=None):
    """A TLS server context (TLS >= 1.2) serving `material`; with `require_client_cert`, clients must present
    a certificate signed by `ca_path` and not revoked by `crl_path` (mutual TLS)."""
    context = _base(ssl.PROTOCOL_TLS_SERVER, cipher_list)
    _load_chain(context, material)
    if require_client_cert:
        _verify_peers(context, ca_path, crl_path)
        context.verify_mode = ssl.CERT_REQUIRED
    _warn_expiry(material, warn_days)
    return context


def client_context(material, *, ca_path, cipher_list=None, crl_path=None, check_hostname=False,
                   warn_days=None):
    """A TLS client context (TLS >= 1.2) presenting `material` (None: no client certificate) and verifying the
    server against `ca_path` (and `crl_path`). Peers are addressed by IP, so host names are not checked unless
    asked."""
    context = _base(ssl.PROTOCOL_TLS_CLIENT, cipher_list)
    context.check_hostname = check_hostname
    _verify_peers(context, ca_path, crl_path)
    if material is not None:
        _load_chain(context, material)
        _warn_expiry(material, warn_days)
    return context


def _opt(cfg, key):
    value = cfg.get(key)
    return value if value not in ("", None) else None


def https_server_context(cfg, ssl_config):
    """HTTPS of the scheduler and device APIs: `ssl.server_cert_path` + SSLConfig.server_password, clients are
    not asked for certificates (as in the reference). `cfg` is a FlConfig or any Mapping of dotted keys."""
    require_passwords(ssl_config)
    material = load_pkcs12(cfg["ssl.server_cert_path"], ssl_config.server_password)
    return server_context(material, cipher_list=_opt(cfg, "ssl.cipher_list"),
                          warn_days=_opt(cfg, "ssl.cert_expire_warning_time_in_day"))


def peer_server_context(cfg, ssl_config):
    """The inter-server TCP server: server PKCS#12, clients verified against `ssl.ca_cert_path` (+ CRL)."""
    require_passwords(ssl_config)
    material = load_pkcs12(cfg["ssl.server_cert_path"], ssl_config.server_password)
    return server_context(material, cipher_list=_opt(cfg, "ssl.cipher_list"),
                          ca_path=_opt(cfg, "ssl.ca_cert_path"), crl_path=_opt(cfg, "ssl.crl_path"),
                          require_client_cert=True,
                          warn_days=_opt(cfg, "ssl.cert_expire_warning_time_in_day"))


def peer_client_context(cfg, ssl_config):
    """The inter-server TCP client: `ssl.client_cert_path` + SSLConfig.client_password, the server verified
    against `ssl.ca_cert_path` (+ CRL)."""
    require_passwords(ssl_config)
    material = load_pkcs12(cfg["ssl.client_cert_path"], ssl_config.client_password)
    return client_context(material, ca_path=_opt(cfg, "ssl.ca_cert_path"),
                          cipher_list=_opt(cfg, "ssl.cipher_list"), crl_path=_opt(cfg, "ssl.crl_path"),
                          warn_days=_opt(cfg, "ssl.cert_expire_warning_time_in_day"))


def worker_client_context(cfg):
    """The HTTPS client of workers (hybrid and cloud) to the device API: the server certificate verified against
    `ssl.ca_cert_path` (+ `ssl.crl_path`) and its name (or IP address) checked against the address dialled, as
    a device does; no client certificate (the device API does not ask for one)."""
    return client_context(None, ca_path=_opt(cfg, "ssl.ca_cert_path"), cipher_list=_opt(cfg, "ssl.cipher_list"),
                          crl_path=_opt(cfg, "ssl.crl_path"), check_hostname=True)


# ---- the C++ inter-server link (communicator/tls_stream.cc) ------------------------------------------------
def _identity_pem(material):
    """(certificate + chain, unencrypted PKCS#8 key) PEM texts of `material`, for _core (in memory only)."""
    from cryptography.hazmat.primitives import serialization

    pem = serialization.Encoding.PEM
    certs = b"".join(c.public_bytes(pem) for c in (material.cert, *material.chain))
    key = material.key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return certs, key


class LinkOptions(dict):
    """The link's TLS options; private keys inside, so it never shows them when printed or logged."""

    def __repr__(self):
        return f"LinkOptions(ca_file={self.get('ca_file')!r}, crl_file={self.get('crl_file')!r}, keys hidden)"

    __str__ = __repr__


def peer_link_options(cfg, ssl_config):
    """The `tls` argument of `_core.Communicator` for mutual TLS between servers: the server PKCS#12
    (presented to inbound peers), the client PKCS#12 `ssl.client_cert_path` (presented to the peers we
    reach), the CA and CRL every peer is checked against, and `ssl.cipher_list`. Unusable files fail here
    with the same texts as the Python TLS endpoints."""
    require_passwords(ssl_config)
    server = load_pkcs12(cfg["ssl.server_cert_path"], ssl_config.server_password)
    client = load_pkcs12(cfg["ssl.client_cert_path"], ssl_config.client_password)
    ca_path, crl_path = _opt(cfg, "ssl.ca_cert_path"), _opt(cfg, "ssl.crl_path")
    _verify_peers(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), ca_path, crl_path)  # the same checks and texts
    cipher_list = _opt(cfg, "ssl.cipher_list")
    if cipher_list:
        _base(ssl.PROTOCOL_TLS_CLIENT, cipher_list)
    warn_days = _opt(cfg, "ssl.cert_expire_warning_time_in_day")
    for material in (server, client):
        _warn_expiry(material, warn_days)
    server_cert, server_key = _identity_pem(server)
    client_cert, client_key = _identity_pem(client)
    return LinkOptions(server_cert=server_cert, server_key=server_key, client_cert=client_cert,
                       client_key=client_key, ca_file=ca_path, crl_file=crl_path or "",
                       ciphers=cipher_list or "")
