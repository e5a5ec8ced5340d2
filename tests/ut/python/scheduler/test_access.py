"""Management-plane access of an in-process scheduler against a real redis-server: the bearer token from the
config or the environment, HTTPS when enable_ssl (FlSchedulerJob's ssl context), the dashboard's assets."""
import asyncio
import json
import logging
import ssl
import urllib.error
import urllib.request

import pytest

from mindspore_federated import scheduler as sched
from mindspore_federated.config import load_config_dict
from mindspore_federated.errors import SCHED_OPEN_BIND, SCHED_UNAUTHORIZED
from mindspore_federated.scheduler.access import manage_token
from mindspore_federated.scheduler.role import is_loopback
from mindspore_federated.startup.ssl_config import SSLConfig
from tests.utils.certs import TestCA, write_p12
from tests.utils.redis_server import free_port

TOKEN = "config-token-0123456789"


def config(fl_name, redis_address, token=TOKEN):
    return load_config_dict({
        "fl_name": fl_name, "fl_iteration_num": 5, "server_mode": "FEDERATED_LEARNING", "enable_ssl": False,
        "distributed_cache": {"type": "redis", "address": redis_address}, "manage": {"token": token}},
        role="scheduler")


def request(url, token=None, context=None, scheme="Bearer", data=None):
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    if token is not None:
        req.add_header("Authorization", f"{scheme} {token}")
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers, exc.read()


def serve(scheduler, scenario):
    """Runs the scheduler in this loop while `scenario` (blocking HTTP calls) runs in a thread."""
    async def main():
        await scheduler.start()
        try:
            return await asyncio.to_thread(scenario)
        finally:
            await scheduler.stop()
    return asyncio.run(main())


def test_token_from_environment_wins(monkeypatch, redis_server, fl_name):
    cfg = config(fl_name, redis_server.address)
    monkeypatch.delenv("MSF_MANAGE_TOKEN", raising=False)
    assert manage_token(cfg) == TOKEN
    monkeypatch.setenv("MSF_MANAGE_TOKEN", "from-env")
    assert manage_token(cfg) == "from-env"
    assert manage_token(config(fl_name, redis_server.address, token="")) == "from-env"
    monkeypatch.delenv("MSF_MANAGE_TOKEN")
    assert manage_token(config(fl_name, redis_server.address, token="")) == ""


def test_https_and_token(monkeypatch, tmp_path, redis_server, fl_name):
    monkeypatch.delenv("MSF_MANAGE_TOKEN", raising=False)
    ca = TestCA()
    key, cert = ca.issue("127.0.0.1")
    p12 = write_p12(tmp_path / "server.p12", key, cert, "pw", chain=[ca.cert])
    context = sched.server_ssl_context({"ssl.server_cert_path": p12}, SSLConfig("pw", "pw"))
    client_ctx = ssl.create_default_context(cafile=ca.write_pem(tmp_path / "ca.pem"))
    address = f"127.0.0.1:{free_port()}"
    scheduler = sched.Scheduler(config(fl_name, redis_server.address), address, ssl_context=context)

    def scenario():
        base = f"https://{address}"
        for token, scheme in ((None, "Bearer"), ("wrong", "Bearer"), (TOKEN, "Basic"), (TOKEN[:-1], "Bearer")):
            status, headers, body = request(base + "/nodes", token, client_ctx, scheme)
            assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
            assert json.loads(body) == {"code": "1", "error_message": SCHED_UNAUTHORIZED}
        status, _, body = request(base + "/nodes", TOKEN, client_ctx)
        assert status == 200 and json.loads(body)["message"] == sched.NODES_OK
        assert request(base + "/nodes", TOKEN, client_ctx, scheme="bearer")[0] == 200
        status, headers, body = request(base + "/metrics", TOKEN, client_ctx)
        assert status == 200 and b"msfl_scheduler_unauthorized_total 4.0" in body
        status, headers, body = request(base + "/dashboard", None, client_ctx)
        assert status == 200 and headers["Content-Type"].startswith("text/html") and b"app.js" in body
        for asset in ("app.js", "style.css"):
            assert request(f"{base}/dashboard/static/{asset}", None, client_ctx)[0] == 200
        assert request(f"{base}/dashboard/static/__init__.py", None, client_ctx)[0] == 404
        assert request(base + "/dashboard/api/overview", None, client_ctx)[0] == 401
        status, _, body = request(base + "/dashboard/api/overview", TOKEN, client_ctx)
        assert status == 200 and set(json.loads(body)) == {"cluster", "iterations", "code"}
        with pytest.raises((urllib.error.URLError, ConnectionError)):   # no plain HTTP on the HTTPS port
            urllib.request.urlopen(f"http://{address}/nodes", timeout=5).read()

    serve(scheduler, scenario)


def test_open_bind_warning(caplog, redis_server, fl_name):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    # loopback without a token: no warning
    scheduler = sched.Scheduler(config(fl_name, redis_server.address, token=""), f"127.0.0.1:{free_port()}")
    with caplog.at_level(logging.WARNING, logger="mindspore_federated.scheduler"):
        serve(scheduler, lambda: None)
    assert not [r for r in caplog.records if "beyond this host" in r.getMessage()]
    assert "{address}" in SCHED_OPEN_BIND
