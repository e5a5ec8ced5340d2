"""SSLConfig: the passwords of the server and client PKCS#12 files (reference-compatible)."""
import os

from mindspore_federated import errors

SERVER_PASSWORD_ENV = "MSF_SSL_SERVER_PASSWORD"
CLIENT_PASSWORD_ENV = "MSF_SSL_CLIENT_PASSWORD"


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


def ssl_config_from_env(environ=None):
    """The PKCS#12 passwords of the command-line roles (enable_ssl): MSF_SSL_SERVER_PASSWORD and
    MSF_SSL_CLIENT_PASSWORD, never on the command line; None when neither is set."""
    environ = os.environ if environ is None else environ
    server, client = environ.get(SERVER_PASSWORD_ENV), environ.get(CLIENT_PASSWORD_ENV)
    return None if server is None and client is None else SSLConfig(server, client)
