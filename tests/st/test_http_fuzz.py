"""The HTTP-level fuzz campaign (tests/fuzz/), short: a few thousand mutated requests per engine against a live
server over raw sockets. Zero crashes, zero hangs, every reply well-formed, nothing logged as an error, and the
next real iteration gives the exact FedAvg. Over HTTPS too. The long run is `./build.sh fuzz` (bench/fuzz.py)."""
import asyncio
import ssl
import urllib.request

import pytest
import yaml

from mindspore_federated.client import messages as m
from tests.fuzz.http_fuzz import FAILURES, Malformed, Target, campaign, count_replies, real_iteration
from tests.st.test_tls_cluster import pki, start_tls_server, tls_redis, tls_yaml  # noqa: F401 (fixtures)
from tests.utils.cluster import SUCCEED, start_server, write_yaml
from tests.utils.multi import ENTRY

INPUTS = 2500
TLS_INPUTS = 800
FUZZ_LIMITS = {"http_header_timeout": 1.0, "http_body_timeout": 1.0, "http_idle_timeout": 2.0,
               "max_connections": 512}


@pytest.mark.parametrize("engine", ["fast", "aiohttp"])
def test_short_fuzz_campaign(tmp_path, redis_server, fl_name, procs, engine):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 2},
                           client={"http_engine": engine, **FUZZ_LIMITS})
    proc, address = start_server(procs, yaml_path, tmp_path / "srv", entry=ENTRY)
    result = asyncio.run(campaign(Target.of(address), fl_name, INPUTS, seed=14, concurrency=32,
                                  deadline_s=10.0, health_every=500))
    print(engine, result.summary())
    assert result.inputs == INPUTS
    assert result.failed == 0, result.failures[:5]
    assert not any(result.outcomes[k] for k in FAILURES)
    assert result.outcomes["replied_closed"] + result.outcomes["replied_open"] > INPUTS // 4  # not all refused
    assert proc.alive()
    output = proc.output()
    assert "Traceback" not in output, output[output.find("Traceback") - 300:output.find("Traceback") + 3000]
    assert "Traceback" not in output and "[ERROR]" not in output
    assert real_iteration(address, fl_name, 2) == 2


@pytest.mark.parametrize("data, methods, replies", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
     [b"POST"], 2),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", [b"POST"], 1),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", [b"HEAD"], 2),
])
def test_the_reply_checker_accepts_well_formed_replies(data, methods, replies):
    assert count_replies(data, methods) == replies


@pytest.mark.parametrize("data", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc",          # truncated body
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n",                  # truncated head
    b"HTTP/1.1 200 OK\r\n\r\n",                                   # no length
    b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nBad Header\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\ngarbage",
    b"Traceback (most recent call last):\n",
])
def test_the_reply_checker_refuses_malformed_replies(data):
    with pytest.raises(Malformed):
        count_replies(data, [b"POST"])


def test_short_fuzz_campaign_over_tls(tmp_path, fl_name, procs, pki, tls_redis):  # noqa: F811 (fixtures)
    """The same mutations through HTTPS (the fast engine; a TLS connection cannot be half-closed, so every
    connection is judged kept open): zero failures, and a real device request still succeeds."""
    yaml_path = tls_yaml(tmp_path, fl_name, pki, tls_redis, threshold=2)
    with open(yaml_path, encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    cfg["client"].update(FUZZ_LIMITS)
    with open(yaml_path, "w", encoding="utf-8") as f:
        yaml.safe_dump(cfg, f)
    proc, address = start_tls_server(procs, yaml_path, tmp_path)
    target = Target.of(address, tls_ca=pki["ca"], server_hostname="127.0.0.1")
    result = asyncio.run(campaign(target, fl_name, TLS_INPUTS, seed=15, concurrency=32, deadline_s=10.0,
                                  quiet_s=0.5, health_every=200))
    print("tls", result.summary())
    assert result.inputs == TLS_INPUTS and result.failed == 0, result.failures[:5]
    assert result.outcomes["replied_open"] + result.outcomes["replied_closed"] > TLS_INPUTS // 4
    assert proc.alive()
    output = proc.output()
    assert "Traceback" not in output and "[ERROR]" not in output
    ctx = ssl.create_default_context(cafile=pki["ca"])
    req = urllib.request.Request(f"https://{address}/startFLJob", method="POST",
                                 data=m.build_start_fl_job(fl_name, "real-tls", 1, 3))
    with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
        assert m.parse_start_fl_job(resp.read()).retcode == SUCCEED
