"""mindspore_federated.tls: PKCS#12 -> SSL contexts, checked with real TLS handshakes over memory BIOs."""
import datetime
import ssl

import pytest

from mindspore_federated import errors, tls
from mindspore_federated.errors import ConfigError
from mindspore_federated.startup.ssl_config import SSLConfig
from tests.utils.certs import TestCA, write_p12

SERVER_PW, CLIENT_PW = "server_password_12345", "client_password_12345"
PASSWORDS = SSLConfig(SERVER_PW, CLIENT_PW)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server and a client p12 signed by it, a revoked client, and a client of a foreign CA."""
    d = tmp_path_factory.mktemp("pki")
    ca, foreign = TestCA("cluster-ca"), TestCA("foreign-ca")
    server_key, server_cert = ca.issue("127.0.0.1")
    client_key, client_cert = ca.issue("client")
    revoked_key, revoked_cert = ca.issue("revoked")
    foreign_key, foreign_cert = foreign.issue("127.0.0.1")
    return {
        "ca": ca.write_pem(d / "ca.pem"),
        "crl": ca.write_crl(d / "crl.pem", [revoked_cert]),
        "server": write_p12(d / "server.p12", server_key, server_cert, SERVER_PW),
        "client": write_p12(d / "client.p12", client_key, client_cert, CLIENT_PW),
        "revoked": write_p12(d / "revoked.p12", revoked_key, revoked_cert, CLIENT_PW),
        "foreign": write_p12(d / "foreign.p12", foreign_key, foreign_cert, CLIENT_PW),
        "soon": write_p12(d / "soon.p12", *ca.issue("127.0.0.1", days=10), SERVER_PW),
    }


def cfg_of(pki, **extra):
    cfg = {"ssl.server_cert_path": pki["server"], "ssl.client_cert_path": pki["client"],
           "ssl.ca_cert_path": pki["ca"], "ssl.crl_path": "", "ssl.cipher_list": "",
           "ssl.cert_expire_warning_time_in_day": 90}
    cfg.update(extra)
    return cfg


def handshake(server_ctx, client_ctx, server_hostname=None):
    """Runs a TLS handshake and one application message each way; returns (server, client) SSLObjects.

    Raises the ssl.SSLError of whichever side refused."""
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    client = client_ctx.wrap_bio(c_in, c_out, server_side=False, server_hostname=server_hostname)

    def pump():
        data = c_out.read()
        if data:
            s_in.write(data)
        data = s_out.read()
        if data:
            c_in.write(data)

    def step(obj, action):
        try:
            return action(obj)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return None

    done_server = done_client = False
    for _ in range(100):
        if not done_client:
            done_client = step(client, lambda o: o.do_handshake() or True)
        if not done_server:
            done_server = step(server, lambda o: o.do_handshake() or True)
        pump()
        if done_client and done_server:
            break
    assert done_client and done_server, "handshake did not finish"
    client.write(b"ping")
    pump()
    assert server.read(4) == b"ping"
    server.write(b"pong")
    pump()
    assert client.read(4) == b"pong"
    return server, client


def test_https_server_context_serves_the_server_p12(pki):
    context = tls.https_server_context(cfg_of(pki), PASSWORDS)
    client_ctx = ssl.create_default_context(cafile=pki["ca"])
    server, client = handshake(context, client_ctx, server_hostname="127.0.0.1")
    assert dict(x[0] for x in client.getpeercert()["subject"])["commonName"] == "127.0.0.1"
    assert server.getpeercert() is None  # HTTPS does not ask devices for certificates
    assert server.version() in ("TLSv1.2", "TLSv1.3")
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_cipher_list_is_applied(pki):
    suite = "ECDHE-ECDSA-AES128-GCM-SHA256"
    context = tls.https_server_context(cfg_of(pki, **{"ssl.cipher_list": suite}), PASSWORDS)
    client_ctx = ssl.create_default_context(cafile=pki["ca"])
    client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # TLS 1.3 suites are not chosen by the cipher list
    _, client = handshake(context, client_ctx, server_hostname="127.0.0.1")
    assert client.cipher()[0] == suite
    with pytest.raises(ConfigError, match="None of the TLS cipher suites 'NOT-A-SUITE'"):
        tls.https_server_context(cfg_of(pki, **{"ssl.cipher_list": "NOT-A-SUITE"}), PASSWORDS)


@pytest.mark.parametrize("ssl_config", [None, SSLConfig(SERVER_PW, None), SSLConfig(SERVER_PW, "")])
def test_missing_client_password_is_the_reference_error(pki, ssl_config):
    for build in (tls.https_server_context, tls.peer_server_context, tls.peer_client_context):
        with pytest.raises(RuntimeError) as info:
            build(cfg_of(pki), ssl_config)
        assert str(info.value) == errors.SSL_CLIENT_PASSWORD_EMPTY


def test_wrong_password_or_unreadable_file_is_pkcs12_parse_failed(pki, tmp_path):
    garbage = tmp_path / "garbage.p12"
    garbage.write_bytes(b"not a pkcs12 file")
    cases = [(cfg_of(pki), SSLConfig("wrong", CLIENT_PW), tls.https_server_context),
             (cfg_of(pki), SSLConfig(SERVER_PW, "wrong"), tls.peer_client_context),
             (cfg_of(pki, **{"ssl.server_cert_path": str(tmp_path / "missing.p12")}), PASSWORDS,
              tls.https_server_context),
             (cfg_of(pki, **{"ssl.server_cert_path": str(garbage)}), PASSWORDS, tls.peer_server_context)]
    for cfg, passwords, build in cases:
        with pytest.raises(RuntimeError) as info:
            build(cfg, passwords)
        assert str(info.value) == errors.SSL_PKCS12


def test_mutual_tls_between_servers(pki):
    server, client = handshake(tls.peer_server_context(cfg_of(pki), PASSWORDS),
                               tls.peer_client_context(cfg_of(pki), PASSWORDS))
    assert dict(x[0] for x in server.getpeercert()["subject"])["commonName"] == "client"
    assert dict(x[0] for x in client.getpeercert()["subject"])["commonName"] == "127.0.0.1"


def test_peer_server_refuses_a_client_without_certificate(pki):
    anonymous = tls.client_context(None, ca_path=pki["ca"])
    with pytest.raises(ssl.SSLError):
        handshake(tls.peer_server_context(cfg_of(pki), PASSWORDS), anonymous)


def test_peers_refuse_certificates_of_another_ca(pki):
    foreign_client = cfg_of(pki, **{"ssl.client_cert_path": pki["foreign"]})
    with pytest.raises(ssl.SSLError):
        handshake(tls.peer_server_context(cfg_of(pki), PASSWORDS),
                  tls.peer_client_context(foreign_client, PASSWORDS))
    foreign_server = cfg_of(pki, **{"ssl.server_cert_path": pki["foreign"]})
    with pytest.raises(ssl.SSLError):
        handshake(tls.peer_server_context(foreign_server, SSLConfig(CLIENT_PW, CLIENT_PW)),
                  tls.peer_client_context(cfg_of(pki), PASSWORDS))


def test_crl_revokes_a_client(pki):
    with_crl = cfg_of(pki, **{"ssl.crl_path": pki["crl"]})
    handshake(tls.peer_server_context(with_crl, PASSWORDS), tls.peer_client_context(with_crl, PASSWORDS))
    revoked = cfg_of(pki, **{"ssl.crl_path": pki["crl"], "ssl.client_cert_path": pki["revoked"]})
    with pytest.raises(ssl.SSLError):
        handshake(tls.peer_server_context(with_crl, PASSWORDS), tls.peer_client_context(revoked, PASSWORDS))
    # without the CRL the same certificate is accepted: the refusal above is the CRL's doing
    handshake(tls.peer_server_context(cfg_of(pki), PASSWORDS),
              tls.peer_client_context(cfg_of(pki, **{"ssl.client_cert_path": pki["revoked"]}), PASSWORDS))


def test_peers_need_a_ca(pki):
    with pytest.raises(ConfigError, match="ssl.ca_cert_path is needed"):
        tls.peer_server_context(cfg_of(pki, **{"ssl.ca_cert_path": ""}), PASSWORDS)
    with pytest.raises(ConfigError, match="Failed to load the CA certificate"):
        tls.peer_client_context(cfg_of(pki, **{"ssl.ca_cert_path": pki["server"]}), PASSWORDS)


def test_expiry_warning(pki):
    soon = tls.load_pkcs12(pki["soon"], SERVER_PW)
    text = tls.expiry_warning(soon, 90)
    assert text.startswith(f"The certificate of {pki['soon']} expires in ") and " days (not after " in text
    assert tls.expiry_warning(soon, 7) is None
    later = soon.not_after + datetime.timedelta(seconds=1)
    assert tls.expiry_warning(soon, 7, now=later).startswith(f"The certificate of {pki['soon']} expired on ")
    assert tls.expiry_warning(tls.load_pkcs12(pki["server"], SERVER_PW), 180) is None


def test_contexts_from_a_loaded_config(pki, tmp_path):
    from mindspore_federated.config import load_config_dict
    data = {"fl_name": "tls", "fl_iteration_num": 1, "server_mode": "FEDERATED_LEARNING", "enable_ssl": True,
            "distributed_cache": {"address": "127.0.0.1:6379"},
            "ssl": {"server_cert_path": pki["server"], "client_cert_path": pki["client"],
                    "ca_cert_path": pki["ca"], "cipher_list": "ECDHE-ECDSA-AES128-GCM-SHA256"},
            "round": {"start_fl_job_threshold": 1}}
    cfg = load_config_dict(data, role="scheduler")
    handshake(tls.peer_server_context(cfg, PASSWORDS), tls.peer_client_context(cfg, PASSWORDS))
    handshake(tls.https_server_context(cfg, PASSWORDS), ssl.create_default_context(cafile=pki["ca"]),
              server_hostname="127.0.0.1")


def test_passwords_of_the_command_line_roles_come_from_the_environment():
    from mindspore_federated.startup.ssl_config import ssl_config_from_env

    assert ssl_config_from_env({}) is None
    got = ssl_config_from_env({"MSF_SSL_SERVER_PASSWORD": SERVER_PW, "MSF_SSL_CLIENT_PASSWORD": CLIENT_PW})
    assert (got.server_password, got.client_password) == (SERVER_PW, CLIENT_PW)
    assert SERVER_PW not in repr(got)
