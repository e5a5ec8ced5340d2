"""SSLConfig: the passwords of the server and client PKCS#12 files (reference-compatible)."""
from mindspore_federated import errors


class SSLConfig:
    """Passwords for `ssl.server_cert_path` and `ssl.client_cert_path` (PKCS#12)."""

    def __init__(self, server_password, client_password):
        for name, value in (("server_password", server_password), ("client_password", client_password)):
            if value is not None and not isinstance(value, str):
                raise TypeError(errors.PARAM_TYPE.format(name=name, type="str", got=type(value).__name__))
        self.server_password = server_password
        self.client_password = client_password

    def __repr__(self):
        return "SSLConfig(server_password=***, client_password=***)"
