"""enable_ssl with real processes and certificates made at test time: HTTPS device API in both engines (plain
HTTP to the TLS port gets nothing usable), PKCS#12 password checks, TLS + AUTH (default user and ACL user) to a
TLS-only redis-server for servers and the scheduler, and no silent downgrade (plain Redis, enable_ssl mismatch)."""
import asyncio
import json
import socket
import ssl
import urllib.request

import numpy as np
import pytest

from mindspore_federated import errors
from mindspore_federated.client.device import Device, https_context
from mindspore_federated.config import ALLOWED_CIPHERS
from mindspore_federated.exit_codes import ExitCode
from tests.utils.certs import TestCA, write_p12
from tests.utils.cluster import write_yaml
from tests.utils.redis_server import RedisServer, RedisTls, free_port

SERVER_PW, CLIENT_PW = "server-p12-password", "client-p12-password"
REDIS_PW, ALICE_PW = "redis-default-pw", "redis-alice-pw"
ACL = ("--requirepass", REDIS_PW, "--user", "alice", "on", f">{ALICE_PW}", "~*", "&*", "+@all")
TLS_ENTRY = ("-m", "tests.utils.tls_entry")
P12_ENV = {"MSF_SSL_SERVER_PASSWORD": SERVER_PW, "MSF_SSL_CLIENT_PASSWORD": CLIENT_PW}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = TestCA("cluster-ca")
    return {"ca": ca.write_pem(d / "ca.pem"),
            "server": write_p12(d / "server.p12", *ca.issue("127.0.0.1"), SERVER_PW),
            "client": write_p12(d / "client.p12", *ca.issue("client"), CLIENT_PW)}


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    """A redis-server with a TLS port (client certificates required), requirepass and an ACL user, and a
    plain port on the same data (for the mixed-cluster tests)."""
    d = tmp_path_factory.mktemp("redis_tls")
    material = RedisTls(d / "pki", client_certs=True)
    plain_port = free_port()
    server = RedisServer(d / "data", extra_args=(*ACL, "--port", str(plain_port)), tls=material).start()
    server.plain_address = f"127.0.0.1:{plain_port}"
    yield server, material
    server.stop()


def tls_yaml(directory, fl_name, pki, tls_redis, engine="fast", cache=None, threshold=1, **overrides):
    server, material = tls_redis
    cache = {"address": server.address, "cacert_filename": material.ca_file,
             "cert_filename": material.client_cert, "private_key_filename": material.client_key,
             "username": "alice", "password": ALICE_PW, **(cache or {})}
    return write_yaml(directory, server.address, fl_name, enable_ssl=True, distributed_cache=cache,
                      ssl={"server_cert_path": pki["server"], "client_cert_path": pki["client"],
                           "ca_cert_path": pki["ca"], "cipher_list": ":".join(ALLOWED_CIPHERS[:5])},
                      round={"start_fl_job_threshold": threshold}, client={"http_engine": engine}, **overrides)


def start(procs, role_args, name, env=None):
    return procs.python(name, *TLS_ENTRY, *role_args, env={**P12_ENV, **(env or {})})


def server_args(yaml_path, workdir, http):
    return ["server", "--yaml_config", yaml_path, "--http_server_address", http,
            "--checkpoint_dir", str(workdir / "fl_ckpt")]


def start_tls_server(procs, yaml_path, workdir, name="server", env=None):
    http = f"127.0.0.1:{free_port()}"
    proc = start(procs, server_args(yaml_path, workdir, http), name, env)
    proc.wait_ready(timeout=60)
    return proc, http


def refused(procs, yaml_path, workdir, needle, env=None, name="refused", timeout=60):
    """Starts a server that must refuse to start: returns its output once it exited."""
    proc = start(procs, server_args(yaml_path, workdir, f"127.0.0.1:{free_port()}"), name, env)
    proc.wait_line(needle, timeout=timeout)
    code = proc.wait_exit(30)
    assert code == ExitCode.SERVER_START_FAILED
    assert "READY" not in proc.output()
    return proc.output()


def one_device_iteration(http, fl_name, ca_file):
    async def scenario():
        device = Device(f"https://{http}", fl_name, data_size=4, ssl_context=https_context(ca_file))
        async with device:
            def train(features, _plan):
                return {k: v + np.float32(1.0) for k, v in features.items()}, 0.1, 0.9
            return await asyncio.wait_for(device.run_iteration(train), 60)
    return asyncio.run(scenario())


def plain_http_reply(http):
    """What a plain-HTTP client gets from the port: the bytes read until the server closes (or 5 s)."""
    host, port = http.rsplit(":", 1)
    got = b""
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"POST /startFLJob HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd")
        try:
            while len(got) < 65536:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
        except (socket.timeout, ConnectionResetError):
            pass
    return got


@pytest.mark.parametrize("engine", ["fast", "aiohttp"])
def test_https_device_api_over_tls_redis_with_acl_user(tmp_path, fl_name, procs, pki, tls_redis, engine):
    yaml_path = tls_yaml(tmp_path, fl_name, pki, tls_redis, engine)
    _, http = start_tls_server(procs, yaml_path, tmp_path / "srv")
    outcome = one_device_iteration(http, fl_name, pki["ca"])
    assert outcome.accepted and outcome.model is not None
    # plain HTTP to the TLS port: no HTTP reply, only (at most) a TLS alert, then the connection ends
    assert not plain_http_reply(http).startswith(b"HTTP/")
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://{http}/healthz", timeout=5).read()
    # an HTTPS client that does not trust the server's CA is refused by its own verification
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(f"https://{http}/healthz", timeout=5,
                               context=ssl.create_default_context()).read()
    # the server reached Redis over TLS as ACL user alice: its connections are listed under that user
    server, material = tls_redis
    from mindspore_federated.state.clients import RedisSettings, make_sync_client

    admin = make_sync_client(RedisSettings(server.address, password=REDIS_PW, tls=True, ca_file=material.ca_file,
                                           cert_file=material.client_cert, key_file=material.client_key),
                             socket_timeout=5, decode_responses=True)
    try:
        users = {c.get("user") for c in admin.client_list()}
    finally:
        admin.close()
    assert "alice" in users


@pytest.mark.parametrize("env,needle", [
    ({"MSF_SSL_SERVER_PASSWORD": "wrong"}, errors.SSL_PKCS12),
    ({"MSF_SSL_CLIENT_PASSWORD": "wrong"}, errors.SSL_PKCS12),
    ({"MSF_SSL_SERVER_PASSWORD": "", "MSF_SSL_CLIENT_PASSWORD": ""}, errors.SSL_CLIENT_PASSWORD_EMPTY),
], ids=["wrong-server-password", "wrong-client-password", "missing-password"])
def test_pkcs12_password_problems_fail_start_up(tmp_path, fl_name, procs, pki, tls_redis, env, needle):
    yaml_path = tls_yaml(tmp_path, fl_name, pki, tls_redis)
    out = refused(procs, yaml_path, tmp_path / "srv", f"FAILED server: {needle}", env=env)
    assert SERVER_PW not in out and CLIENT_PW not in out


@pytest.mark.parametrize("cache", [{"password": "wrong-pw"}, {"username": "mallory"}, {"password": ""}],
                         ids=["wrong-password", "unknown-acl-user", "no-password"])
def test_redis_auth_failure_is_a_clear_start_up_error(tmp_path, fl_name, procs, pki, tls_redis, cache):
    yaml_path = tls_yaml(tmp_path, fl_name, pki, tls_redis, cache=cache)
    out = refused(procs, yaml_path, tmp_path / "srv", "Redis auth", timeout=30)
    assert ALICE_PW not in out and REDIS_PW not in out


def test_tls_asking_yaml_against_plain_redis_fails_never_falls_back(tmp_path, fl_name, procs, pki, tls_redis,
                                                                    redis_server):
    yaml_path = tls_yaml(tmp_path, fl_name, pki, tls_redis, cache={"address": redis_server.address,
                                                                   "username": "", "password": ""})
    refused(procs, yaml_path, tmp_path / "srv", "TLS to Redis", timeout=60)
    import redis

    plain = redis.Redis(host="127.0.0.1", port=redis_server.port)
    try:
        assert not plain.keys(f"*{fl_name}*")  # nothing of this cluster went to Redis in plain text
    finally:
        plain.close()


def test_password_from_the_environment(tmp_path, fl_name, procs, pki, tls_redis):
    """distributed_cache.password empty: MSF_REDIS_USERNAME / MSF_REDIS_PASSWORD are used (and not logged)."""
    yaml_path = tls_yaml(tmp_path, fl_name, pki, tls_redis, cache={"username": "", "password": ""})
    proc, http = start_tls_server(procs, yaml_path, tmp_path / "srv",
                                  env={"MSF_REDIS_USERNAME": "alice", "MSF_REDIS_PASSWORD": ALICE_PW})
    assert one_device_iteration(http, fl_name, pki["ca"]).accepted
    proc.stop()
    assert ALICE_PW not in proc.output()


@pytest.mark.parametrize("first_tls", [True, False], ids=["tls-cluster-plain-joiner", "plain-cluster-tls-joiner"])
def test_enable_ssl_must_match_across_the_cluster(tmp_path, fl_name, procs, pki, tls_redis, first_tls):
    server, _ = tls_redis
    tls_yaml_path = tls_yaml(tmp_path / "tls", fl_name, pki, tls_redis)
    plain_yaml_path = write_yaml(tmp_path / "plain", server.plain_address, fl_name,
                                 distributed_cache={"password": REDIS_PW}, round={"start_fl_job_threshold": 1})
    first, joiner = (tls_yaml_path, plain_yaml_path) if first_tls else (plain_yaml_path, tls_yaml_path)
    start_tls_server(procs, first, tmp_path / "first", name="first")
    refused(procs, joiner, tmp_path / "joiner", errors.START_HYPER_PARAMS, name="joiner")


@pytest.mark.parametrize("entry", [TLS_ENTRY + ("scheduler",), ("-m", "mindspore_federated.scheduler")],
                         ids=["FlSchedulerJob", "command-line"])
def test_scheduler_https_and_tls_redis(tmp_path, fl_name, procs, pki, tls_redis, entry):
    yaml_path = tls_yaml(tmp_path, fl_name, pki, tls_redis, cache={"username": "", "password": REDIS_PW})
    start_tls_server(procs, yaml_path, tmp_path / "srv")
    manage = f"127.0.0.1:{free_port()}"
    sched = procs.python("scheduler", *entry, "--yaml_config", yaml_path, "--scheduler_manage_address", manage,
                         env=P12_ENV)
    sched.wait_ready(timeout=60)
    context = https_context(pki["ca"])
    with urllib.request.urlopen(f"https://{manage}/state", timeout=10, context=context) as resp:
        state = json.loads(resp.read())
    assert state["code"] == "0" and state["cluster_state"] == "CLUSTER_READY"
    assert [n["role"] for n in state["nodes"]] == ["SERVER"]
    sched.stop()
    assert REDIS_PW not in sched.output()


def test_scheduler_refuses_a_wrong_redis_password(tmp_path, fl_name, procs, pki, tls_redis):
    yaml_path = tls_yaml(tmp_path, fl_name, pki, tls_redis, cache={"username": "", "password": "nope"})
    sched = start(procs, ["scheduler", "--yaml_config", yaml_path, "--scheduler_manage_address",
                          f"127.0.0.1:{free_port()}"], "scheduler")
    sched.wait_line("Redis auth", timeout=30)
    assert sched.wait_exit(30) != 0
    assert "READY" not in sched.output()


def test_finish_cloud_reaches_a_tls_redis_with_auth(tmp_path, fl_name, procs, pki, tls_redis):
    yaml_path = tls_yaml(tmp_path, fl_name, pki, tls_redis)
    proc, _ = start_tls_server(procs, yaml_path, tmp_path / "srv")
    tool = procs.python("finish_cloud", "-m", "mindspore_federated.tools.finish_cloud", "--yaml_config",
                        yaml_path, "--fl_name", fl_name)
    assert tool.wait_exit(60) == 0
    assert f"killed {proc.pid}" in tool.output()
    proc.wait_exit(30)


def test_simulator_speaks_https_with_a_ca_file(tmp_path, fl_name, procs, pki, tls_redis):
    yaml_path = tls_yaml(tmp_path, fl_name, pki, tls_redis, threshold=2)
    _, http = start_tls_server(procs, yaml_path, tmp_path / "srv")
    sim = procs.python("simulator", "-m", "mindspore_federated.client.simulator", "--servers", f"https://{http}",
                       "--fl-name", fl_name, "--devices", "2", "--iterations", "2", "--ca-file", pki["ca"],
                       "--no-progress")
    assert sim.wait_exit(120) == 0, sim.output()
    untrusted = procs.python("untrusted", "-m", "mindspore_federated.client.simulator", "--servers",
                             f"https://{http}", "--fl-name", fl_name, "--devices", "1", "--step-timeout", "3",
                             "--iteration-timeout", "10", "--no-progress")
    assert untrusted.wait_exit(120) != 0
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.output()


def test_scheduler_command_line_without_passwords_refuses(tmp_path, fl_name, procs, pki, tls_redis):
    yaml_path = tls_yaml(tmp_path, fl_name, pki, tls_redis)
    sched = procs.python("scheduler", "-m", "mindspore_federated.scheduler", "--yaml_config", yaml_path,
                         "--scheduler_manage_address", f"127.0.0.1:{free_port()}")
    assert sched.wait_exit(60) == ExitCode.CONFIG_ERROR
    assert errors.SCHED_SSL_NEEDS_JOB in sched.output() and "READY" not in sched.output()


# ---- mutual TLS on the inter-server link (issue 14 item 2) --------------------------------------------------
def test_two_servers_all_reduce_over_mutual_tls(tmp_path, fl_name, procs, pki, tls_redis):
    """enable_ssl end to end with two servers: devices over HTTPS on both, the updates summed by the all-reduce
    over the mutual-TLS link (the exact FedAvg on both servers); a peer whose certificate comes from another
    CA is refused by a server's link, which logs it."""
    from mindspore_federated import comm, tls
    from mindspore_federated.startup.ssl_config import SSLConfig
    from tests.utils.wait import wait_for

    yaml_path = tls_yaml(tmp_path, fl_name, pki, tls_redis, threshold=4)
    servers = [start_tls_server(procs, yaml_path, tmp_path / f"srv{i}", name=f"server{i}") for i in range(2)]

    initial = {}

    async def four_devices():
        context = https_context(pki["ca"])

        def trainer(delta):
            def train(features, _plan):
                initial.update({k: np.array(v) for k, v in features.items()})
                return {k: v + np.float32(delta) for k, v in features.items()}
            return train

        devices = [Device(f"https://{servers[d % 2][1]}", fl_name, data_size=d + 1, ssl_context=context)
                   for d in range(4)]  # two on each server
        try:
            return await asyncio.wait_for(asyncio.gather(
                *(dev.run_iteration(trainer(d + 1)) for d, dev in enumerate(devices))), 120)
        finally:
            await asyncio.gather(*(dev.close() for dev in devices))

    outcomes = asyncio.run(four_devices())
    assert all(o.accepted for o in outcomes)
    # device d uploads (w + d + 1) * (d + 1): FedAvg = w + sum((d + 1)^2) / sum(d + 1) = w + 3, on both servers
    for name, start in initial.items():
        for outcome in outcomes[:2]:  # one device of each server fetched the new model from it
            np.testing.assert_allclose(outcome.model[name], start + np.float32(3.0), rtol=1e-5, atol=1e-5)
    tcp = servers[0][0].wait_ready().split("tcp=", 1)[1].split()[0]
    rogue_ca = TestCA("rogue-ca")  # trusts the cluster's CA, which does not trust it
    rogue = {"ssl.server_cert_path": write_p12(tmp_path / "r_s.p12", *rogue_ca.issue("127.0.0.1"), SERVER_PW),
             "ssl.client_cert_path": write_p12(tmp_path / "r_c.p12", *rogue_ca.issue("rogue"), CLIENT_PW),
             "ssl.ca_cert_path": pki["ca"], "ssl.crl_path": "", "ssl.cipher_list": "",
             "ssl.cert_expire_warning_time_in_day": 90}
    intruder = comm.Communicator("127.0.0.1", 0, 10,
                                 tls=tls.peer_link_options(rogue, SSLConfig(SERVER_PW, CLIENT_PW)))
    with intruder, pytest.raises(comm.CommError):
        intruder.request(tcp, 1, b"", 10.0)
    wait_for(lambda: "refused: TLS handshake failed" in servers[0][0].output(), 30,
             what="the server logging the refused peer")


def _rss(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def test_waiting_tls_connections_hold_bounded_memory(tmp_path, fl_name, procs, pki, tls_redis):
    """Devices that ask for 10x LeNet (2.47 MB replies) twice and then do not read: the fast engine hands the
    TLS transport a bounded window of each reply, so the server's memory grows far less than one reply per
    connection; every reply still arrives whole and byte-exact once read."""
    from mindspore_federated.client import messages as m
    from mindspore_federated.server import initial_feature_map
    from tests.utils.raw_http import Reader, request

    yaml_path = tls_yaml(tmp_path, fl_name, pki, tls_redis, "fast")
    http = f"127.0.0.1:{free_port()}"
    proc = start(procs, [*server_args(yaml_path, tmp_path / "srv", http), "--model", "lenet10x"], "server")
    proc.wait_ready(timeout=60)
    host, port = http.rsplit(":", 1)
    ctx = https_context(pki["ca"])
    big = request("/getModel", m.build_get_model(fl_name, 0))

    def tls_socket():
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        raw.settimeout(30)
        raw.connect((host, int(port)))
        return ctx.wrap_socket(raw, server_hostname="127.0.0.1")

    with tls_socket() as warm:   # the cached reply and the TLS machinery exist before the baseline
        warm.sendall(big)
        assert len(Reader(warm).response()[2]) > 2_400_000
    before = _rss(proc.pid)
    conns = [tls_socket() for _ in range(30)]
    try:
        for s in conns:
            s.sendall(big + big)
        firsts = [s.recv(64) for s in conns]   # the first reply began: both requests are taken on by now
        assert all(first.startswith(b"HTTP/1.1 200") for first in firsts)
        grown = _rss(proc.pid) - before
        # two replies per connection are 4.9 MB; one whole ciphertext copy each would be > 70 MiB here
        assert grown < len(conns) * (3 << 19), f"{grown / 2**20:.1f} MiB for {len(conns)} waiting connections"
        expect = {item.name: item.data for item in initial_feature_map("lenet10x").items()}
        reader = Reader(conns[0])
        reader.buf = firsts[0]
        for _ in range(2):
            status, _, body = reader.response()
            reply = m.parse_get_model(body)
            assert status == 200 and set(reply.features) == set(expect)
            for name, value in expect.items():
                np.testing.assert_array_equal(reply.features[name].reshape(-1), value.reshape(-1))
    finally:
        for s in conns:
            s.close()
