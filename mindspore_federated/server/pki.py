"""Device certificate verification (client_verify.*, spec §5.4): the two roots and the equipment CRL, read at
start-up; the chain key-attestation <- equipment <- equipment CA <- one root; fl_id; RSA-PSS signatures by the
attestation key; the replay window. Blocking X.509/RSA work: the round path runs it in an executor."""
import datetime
import functools
import os
from typing import NamedTuple

from mindspore_federated import errors, signing
from mindspore_federated.errors import ConfigError
from mindspore_federated.log import get_logger

logger = get_logger(__name__)
ROOT_KEYS = ("client_verify.root_first_ca_path", "client_verify.root_second_ca_path")
CRL_KEY = "client_verify.equip_crl_path"
REPLAY_KEY = "client_verify.replay_attack_time_diff"


class StartProof(NamedTuple):
    """What a startFLJob proves its device with (texts as sent, `sign_data` bytes)."""

    fl_id: str
    timestamp: str
    sign_data: bytes
    key_attestation: str
    equip_cert: str
    equip_ca_cert: str


def _read(key, path):
    if not path or not os.path.isfile(path):
        raise ConfigError(errors.PKI_FILE_MISSING.format(key=key, path=path))
    with open(path, "rb") as f:
        return f.read()


def _load(key, path, loader):
    data = _read(key, path)
    try:
        return loader(data)
    except ValueError as exc:
        raise ConfigError(errors.PKI_FILE_LOAD.format(key=key, path=path, reason=exc)) from None


@functools.lru_cache(maxsize=4096)
def _cert(pem):
    """A parsed certificate of PEM text (cached: a device's attestation is checked every round), or None."""
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)
    except (ValueError, TypeError):
        return None


def _key_id(cert, extension):
    from cryptography import x509

    try:
        value = cert.extensions.get_extension_for_class(extension).value
    except x509.ExtensionNotFound:
        return None
    return value.digest if extension is x509.SubjectKeyIdentifier else value.key_identifier


def _issued_by(cert, issuer):
    """`issuer` signed `cert`, the names match, and (as in the reference) the key identifiers match too."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    subject_id = _key_id(issuer, x509.SubjectKeyIdentifier)
    authority_id = _key_id(cert, x509.AuthorityKeyIdentifier)
    return subject_id is not None and subject_id == authority_id


def _is_ca(cert):
    from cryptography import x509

    try:
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return basic.ca and usage.key_cert_sign


def _valid_at(cert, now):
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


class DeviceVerifier:
    """The checks of one server's configuration; every method is pure and safe from any thread."""

    def __init__(self, roots, crl, replay_ms):
        self.roots = tuple(roots)
        self.crl = crl
        self.replay_ms = int(replay_ms)

    @classmethod
    def from_config(cls, cfg):
        """Reads the roots and the CRL named by `cfg`; ConfigError naming the key of a missing or bad file."""
        from cryptography import x509

        roots = [_load(key, cfg[key], x509.load_pem_x509_certificate) for key in ROOT_KEYS]
        crl = _load(CRL_KEY, cfg[CRL_KEY], x509.load_pem_x509_crl) if cfg[CRL_KEY] else None
        return cls(roots, crl, cfg[REPLAY_KEY])

    def fresh(self, timestamp, now_ms):
        """`timestamp` (epoch ms text) lies within the replay window around `now_ms`."""
        try:
            sent = int(timestamp)
        except (TypeError, ValueError):
            return False
        return abs(int(now_ms) - sent) <= self.replay_ms

    def signed(self, attestation_pem, message, signature):
        """`signature` is the attestation key's RSA-PSS(SHA-256) signature of `message`."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import rsa

        cert = _cert(attestation_pem)
        if cert is None or not signature:
            return False
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            return False
        try:
            key.verify(bytes(signature), message, signing.pss_padding(verifying=True), hashes.SHA256())
        except InvalidSignature:
            return False
        return True

    def chain_problem(self, proof, now):
        """Why the certificates of `proof` do not prove a device (None: they do)."""
        if signing.fl_id_of(proof.equip_cert) != proof.fl_id:
            return "fl_id is not the SHA-256 of the equipment certificate"
        attestation, equip, equip_ca = (_cert(p) for p in (proof.key_attestation, proof.equip_cert,
                                                             proof.equip_ca_cert))
        if attestation is None or equip is None or equip_ca is None:
            return "a certificate cannot be read"
        if not all(_valid_at(c, now) for c in (attestation, equip, equip_ca)):
            return "a certificate is outside its validity period"
        if not _is_ca(equip_ca):
            return "the equipment CA certificate is not a CA"
        if not any(_issued_by(equip_ca, root) for root in self.roots):
            return "the equipment CA is not issued by either root"
        if not _issued_by(equip, equip_ca) or not _issued_by(attestation, equip):
            return "the chain key-attestation <- equipment <- equipment CA does not hold"
        if (self.crl is not None and self.crl.issuer == equip.issuer
                and self.crl.get_revoked_certificate_by_serial_number(equip.serial_number) is not None):
            return "the equipment certificate is revoked"
        return None

    def verify_start(self, proof, now_ms):
        """startFLJob's check (the reference's order): fl_id, chain, CRL, signature, replay window."""
        now = datetime.datetime.fromtimestamp(now_ms / 1000, datetime.timezone.utc)
        problem = self.chain_problem(proof, now)
        if problem is None and not self.signed(proof.key_attestation,
                                               signing.start_message(proof.fl_id, proof.timestamp),
                                               proof.sign_data):
            problem = "the signature does not verify"
        if problem is None and not self.fresh(proof.timestamp, now_ms):
            problem = "the timestamp is outside the replay window"
        if problem is not None:
            logger.warning("startFLJob of %s refused: %s", proof.fl_id, problem)
        return problem is None
