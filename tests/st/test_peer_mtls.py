"""Mutual TLS on the inter-server link between real processes: the TLS material is read from PKCS#12 files by
tls.peer_link_options (as a server with enable_ssl does), two processes all-reduce and answer requests through
comm.py, and a process whose certificate comes from another CA is refused (and the refusal is logged)."""
import asyncio
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mindspore_federated import comm, errors, tls
from mindspore_federated.errors import ConfigError
from mindspore_federated.startup.ssl_config import SSLConfig
from tests.utils.certs import TestCA, write_p12

SERVER_PW, CLIENT_PW = "server_password_12345", "client_password_12345"
PASSWORDS = SSLConfig(SERVER_PW, CLIENT_PW)
N = 300_000

# A peer process: builds its link from the config (argv[1], JSON of dotted keys), prints its address, then
# all-reduces as rank 1 with the group read from stdin and answers one request through comm.serve_requests.
CHILD = textwrap.dedent(
    """
    import asyncio, json, sys
    import numpy as np
    from mindspore_federated import comm, tls
    from mindspore_federated.startup.ssl_config import SSLConfig
    cfg = json.loads(sys.argv[1])
    link = tls.peer_link_options(cfg, SSLConfig(sys.argv[2], sys.argv[3]))
    c = comm.Communicator("127.0.0.1", 0, 100, tls=link)
    c.start()
    print(c.address, flush=True)
    group = sys.stdin.readline().split()[0].split(",")
    x = np.arange(int(sys.argv[4]), dtype=np.float32) % 1000 + 1
    try:
        asyncio.run(comm.allreduce(c, group, 1, x, 5, 20.0))
        print("sum", float(x.sum()), flush=True)
    except comm.CommError as exc:
        print("failed", exc, flush=True)

    async def serve_one():
        async def handler(peer, msg_type, payload):
            done.set()
            return b"secure:" + payload
        done = asyncio.Event()
        task = asyncio.create_task(comm.serve_requests(c, handler))
        await asyncio.wait_for(done.wait(), 20.0)
        await asyncio.sleep(0.2)
        task.cancel()
    asyncio.run(serve_one())
    c.stop()
    """
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("peer_pki")
    ca, foreign = TestCA("cluster-ca"), TestCA("foreign-ca")
    out = {"ca": ca.write_pem(d / "ca.pem"), "dir": d}
    for name, issuer in (("a", ca), ("b", ca), ("rogue", foreign)):
        out[name + "_server"] = write_p12(d / f"{name}_server.p12", *issuer.issue("127.0.0.1"), SERVER_PW)
        out[name + "_client"] = write_p12(d / f"{name}_client.p12", *issuer.issue("server"), CLIENT_PW)
    return out


def cfg_of(pki, who, **extra):
    cfg = {"ssl.server_cert_path": pki[who + "_server"], "ssl.client_cert_path": pki[who + "_client"],
           "ssl.ca_cert_path": pki["ca"], "ssl.crl_path": "",
           "ssl.cipher_list": "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384",
           "ssl.cert_expire_warning_time_in_day": 90}
    cfg.update(extra)
    return cfg


def spawn(cfg):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(cfg), SERVER_PW, CLIENT_PW, str(N)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    return proc, proc.stdout.readline().strip()


def test_two_processes_allreduce_and_request_over_mutual_tls(pki):
    proc, child = spawn(cfg_of(pki, "b"))
    with proc:
        c = comm.Communicator("127.0.0.1", 0, 100, tls=tls.peer_link_options(cfg_of(pki, "a"), PASSWORDS))
        assert c.tls
        with c:
            group = [c.address, child]
            proc.stdin.write(",".join(group) + "\n")
            proc.stdin.flush()
            x = np.arange(N, dtype=np.float32) % 1000
            c.allreduce(group, 0, x, 5, 20.0)
            expect = 2 * (np.arange(N, dtype=np.float32) % 1000) + 1
            np.testing.assert_array_equal(x, expect)
            assert proc.stdout.readline().split() == ["sum", str(float(expect.sum()))]
            assert c.request(child, 3, b"ping", 20.0) == b"secure:ping"
        proc.stdin.close()
        assert proc.wait(20) == 0, proc.stderr.read()


def test_peer_with_a_certificate_from_another_ca_is_refused_and_logged(pki):
    proc, child = spawn(cfg_of(pki, "b"))
    with proc:
        rogue = comm.Communicator("127.0.0.1", 0, 100,
                                  tls=tls.peer_link_options(cfg_of(pki, "rogue"), PASSWORDS))
        with rogue:
            group = [rogue.address, child]
            proc.stdin.write(",".join(group) + "\n")
            proc.stdin.flush()
            x = np.zeros(N, dtype=np.float32)
            with pytest.raises(comm.CommError):  # its frames are never accepted (it waits to its timeout)
                rogue.allreduce(group, 0, x, 5, 3.0)
            assert proc.stdout.readline().startswith("failed")  # the real peer refused the rogue at once
            with pytest.raises(comm.CommError):
                rogue.request(child, 3, b"let me in", 20.0)
        proc.kill()
        stderr = proc.stderr.read()
    assert "refused: TLS handshake failed" in stderr
    assert "certificate verify failed" in stderr


def test_unusable_link_material_fails_with_clear_texts(pki):
    with pytest.raises(ConfigError, match=errors.SSL_PKCS12):
        tls.peer_link_options(cfg_of(pki, "a"), SSLConfig("wrong", CLIENT_PW))
    with pytest.raises(ConfigError, match="client password"):
        tls.peer_link_options(cfg_of(pki, "a"), SSLConfig(SERVER_PW, ""))
    with pytest.raises(ConfigError, match="Failed to load the CA certificate"):
        tls.peer_link_options(cfg_of(pki, "a", **{"ssl.ca_cert_path": str(pki["dir"] / "none.pem")}),
                              PASSWORDS)
    options = tls.peer_link_options(cfg_of(pki, "a"), PASSWORDS)
    assert b"PRIVATE KEY" in options["server_key"] and options["ca_file"] == pki["ca"]
    assert not any("PRIVATE" in text for text in (repr(options), f"{options}", str([options])))


def test_server_peers_ping_over_mutual_tls_and_a_plain_peer_is_refused(pki):
    from mindspore_federated.server.peers import Peers

    async def main():
        a = Peers("127.0.0.1", 10, tls=tls.peer_link_options(cfg_of(pki, "a"), PASSWORDS))
        b = Peers("127.0.0.1", 10, tls=tls.peer_link_options(cfg_of(pki, "b"), PASSWORDS))
        plain = Peers("127.0.0.1", 10)
        try:
            a.serve(node=None)  # pings need no node
            b.serve(node=None)
            plain.serve(node=None)
            return (await a.ping(b.address), await b.ping(a.address), await plain.ping(a.address),
                    await a.ping(plain.address))
        finally:
            for p in (a, b, plain):
                await p.close()

    assert asyncio.run(main()) == ("ok", "ok", "refused", "refused")

