"""The fast HTTP engine on a real server, over raw sockets: keep-alive and pipelining answered in order,
HTTP/1.0, Expect: 100-continue, /healthz, 404, malformed heads (400 and close), and an upload that waits
for a slot while its body trickles in."""
import json
import socket
import time

import numpy as np
import pytest

from mindspore_federated.client import messages as m
from tests.utils.cluster import SUCCEED, start_job, start_server, write_yaml
from tests.utils.multi import ENTRY
from tests.utils.raw_http import Reader, connect, request

SUC_NOT_READY = 201


@pytest.fixture
def server(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 2},
                           client={"http_engine": "fast", "max_concurrent_uploads": 1})
    _, address = start_server(procs, yaml_path, tmp_path / "srv", entry=ENTRY)
    host, port = address.split(":")
    return address, (host, int(port)), fl_name


_request = request
_connect = connect


def test_pipelined_requests_are_answered_in_order_on_one_connection(server):
    address, addr, fl_name = server
    s, r = _connect(addr)
    with s:
        bodies = [m.build_start_fl_job(fl_name, f"p{i}", 1, 3) for i in range(2)]
        s.sendall(_request("/getModel", m.build_get_model(fl_name, 1)) + b"".join(
            _request("/startFLJob", b) for b in bodies) + b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        status, headers, body = r.response()
        assert status == 200 and m.parse_get_model(body).retcode == SUC_NOT_READY
        for _ in bodies:
            status, headers, body = r.response()
            assert status == 200 and headers[b"content-type"] == b"application/octet-stream"
            assert m.parse_start_fl_job(body).retcode == SUCCEED
        status, headers, body = r.response()
        assert status == 200 and headers[b"content-type"] == b"application/json"
        assert json.loads(body)["iteration"] == 1
        # still open: one more request on the same connection
        s.sendall(_request("/getModel", m.build_get_model(fl_name, 1)))
        assert m.parse_get_model(r.response()[2]).retcode == SUC_NOT_READY


def test_http10_connection_close_and_expect_continue(server):
    address, addr, fl_name = server
    s, r = _connect(addr)
    with s:
        s.sendall(_request("/getModel", m.build_get_model(fl_name, 1), version=b"HTTP/1.0",
                           extra=b"Connection: keep-alive\r\n"))
        status, headers, body = r.response()
        assert status == 200 and headers[b"connection"] == b"keep-alive"
        s.sendall(_request("/getModel", m.build_get_model(fl_name, 1), version=b"HTTP/1.0"))
        status, headers, body = r.response()
        assert status == 200 and headers[b"connection"] == b"close" and r.closed()
    s, r = _connect(addr)
    with s:
        body = m.build_get_model(fl_name, 1)
        s.sendall(b"POST /getModel HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n"
                  % len(body))
        interim = b""
        while b"\r\n\r\n" not in interim:
            interim += s.recv(1024)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(body + _request("/getModel", body, extra=b"Connection: close\r\n"))
        assert m.parse_get_model(r.response()[2]).retcode == SUC_NOT_READY
        status, headers, _ = r.response()
        assert status == 200 and headers[b"connection"] == b"close" and r.closed()


@pytest.mark.parametrize("raw, status", [
    (b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", 404),
    (b"BROKEN\r\n\r\n", 400),
    (b"POST /getModel HTTP/1.1\r\nContent-Length: x1\r\n\r\n", 400),
    (b"POST /getModel HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    (b"POST /getModel HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    (b"POST /getModel HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (b"POST /getModel HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n", 400),
])
def test_malformed_or_unknown_requests_are_refused_and_closed(server, raw, status):
    address, addr, fl_name = server
    s, r = _connect(addr)
    with s:
        s.sendall(raw)
        assert r.response()[0] == status
        assert r.closed()
    # the server is unaffected
    assert start_job(address, fl_name, "after", 1, 1).retcode == SUCCEED


def test_slow_upload_holds_the_slot_and_the_next_waits_in_the_kernel(server):
    address, addr, fl_name = server
    for d in ("slow", "fast"):
        assert start_job(address, fl_name, d, 1, 1).retcode == SUCCEED
    ones = {"w1": np.ones(6, np.float32), "b1": np.ones(3, np.float32)}
    slow_body = _request("/updateModel", m.build_update_model(fl_name, "slow", 1, ones))
    fast_body = _request("/updateModel", m.build_update_model(fl_name, "fast", 1, ones))
    (s1, r1), (s2, r2) = _connect(addr), _connect(addr)
    with s1, s2:
        s1.sendall(slow_body[:-10])          # takes the only upload slot, body incomplete
        time.sleep(0.2)                      # (ordering only: the server has read that head long before)
        s2.sendall(fast_body)                # waits for the slot
        s2.settimeout(0.5)
        with pytest.raises(socket.timeout):
            s2.recv(1)
        s2.settimeout(10)
        s1.sendall(slow_body[-10:])          # slot freed after the slow upload's round
        assert m.parse_update_model(r1.response()[2]).retcode == SUCCEED
        assert m.parse_update_model(r2.response()[2]).retcode == SUCCEED


def test_large_model_replies_pipelined_to_a_slow_reader(tmp_path, redis_server, fl_name, procs):
    """10x LeNet (2.47 MB replies: the sendfile path): pipelined getModels read slowly through a small receive
    buffer come back whole, byte-exact and in order, interleaved with small replies."""
    from mindspore_federated.server import initial_feature_map

    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 2},
                           client={"http_engine": "fast"})
    _, address = start_server(procs, yaml_path, tmp_path / "srv", model="lenet10x")
    expect = {item.name: item.data for item in initial_feature_map("lenet10x").items()}
    host, port = address.split(":")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    s.settimeout(10)
    s.connect((host, int(port)))
    r = Reader(s)
    with s:
        big, small = m.build_get_model(fl_name, 0), m.build_get_model(fl_name, 1)
        s.sendall(b"".join(_request("/getModel", b) for b in (big, small, big, big, small)))
        time.sleep(0.3)   # let the server fill the small window and queue the rest
        kinds = []
        for _ in range(5):
            status, _, body = r.response()
            reply = m.parse_get_model(body)
            kinds.append(reply.retcode)
            if reply.retcode == SUCCEED:
                assert len(body) > 2_400_000 and set(reply.features) == set(expect)
                for name, value in expect.items():
                    np.testing.assert_array_equal(reply.features[name].reshape(-1), value.reshape(-1))
        assert kinds == [SUCCEED, SUC_NOT_READY, SUCCEED, SUCCEED, SUC_NOT_READY]
