"""Test PKI made at test time with `cryptography`: a CA, certificates it signs, PKCS#12 files and CRLs."""
import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class TestCA:
    """A self-signed EC CA that signs leaf certificates and revocation lists."""

    __test__ = False  # not a pytest class

    def __init__(self, common_name="test-ca"):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name(common_name)
        self._serial = 1
        self.cert = (x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name)
                     .public_key(self.key.public_key()).serial_number(self._next_serial())
                     .not_valid_before(_now() - datetime.timedelta(days=1))
                     .not_valid_after(_now() + datetime.timedelta(days=3650))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                  content_commitment=False, key_encipherment=False,
                                                  data_encipherment=False, key_agreement=False,
                                                  encipher_only=False, decipher_only=False), critical=True)
                     .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                                    critical=False)
                     .sign(self.key, hashes.SHA256()))

    def _next_serial(self):
        self._serial += 1
        return self._serial

    def issue(self, common_name="127.0.0.1", days=365):
        """(key, certificate) of a leaf for `common_name` (also an IP SAN when it is an IP address)."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(self.name)
                   .public_key(key.public_key()).serial_number(self._next_serial())
                   .not_valid_before(_now() - datetime.timedelta(days=1))
                   .not_valid_after(_now() + datetime.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                                  critical=False))
        try:
            san = x509.IPAddress(ipaddress.ip_address(common_name))
        except ValueError:
            san = x509.DNSName(common_name)
        builder = builder.add_extension(x509.SubjectAlternativeName([san]), critical=False)
        return key, builder.sign(self.key, hashes.SHA256())

    def write_pem(self, path):
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return str(path)

    def write_crl(self, path, revoked_certs):
        builder = (x509.CertificateRevocationListBuilder().issuer_name(self.name)
                   .last_update(_now() - datetime.timedelta(days=1))
                   .next_update(_now() + datetime.timedelta(days=30))
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                                  critical=False))
        for cert in revoked_certs:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(cert.serial_number)
                .revocation_date(_now() - datetime.timedelta(hours=1)).build())
        crl = builder.sign(self.key, hashes.SHA256())
        path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        return str(path)


# ---- device PKI (client_verify.*): roots -> equipment CA -> equipment certificate -> key attestation -------
def _device_cert(subject, key, issuer_name, issuer_key, *, ca=False, days=365, start_days=-1, serial=None):
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(serial or x509.random_serial_number())
               .not_valid_before(_now() + datetime.timedelta(days=start_days))
               .not_valid_after(_now() + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                              critical=False))
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False), critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


class DevicePKI:
    """Two roots (the second issues the equipment CA, so "either root" is exercised), an equipment CA, and
    device identities (client.identity.DeviceIdentity) with RSA key-attestation keys."""

    __test__ = False

    def __init__(self, root_cn="device-root"):
        self.first, self.second = TestCA(root_cn + "-1"), TestCA(root_cn + "-2")
        self.equip_ca_key = ec.generate_private_key(ec.SECP256R1())
        self.equip_ca = _device_cert("equipment-ca", self.equip_ca_key, self.second.name, self.second.key,
                                     ca=True)

    def write_roots(self, directory):
        """(root_first_ca_path, root_second_ca_path) written under `directory`."""
        return self.first.write_pem(directory / "root1.pem"), self.second.write_pem(directory / "root2.pem")

    def identity(self, name="device", *, equip_ca=None, equip_ca_key=None, attestation_days=365):
        """A DeviceIdentity whose equipment certificate is issued by the equipment CA (or the given one)."""
        from mindspore_federated.client.identity import mint_identity

        return mint_identity(equip_ca or self.equip_ca, equip_ca_key or self.equip_ca_key, name,
                             attestation_days=attestation_days)

    def write_equip_ca(self, directory):
        """(certificate, unencrypted key) PEM files of the equipment CA, for the simulator's --equip-ca."""
        cert, key = directory / "equip_ca.pem", directory / "equip_ca.key"
        cert.write_bytes(self.equip_ca.public_bytes(serialization.Encoding.PEM))
        key.write_bytes(self.equip_ca_key.private_bytes(serialization.Encoding.PEM,
                                                        serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
        return str(cert), str(key)

    def write_crl(self, path, identities):
        """A CRL of the equipment CA revoking the equipment certificates of `identities`."""
        builder = (x509.CertificateRevocationListBuilder().issuer_name(self.equip_ca.subject)
                   .last_update(_now() - datetime.timedelta(days=1))
                   .next_update(_now() + datetime.timedelta(days=30)))
        for ident in identities:
            serial = x509.load_pem_x509_certificate(ident.equip_cert.encode()).serial_number
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial)
                .revocation_date(_now() - datetime.timedelta(hours=1)).build())
        crl = builder.sign(self.equip_ca_key, hashes.SHA256())
        path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        return str(path)


def write_p12(path, key, cert, password, chain=()):
    """A PKCS#12 file encrypted the way OpenSSL 3 does by default (AES-256, PBKDF2)."""
    path.write_bytes(pkcs12.serialize_key_and_certificates(
        b"test", key, cert, list(chain) or None, serialization.BestAvailableEncryption(password.encode())))
    return str(path)


def write_pem_pair(stem, key, cert):
    """(certificate path, unencrypted key path) as PEM files `<stem>.crt` / `<stem>.key` (Redis TLS files)."""
    cert_path, key_path = stem.with_suffix(".crt"), stem.with_suffix(".key")
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)
