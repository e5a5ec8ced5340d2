"""What a device signs under client_verify.pki_verify (spec §5.4), shared by the server's check and the device
SDK: fl_id = lowercase hex SHA-256 of the equipment certificate's PEM text; startFLJob signs
`fl_id + " " + timestamp`, every later signed round its own parts followed by `timestamp`, `str(iteration)`;
RSA-PSS with SHA-256 and the salt as long as the key allows (the verifier recovers any salt length)."""
import hashlib

__all__ = ["fl_id_of", "start_message", "round_message", "pss_padding", "sign"]


def _text(value):
    return value.encode() if isinstance(value, str) else bytes(value)


def fl_id_of(equip_cert_pem):
    """The fl_id a device with this equipment certificate (PEM text, exactly as sent) must use."""
    return hashlib.sha256(_text(equip_cert_pem)).hexdigest()


def start_message(fl_id, timestamp):
    """The bytes startFLJob's `sign_data` signs."""
    return _text(fl_id) + b" " + _text(timestamp)


def round_message(timestamp, iteration, *parts):
    """The bytes a later round's signature signs: `parts` (in the row's order) ‖ timestamp ‖ iteration."""
    return b"".join(_text(p) for p in parts) + _text(timestamp) + str(int(iteration)).encode()


def pss_padding(verifying):
    """RSA-PSS over SHA-256 with MGF1(SHA-256): the longest salt when signing, any salt when verifying."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    salt = padding.PSS.AUTO if verifying else padding.PSS.MAX_LENGTH
    return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt)


def sign(private_key, message):
    """RSA-PSS(SHA-256) signature of `message` by a `cryptography` RSA private key (the device side)."""
    from cryptography.hazmat.primitives import hashes

    return private_key.sign(message, pss_padding(verifying=False), hashes.SHA256())
