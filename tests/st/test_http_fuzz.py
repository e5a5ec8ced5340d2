"""The HTTP-level fuzz campaign (tests/fuzz/), short: a few thousand mutated requests per engine against a live
server over raw sockets. Zero crashes, zero hangs, every reply well-formed, nothing logged as an error, and the
next real iteration gives the exact FedAvg. The long run is `./build.sh fuzz` (bench/fuzz.py)."""
import asyncio

import pytest

from tests.fuzz.http_fuzz import FAILURES, Malformed, Target, campaign, count_replies, real_iteration
from tests.utils.cluster import start_server, write_yaml
from tests.utils.multi import ENTRY

INPUTS = 2500
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
