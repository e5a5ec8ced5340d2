"""A device's PKI identity (for servers with client_verify.pki_verify): the key-attestation RSA key and the
certificate chain it proves itself with; signs startFLJob and every later signed round (see signing.py)."""
from mindspore_federated import signing
from mindspore_federated.clock import now_ms_text


def _pem_text(cert):
    if isinstance(cert, str):
        return cert
    if isinstance(cert, bytes):
        return cert.decode()
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM).decode()


class DeviceIdentity:
    """attestation_key: the `cryptography` RSA private key of the key-attestation certificate;
    key_attestation, equip_cert, equip_ca_cert (and optional root_cert): certificates (PEM text or objects).
    The device's fl_id is the SHA-256 of its equipment certificate's PEM text."""

    def __init__(self, attestation_key, key_attestation, equip_cert, equip_ca_cert, root_cert=None):
        self.attestation_key = attestation_key
        self.key_attestation = _pem_text(key_attestation)
        self.equip_cert = _pem_text(equip_cert)
        self.equip_ca_cert = _pem_text(equip_ca_cert)
        self.root_cert = _pem_text(root_cert) if root_cert is not None else None
        self.fl_id = signing.fl_id_of(self.equip_cert)

    def start_fields(self, fl_id, timestamp=None):
        """The keyword arguments of messages.build_start_fl_job that prove this device: timestamp (epoch ms
        text, now unless given), its signature and the certificates."""
        timestamp = timestamp if timestamp is not None else now_ms_text()
        return {"timestamp": timestamp,
                "sign_data": signing.sign(self.attestation_key, signing.start_message(fl_id, timestamp)),
                "key_attestation": self.key_attestation, "equip_cert": self.equip_cert,
                "equip_ca_cert": self.equip_ca_cert, "root_cert": self.root_cert}

    def round_fields(self, iteration, *parts, timestamp=None):
        """The keyword arguments of a later round's request builder: timestamp (now unless given) and the
        signature over `parts` ‖ timestamp ‖ str(iteration)."""
        timestamp = timestamp if timestamp is not None else now_ms_text()
        return {"timestamp": timestamp, "signature": self.signature(timestamp, iteration, *parts)}

    def signature(self, timestamp, iteration, *parts):
        """A later round's signature: `parts` (exchangeKeys: c_pk, s_pk) ‖ timestamp ‖ str(iteration)."""
        return signing.sign(self.attestation_key, signing.round_message(timestamp, iteration, *parts))


# ---- test and simulation identities -------------------------------------------------------------------
def _issue(subject, key, issuer_name, issuer_key, days):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    return (x509.CertificateBuilder().subject_name(name)
            .issuer_name(issuer_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                           critical=False)
            .sign(issuer_key, hashes.SHA256()))


def mint_identity(equip_ca_cert, equip_ca_key, name, *, attestation_key=None, attestation_days=365):
    """A new DeviceIdentity under an equipment CA (a `cryptography` certificate and its private key): an EC
    equipment certificate for `name` and a key-attestation certificate it issues for `attestation_key` (a new
    RSA-2048 key when None; simulators share one to save the key generation)."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    equip_key = ec.generate_private_key(ec.SECP256R1())
    equip = _issue(name, equip_key, equip_ca_cert.subject, equip_ca_key, 365)
    attestation_key = attestation_key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attestation = _issue(name + "-attestation", attestation_key, equip.subject, equip_key, attestation_days)
    return DeviceIdentity(attestation_key, attestation, equip, equip_ca_cert)


def load_equip_ca(cert_path, key_path):
    """(certificate, private key) of an equipment CA from PEM files (the key unencrypted)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    with open(cert_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(key_path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    return cert, key
