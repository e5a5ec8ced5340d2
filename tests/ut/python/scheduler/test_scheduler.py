"""Scheduler REST API in-process against a real redis-server: every route, envelope and error text."""
import asyncio
import contextlib
import json
import re

import pytest
import redis
from aiohttp import test_utils

from mindspore_federated import errors
from mindspore_federated import scheduler as sched
from mindspore_federated.config import load_config_dict
from mindspore_federated.state.keys import WEEK_S, InstanceState, Keys
from mindspore_federated.tools.fake_cluster import DEFAULT_HYPER_PARAMS, FakeCluster
from tests.utils.redis_server import free_port

INSTANCE_RE = re.compile(r"^i_\d{4}-\d{2}-\d{2}-\d{2}:\d{2}:\d{2}\.\d{3}\.\d{3}$")


def make_config(fl_name, redis_address):
    return load_config_dict({
        "fl_name": fl_name, "fl_iteration_num": 5, "server_mode": "FEDERATED_LEARNING", "enable_ssl": False,
        "distributed_cache": {"type": "redis", "address": redis_address},
        "round": {"start_fl_job_threshold": 1, "start_fl_job_time_window": 3000, "update_model_ratio": 1.0,
                  "update_model_time_window": 3000, "global_iteration_time_window": 6000},
        "summary": {"metrics_file": "metrics.json", "failure_event_file": "event.txt"}}, role="scheduler")


class Api:
    """An in-process scheduler app behind aiohttp's test server, plus a sync Redis view of the cluster."""

    def __init__(self, scheduler, http, sync):
        self.scheduler, self.http, self.sync = scheduler, http, sync
        self.keys = scheduler.keys
        self.cluster = FakeCluster(sync, scheduler.keys.fl_name)

    async def call(self, path, body=None, method="POST", raw=None):
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        resp = await self.http.request(method, path, data=data)
        text = await resp.text()
        return resp.status, json.loads(text) if resp.status in (200, 400) else text, resp.headers

    async def ok(self, path, body=None, method="POST"):
        status, reply, headers = await self.call(path, body, method)
        assert status == 200, reply
        assert reply["code"] == "0" and headers["Content-Type"] == "application/json"
        return reply

    async def error(self, path, body=None, raw=None):
        status, reply, _ = await self.call(path, body, raw=raw)
        assert status == 400, reply
        assert set(reply) == {"error_message", "code"} and reply["code"] == "1"
        return reply["error_message"]


@contextlib.asynccontextmanager
async def scheduler_api(redis_address, fl_name):
    scheduler = sched.Scheduler(make_config(fl_name, redis_address), "127.0.0.1:11202")
    client = sched.redis_client(scheduler.config)
    scheduler.attach_redis(client)
    host, port = redis_address.split(":")
    sync = redis.Redis(host=host, port=int(port), decode_responses=True)
    http = test_utils.TestClient(test_utils.TestServer(scheduler.build_app(), host="127.0.0.1"))
    await http.start_server()
    try:
        yield Api(scheduler, http, sync)
    finally:
        await http.close()
        await client.aclose()
        sync.close()


def run(redis_server, fl_name, scenario):
    async def main():
        async with scheduler_api(redis_server.address, fl_name) as api:
            await scenario(api)
    asyncio.run(main())


class Events:
    """Collects messages published on the cluster's events channel."""

    def __init__(self, api):
        self.pubsub = api.sync.pubsub()
        self.pubsub.subscribe(api.keys.events)
        assert self.pubsub.get_message(timeout=2)["type"] == "subscribe"

    def next(self):
        msg = self.pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
        assert msg is not None, "no event published"
        self.pubsub.close()
        return json.loads(msg["data"])


# ---- address validation ------------------------------------------------------------------------------
@pytest.mark.parametrize("address", ["127.0.0.1:1", "10.113.216.40:18019", "0.0.0.0:65535"])
def test_validate_manage_address_accepts(address):
    ip, port = sched.validate_manage_address(address)
    assert f"{ip}:{port}" == address


@pytest.mark.parametrize("address", [11202, None, b"127.0.0.1:1", ["127.0.0.1:1"]])
def test_validate_manage_address_type(address):
    with pytest.raises(RuntimeError, match=re.escape(errors.SCHED_MANAGE_TYPE)):
        sched.validate_manage_address(address)


@pytest.mark.parametrize("address", ["", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "256.1.1.1:80",
                                     "1.2.3:80", "localhost:80", "127.0.0.1:8a", "127.0.0.1:-1", ":80",
                                     "127.0.0.01:80", "127.0.0.1:80:80", " 127.0.0.1:80"])
def test_validate_manage_address_invalid(address):
    expected = errors.SCHED_BAD_ADDRESS.format(address=address)
    with pytest.raises(RuntimeError, match=re.escape(expected)):
        sched.validate_manage_address(address)


def test_scheduler_constructor_validates_address(redis_server, fl_name):
    with pytest.raises(RuntimeError, match="invalid server address: 1.2.3.4"):
        sched.Scheduler(make_config(fl_name, redis_server.address), "1.2.3.4")


# ---- pure helpers ---------------------------------------------------------------------------------
def test_instance_names_are_unique_and_formatted():
    names = [sched.new_instance_name() for _ in range(200)]
    assert len(set(names)) == 200 and all(INSTANCE_RE.match(n) for n in names)
    assert sched.new_instance_name(current=names[-1]) != names[-1]


def test_body_limit_is_the_references_100_mib():
    # the reference refuses a body longer than kMaxMessageSize = 100 * 2^20 bytes with this text
    assert sched.MAX_BODY == 100 * 1024 * 1024 == 104857600
    assert sched.POST_TOO_BIG == "The post message is bigger than 100mb."
    assert sched.Scheduler(make_config("pin", "127.0.0.1:1"), "127.0.0.1:11202").max_body == sched.MAX_BODY


def test_json_body_parsing():
    assert sched.parse_json_object(b'{"a": 1}') == {"a": 1}
    for bad in (b"{", b"\xff", b'{"a": NaN}', b'{"a": Infinity}', b"[1]", b"3"):
        with pytest.raises(sched.ApiError, match="^Illegal JSON format:"):
            sched.parse_json_object(bad)


# ---- no cluster ----------------------------------------------------------------------------------
def test_routes_without_cluster(redis_server, fl_name):
    no_cluster = errors.SCHED_NO_CLUSTER.format(fl_name=fl_name)

    async def scenario(api):
        for path in ("/state", "/queryInstance", "/enableFLS", "/disableFLS"):
            assert await api.error(path) == no_cluster
        assert await api.error("/newInstance", {"fl_iteration_num": 3}) == \
            errors.SCHED_NEW_INSTANCE_FAILED.format(reason=no_cluster)
        assert await api.error("/scaleout", {"server_num": 1, "worker_num": 0}) == no_cluster
        assert await api.error("/scalein", {"node_ids": ["x"]}) == no_cluster
        nodes = await api.ok("/nodes", method="GET")
        assert nodes["nodeIds"] == [{"alive": "true", "nodeId": "scheduler:127.0.0.1:11202", "rankId": "0",
                                     "role": "SCHEDULER"}]
        status, body, _ = await api.call("/nope")
        assert status == 404 and "Not Found" in body
    run(redis_server, fl_name, scenario)


# ---- /state -------------------------------------------------------------------------------------
def test_state_lists_live_nodes(redis_server, fl_name):
    async def scenario(api):
        api.cluster.bootstrap()
        reply = await api.ok("/state", method="GET")
        assert reply == {"code": "0", "message": errors.SCHED_STATE_OK, "cluster_state": "CLUSTER_READY"}
        s0, s1, dead = api.cluster.add_server(), api.cluster.add_server(), api.cluster.add_server()
        api.cluster.kill_server(dead)
        worker = api.cluster.add_worker()
        api.cluster.add_worker(alive=False)
        for method in ("GET", "POST"):
            reply = await api.ok("/state", method=method)
            assert reply["nodes"] == [
                {"node_id": s0, "tcp_address": s0.split("::")[0], "role": "SERVER"},
                {"node_id": s1, "tcp_address": s1.split("::")[0], "role": "SERVER"},
                {"node_id": worker, "tcp_address": "", "role": "WORKER"}]
    run(redis_server, fl_name, scenario)


@pytest.mark.parametrize("state,name", [(InstanceState.RUNNING, "CLUSTER_READY"),
                                        (InstanceState.DISABLE, "CLUSTER_DISABLE"),
                                        (InstanceState.FINISH, "CLUSTER_FINISH"), (InstanceState.STOP, None)])
def test_state_names(redis_server, fl_name, state, name):
    async def scenario(api):
        api.cluster.bootstrap(state=state)
        reply = await api.ok("/state")
        assert reply.get("cluster_state") == name
    run(redis_server, fl_name, scenario)


def test_state_inner_error(redis_server, fl_name):
    async def scenario(api):
        inst = api.cluster.bootstrap()
        api.sync.hset(api.keys.status(inst), "runningState", "9")
        assert await api.error("/state") == errors.SCHED_STATE_INNER
        api.sync.delete(api.keys.status(inst))
        assert await api.error("/state") == errors.SCHED_STATE_INNER
        assert await api.error("/enableFLS") == errors.SCHED_STATE_INNER
    run(redis_server, fl_name, scenario)


# ---- /enableFLS, /disableFLS --------------------------------------------------------------------------
def test_disable_enable_state_machine(redis_server, fl_name):
    async def scenario(api):
        inst = api.cluster.bootstrap()
        status = api.keys.status(inst)
        assert await api.error("/enableFLS") == errors.SCHED_ALREADY_ENABLED
        events = Events(api)
        assert (await api.ok("/disableFLS"))["message"] == errors.SCHED_DISABLE_OK
        assert api.sync.hget(status, "runningState") == "1"
        assert events.next() == {"event": "state", "state": 1, "instance": inst}
        assert (await api.ok("/state"))["cluster_state"] == "CLUSTER_DISABLE"
        assert await api.error("/disableFLS") == errors.SCHED_ALREADY_DISABLED
        events = Events(api)
        assert (await api.ok("/enableFLS", method="GET"))["message"] == errors.SCHED_ENABLE_OK
        assert api.sync.hget(status, "runningState") == "0"
        assert events.next() == {"event": "state", "state": 0, "instance": inst}
        api.cluster.set_state(InstanceState.FINISH)
        assert await api.error("/enableFLS") == errors.SCHED_ENABLE_FINISHED
        assert await api.error("/disableFLS") == errors.SCHED_DISABLE_FINISHED
        assert api.sync.hget(status, "runningState") == "2"
    run(redis_server, fl_name, scenario)


# ---- /newInstance ---------------------------------------------------------------------------------
FIELD_ERRORS = [
    ({"start_fl_job_threshold": -1}, errors.SCHED_FIELD_UINT.format(key="start_fl_job_threshold")),
    ({"start_fl_job_threshold": 1.5}, errors.SCHED_FIELD_UINT.format(key="start_fl_job_threshold")),
    ({"fl_iteration_num": "3"}, errors.SCHED_FIELD_UINT.format(key="fl_iteration_num")),
    ({"client_epoch_num": True}, errors.SCHED_FIELD_UINT.format(key="client_epoch_num")),
    ({"client_batch_size": 2 ** 40}, errors.SCHED_FIELD_UINT.format(key="client_batch_size")),
    ({"global_iteration_time_window": 0}, errors.SCHED_FIELD_POSITIVE.format(key="global_iteration_time_window")),
    ({"start_fl_job_time_window": None}, errors.SCHED_FIELD_UINT.format(key="start_fl_job_time_window")),
    ({"update_model_time_window": [1]}, errors.SCHED_FIELD_UINT.format(key="update_model_time_window")),
    ({"update_model_ratio": "0.5"}, errors.SCHED_FIELD_NUMBER.format(key="update_model_ratio")),
    ({"update_model_ratio": 0}, errors.SCHED_FIELD_RATIO),
    ({"update_model_ratio": 1.01}, errors.SCHED_FIELD_RATIO),
    ({"client_learning_rate": False}, errors.SCHED_FIELD_NUMBER.format(key="client_learning_rate")),
    ({"client_learning_rate": 0}, errors.SCHED_FIELD_POSITIVE.format(key="client_learning_rate")),
    ({"client_learning_rate": -0.1}, errors.SCHED_FIELD_POSITIVE.format(key="client_learning_rate")),
]


def test_new_instance_validation(redis_server, fl_name):
    async def scenario(api):
        inst = api.cluster.bootstrap()
        assert await api.error("/newInstance") == errors.SCHED_POST_SIZE
        assert await api.error("/newInstance", raw=b"") == errors.SCHED_POST_SIZE
        api.scheduler.max_body = 64
        assert await api.error("/newInstance", {"pad": "x" * 100}) == sched.POST_TOO_BIG
        api.scheduler.max_body = sched.MAX_BODY
        for raw in (b"{not json", b'{"client_learning_rate": NaN}', b'["fl_iteration_num"]'):
            assert (await api.error("/newInstance", raw=raw)).startswith("Illegal JSON format:")
        for body, text in FIELD_ERRORS:
            body = {"fl_iteration_num": 7, **body}  # a valid key does not hide an invalid one
            assert await api.error("/newInstance", body) == errors.SCHED_NEW_INSTANCE_FAILED.format(reason=text)
        overflow = b'{"client_learning_rate": 1e999}'  # parses as inf: not a usable number
        assert await api.error("/newInstance", raw=overflow) == errors.SCHED_NEW_INSTANCE_FAILED.format(
            reason=errors.SCHED_FIELD_NUMBER.format(key="client_learning_rate"))
        assert api.cluster.instance == inst
    run(redis_server, fl_name, scenario)


def test_new_instance_effects(redis_server, fl_name):
    async def scenario(api):
        old = api.cluster.bootstrap(state=InstanceState.FINISH, iteration=6)
        events = Events(api)
        body = {"start_fl_job_threshold": 2, "client_learning_rate": 0.03, "update_model_ratio": 1,
                "unknown_key": 5}
        assert (await api.ok("/newInstance", body))["message"] == errors.SCHED_NEW_INSTANCE_OK
        new = api.cluster.instance
        assert new != old and INSTANCE_RE.match(new)
        assert events.next() == {"event": "new_instance", "instance": new}
        expected = {**DEFAULT_HYPER_PARAMS, "start_fl_job_threshold": 2, "client_learning_rate": 0.03,
                    "update_model_ratio": 1.0}
        assert json.loads(api.sync.get(api.keys.hyper_params(new))) == expected
        assert api.sync.hgetall(api.keys.status(new)) == {
            "iterationNum": "1", "runningState": "0", "lastIterationSuccess": "1", "lastIterationResult": ""}
        ttl = DEFAULT_HYPER_PARAMS["global_iteration_time_window"] // 1000 + WEEK_S
        for key in (api.keys.instance_name, api.keys.hyper_params(new), api.keys.status(new)):
            assert ttl - 5 <= api.sync.ttl(key) <= ttl
        assert api.sync.hget(api.keys.status(old), "runningState") == "2"  # old instance untouched
        assert json.loads(api.sync.get(api.keys.hyper_params(old))) == DEFAULT_HYPER_PARAMS
        reply = await api.ok("/queryInstance")
        assert reply["result"] == expected and reply["message"] == errors.SCHED_QUERY_OK
        assert (await api.ok("/state"))["cluster_state"] == "CLUSTER_READY"
        await api.ok("/newInstance", {"global_iteration_time_window": 10000})
        assert api.cluster.instance not in (old, new)
        assert WEEK_S <= api.sync.ttl(api.keys.instance_name) <= WEEK_S + 10
    run(redis_server, fl_name, scenario)


def test_new_instance_needs_hyper_params(redis_server, fl_name):
    async def scenario(api):
        inst = api.cluster.bootstrap()
        api.sync.delete(api.keys.hyper_params(inst))
        no_cluster = errors.SCHED_NO_CLUSTER.format(fl_name=fl_name)
        assert await api.error("/newInstance", {}) == errors.SCHED_NEW_INSTANCE_FAILED.format(reason=no_cluster)
        assert await api.error("/queryInstance") == no_cluster
    run(redis_server, fl_name, scenario)


# ---- /queryInstance, /nodes ------------------------------------------------------------------------
def test_query_instance_and_nodes(redis_server, fl_name):
    async def scenario(api):
        api.cluster.bootstrap()
        reply = await api.ok("/queryInstance", method="GET")
        assert reply == {"code": "0", "message": errors.SCHED_QUERY_OK, "result": DEFAULT_HYPER_PARAMS}
        s0, s1 = api.cluster.add_server(rank=0), api.cluster.add_server(rank=1)
        api.cluster.kill_server(s1)
        reply = await api.ok("/queryInstance")
        assert reply["nodes"] == [{"node_id": s0, "tcp_address": s0.split("::")[0], "role": "SERVER"}]
        reply = await api.ok("/nodes")
        assert reply["message"] == sched.NODES_OK
        assert reply["nodeIds"] == [
            {"alive": "true", "nodeId": s0, "rankId": "0", "role": "SERVER"},
            {"alive": "false", "nodeId": s1, "rankId": "1", "role": "SERVER"},
            {"alive": "true", "nodeId": "scheduler:127.0.0.1:11202", "rankId": "0", "role": "SCHEDULER"}]
    run(redis_server, fl_name, scenario)


# ---- /scaleout, /scalein -----------------------------------------------------------------------------
def test_scale_out(redis_server, fl_name):
    async def scenario(api):
        api.cluster.bootstrap()
        api.cluster.add_server()
        for body, text in [({"server_num": 1}, sched.MISSING_KEY.format(key="worker_num")),
                           ({"worker_num": 0}, sched.MISSING_KEY.format(key="server_num")),
                           ({"server_num": -1, "worker_num": 0}, sched.NEGATIVE),
                           ({"server_num": 1, "worker_num": 1}, sched.WORKER_SCALE_OUT),
                           ({"server_num": "2", "worker_num": 0}, sched.SCALE_INT.format(key="server_num"))]:
            assert await api.error("/scaleout", body) == text
        assert await api.error("/scaleout") == errors.SCHED_POST_SIZE
        reply = await api.ok("/scaleout", {"server_num": 2, "worker_num": 0})
        assert reply["message"] == sched.SCALE_OUT_OK
        scaling = api.sync.hgetall(api.keys.scaling)
        assert scaling["state"] == "SCALE_OUT" and scaling["expected_servers"] == "3"
        assert int(scaling["requested_ms"]) > 0 and 3590 <= api.sync.ttl(api.keys.scaling) <= 3600
        assert await api.error("/scaleout", {"server_num": 1, "worker_num": 0}) == sched.NOT_READY
        assert (await api.ok("/state"))["cluster_state"] == "CLUSTER_SCALE_OUT"
        api.cluster.add_server()
        assert (await api.ok("/state"))["cluster_state"] == "CLUSTER_SCALE_OUT"
        api.cluster.add_server()
        assert (await api.ok("/state"))["cluster_state"] == "CLUSTER_READY"
        assert not api.sync.exists(api.keys.scaling)
    run(redis_server, fl_name, scenario)


def test_scale_in(redis_server, fl_name):
    async def scenario(api):
        api.cluster.bootstrap()
        s0, s1, s2 = (api.cluster.add_server() for _ in range(3))
        dead = api.cluster.add_server()
        api.cluster.kill_server(dead)
        worker = api.cluster.add_worker()
        for body, text in [({}, sched.MISSING_KEY.format(key="node_ids")),
                           ({"node_ids": s1}, sched.NODE_IDS_TYPE), ({"node_ids": [1]}, sched.NODE_IDS_TYPE),
                           ({"node_ids": []}, sched.NODE_IDS_EMPTY),
                           ({"node_ids": [s1, "nope"]}, sched.NODE_ILLEGAL.format(node_id="nope")),
                           ({"node_ids": [dead]}, sched.NODE_ILLEGAL.format(node_id=dead)),
                           ({"node_ids": [worker]}, sched.NODE_WORKER.format(node_id=worker)),
                           ({"node_ids": [s0, s1, s2]}, sched.SCALE_IN_ALL)]:
            assert await api.error("/scalein", body) == text
        events = Events(api)
        assert (await api.ok("/scalein", {"node_ids": [s1, s2, s1]}))["message"] == sched.SCALE_IN_OK
        assert events.next() == {"event": "scale_in", "node_ids": [s1, s2]}
        assert api.sync.smembers(api.keys.scale_in) == {s1, s2}
        scaling = api.sync.hgetall(api.keys.scaling)
        assert scaling["state"] == "SCALE_IN" and scaling["expected_servers"] == "1"
        assert await api.error("/scalein", {"node_ids": [s0]}) == sched.NOT_READY
        assert await api.error("/scaleout", {"server_num": 1, "worker_num": 0}) == sched.NOT_READY
        assert (await api.ok("/state"))["cluster_state"] == "CLUSTER_SCALE_IN"
        api.cluster.remove_server(s1)  # also SREMs itself: s2 is still live, so scaling goes on
        api.sync.srem(api.keys.scale_in, s2)
        assert (await api.ok("/state"))["cluster_state"] == "CLUSTER_SCALE_IN"
        api.cluster.kill_server(s2)
        reply = await api.ok("/state")
        assert reply["cluster_state"] == "CLUSTER_READY" and [n["node_id"] for n in reply["nodes"]] == [s0, worker]
        assert not api.sync.exists(api.keys.scaling) and not api.sync.exists(api.keys.scale_in)
    run(redis_server, fl_name, scenario)


def test_scaling_state_overrides_disable(redis_server, fl_name):
    async def scenario(api):
        api.cluster.bootstrap(state=InstanceState.DISABLE)
        await api.ok("/scaleout", {"server_num": 1, "worker_num": 0})
        assert (await api.ok("/state"))["cluster_state"] == "CLUSTER_SCALE_OUT"
        api.cluster.add_server()
        assert (await api.ok("/state"))["cluster_state"] == "CLUSTER_DISABLE"
    run(redis_server, fl_name, scenario)


# ---- Redis outage -------------------------------------------------------------------------------
def test_redis_down_gives_cache_error_then_recovers(fresh_redis, fl_name):
    async def scenario(api):
        api.cluster.bootstrap()
        await api.ok("/state")
        fresh_redis.kill()
        for path, body in (("/state", None), ("/disableFLS", None), ("/newInstance", {"fl_iteration_num": 2}),
                           ("/queryInstance", None), ("/nodes", None), ("/scalein", {"node_ids": ["a"]})):
            assert await api.error(path, body) == errors.SCHED_CACHE
        fresh_redis.restart()
        assert await api.error("/state") == errors.SCHED_NO_CLUSTER.format(fl_name=fl_name)  # data was lost
        api.cluster.bootstrap()
        assert (await api.ok("/state"))["cluster_state"] == "CLUSTER_READY"
    run(fresh_redis, fl_name, scenario)


def test_redis_unreachable_at_start_is_bounded(fresh_redis, fl_name):
    async def scenario():
        scheduler = sched.Scheduler(make_config(fl_name, fresh_redis.address), "127.0.0.1:11202")
        scheduler.startup_timeout = 0.5
        fresh_redis.kill()
        with pytest.raises(errors.StateError, match="Failed to access the cache server"):
            await scheduler.start()
        assert scheduler._runner is None and scheduler.redis is None
    asyncio.run(scenario())


def test_registration_and_deregistration(redis_server, fl_name):
    async def scenario():
        scheduler = sched.Scheduler(make_config(fl_name, redis_server.address), f"127.0.0.1:{free_port()}")
        await scheduler.start()
        sync = redis.Redis(port=redis_server.port, decode_responses=True)
        entry = json.loads(sync.hget(Keys(fl_name).processes, scheduler.node_id))
        assert entry["role"] == "SCHEDULER" and entry["start_time"] > 0 and entry["address"] == scheduler.address
        await scheduler.stop()
        assert sync.hget(Keys(fl_name).processes, scheduler.node_id) is None
        sync.close()
    asyncio.run(scenario())


# ---- HTTPS (enable_ssl) ----------------------------------------------------------------------------
def make_p12(tmp_path, password):
    """A self-signed EC certificate for 127.0.0.1 as PKCS#12, plus its PEM (the CA for clients)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    p12_path, pem_path = tmp_path / "server.p12", tmp_path / "ca.pem"
    p12_path.write_bytes(pkcs12.serialize_key_and_certificates(
        b"server", key, cert, None, serialization.BestAvailableEncryption(password.encode())))
    pem_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(p12_path), str(pem_path)


def test_server_ssl_context_errors(tmp_path):
    from mindspore_federated.startup.ssl_config import SSLConfig
    p12, _ = make_p12(tmp_path, "server_password_12345")
    cfg = {"ssl.server_cert_path": p12, "ssl.cipher_list": "ECDHE-ECDSA-AES128-GCM-SHA256"}
    assert sched.server_ssl_context(cfg, SSLConfig("server_password_12345", "client_password_12345"))
    with pytest.raises(RuntimeError, match=re.escape(errors.SSL_PKCS12)):
        sched.server_ssl_context(cfg, SSLConfig("wrong", "client_password_12345"))
    with pytest.raises(RuntimeError, match=re.escape(errors.SSL_CLIENT_PASSWORD_EMPTY)):
        sched.server_ssl_context(cfg, None)


def test_https_scheduler_with_cli(redis_server, fl_name, tmp_path, capsys):
    from mindspore_federated import cli
    from mindspore_federated.startup.ssl_config import SSLConfig
    p12, ca = make_p12(tmp_path, "pw")
    context = sched.server_ssl_context({"ssl.server_cert_path": p12}, SSLConfig("pw", "pw"))
    address = f"127.0.0.1:{free_port()}"

    async def scenario():
        scheduler = sched.Scheduler(make_config(fl_name, redis_server.address), address, ssl_context=context)
        await scheduler.start()
        try:
            return await asyncio.to_thread(cli.main, ["nodes", "--address", address, "--https", "--cafile", ca])
        finally:
            await scheduler.stop()
    assert asyncio.run(scenario()) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{"):])["message"] == sched.NODES_OK


def test_fl_scheduler_job_address_errors(redis_server, fl_name, tmp_path):
    from mindspore_federated import FlSchedulerJob
    from tests.utils.cluster import write_yaml
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name)
    with pytest.raises(RuntimeError, match=re.escape(errors.SCHED_MANAGE_TYPE)):
        FlSchedulerJob(yaml_path, 11202).run()
    with pytest.raises(RuntimeError, match=re.escape(errors.SCHED_BAD_ADDRESS.format(address="127.0.0.1"))):
        FlSchedulerJob(yaml_path, "127.0.0.1").run()
