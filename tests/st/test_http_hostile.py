"""Hostile and broken clients on a real server, both HTTP engines, over raw sockets: the request-smuggling
material of issue 14 refused (400 and closed), HEAD without a body, slow-body uploads that do not hold other
devices' updateModel back, slow-loris heads ended, and connections past the cap refused while the server keeps
serving."""
import socket
import threading
import time

import numpy as np
import pytest

from mindspore_federated.client import messages as m
from tests.utils.cluster import SUCCEED, start_job, start_server, update, write_yaml
from tests.utils.multi import ENTRY
from tests.utils.raw_http import connect, request

ENGINES = pytest.mark.parametrize("engine", ["fast", "aiohttp"])
LIMITS = {"http_header_timeout": 2.0, "http_body_timeout": 2.0, "http_body_min_rate": 64, "max_connections": 24}
SLOW = 8                   # slow-body clients, as many as the default upload slots
ONES = {"w1": np.ones(6, np.float32), "b1": np.ones(3, np.float32)}


def _server(tmp_path, redis_server, fl_name, procs, engine, threshold=2, **client):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": threshold},
                           client={"http_engine": engine, **client})
    proc, address = start_server(procs, yaml_path, tmp_path / "srv", entry=ENTRY)
    host, port = address.split(":")
    return proc, address, (host, int(port))


def _no_traceback(proc):
    output = proc.output()
    assert "Traceback" not in output and "[ERROR]" not in output


@pytest.fixture(params=["fast", "aiohttp"])
def server(request, tmp_path, redis_server, fl_name, procs):
    proc, address, addr = _server(tmp_path, redis_server, fl_name, procs, request.param)
    yield address, addr, fl_name, request.param
    _no_traceback(proc)


CHUNKED = b"POST /getModel HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
SMUGGLING = [
    CHUNKED + b"1_0\r\n" + b"a" * 16 + b"\r\n0\r\n\r\n",
    CHUNKED + b"0x5\r\nabcde\r\n0\r\n\r\n",
    CHUNKED + b" 5\r\nabcde\r\n0\r\n\r\n",
    CHUNKED + b"5 \r\nabcde\r\n0\r\n\r\n",
    b"POST /getModel HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: \x0bchunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n",
    b"POST /getModel HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nabcde\r\n0\r\n\r\n",
    b"POST /getModel HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nabcde",
    b"POST /getModel HTTP/1.10\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
    b" /getModel HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
    b"\x00 /getModel HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
    b"POST /getModel HTTP/1.1\r\nHost: t\r\nContent-Length: " + b"7" * 4300 + b"\r\n\r\n",
    b"POST /getModel HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\nabcde",
    b"POST /getModel HTTP/1.1\r\nHost : t\r\nContent-Length: 0\r\n\r\n",
]


@pytest.mark.parametrize("raw", SMUGGLING, ids=range(len(SMUGGLING)))
def test_request_smuggling_material_is_refused_and_closed(server, raw):
    address, addr, fl_name, engine = server
    s, r = connect(addr)
    with s:
        s.sendall(raw)
        status = r.response()[0]
        assert status == 400 if engine == "fast" else 400 <= status < 500
        assert r.closed()
    assert start_job(address, fl_name, "after", 1, 1).retcode == SUCCEED


def test_head_gets_the_head_of_the_reply_and_no_body(server):
    address, addr, fl_name, _ = server
    body = m.build_get_model(fl_name, 1)
    s, r = connect(addr)
    with s:
        s.sendall(request("/getModel", body, method=b"HEAD") + request("/getModel", body))
        status, headers, rest = r.response(head_only=True)
        assert status == 200 and int(headers[b"content-length"]) > 0 and rest == b""
        status, _, reply = r.response()   # the next reply starts right after the head: no body was sent
        assert status == 200 and m.parse_get_model(reply).retcode == 201


def _trickle(sock, data, stop):
    """Sends `data` one byte per second until the server closes or `stop` is set."""
    for i in range(len(data)):
        if stop.wait(1.0):
            return
        try:
            sock.sendall(data[i:i + 1])
        except OSError:
            return


@ENGINES
def test_slow_bodies_do_not_hold_other_devices_updates(tmp_path, redis_server, fl_name, procs, engine):
    """8 clients upload at 1 byte/s (every upload slot): the other devices' updateModel still succeed within a
    deadline (the slow bodies are ended after one body window, their slots given back at once)."""
    proc, address, addr = _server(tmp_path, redis_server, fl_name, procs, engine, threshold=3, **LIMITS)
    devices = [f"d{i}" for i in range(3)]
    for d in devices:
        assert start_job(address, fl_name, d, 1, 1).retcode == SUCCEED
    slow_body = request("/updateModel", m.build_update_model(fl_name, "slow", 1, ONES))
    head_len = slow_body.index(b"\r\n\r\n") + 4
    stop = threading.Event()
    socks = [connect(addr, timeout=30) for _ in range(SLOW)]
    threads = []
    try:
        for s, _ in socks:
            s.sendall(slow_body[:head_len + 1])
            threads.append(threading.Thread(target=_trickle, args=(s, slow_body[head_len + 1:], stop), daemon=True))
            threads[-1].start()
        time.sleep(0.5)   # (ordering only: the slow heads are in before the devices' uploads)
        t0 = time.monotonic()
        results = [update(address, fl_name, d, 1, ONES).retcode for d in devices]
        assert results == [SUCCEED] * 3
        assert time.monotonic() - t0 < 20.0, "the slow bodies held the upload slots"
        for _s, r in socks:   # each slow client was told and closed
            try:
                status = r.response()[0]
            except EOFError:
                status = None
            assert status == 408
            assert r.closed()
    finally:
        stop.set()
        for s, _ in socks:
            s.close()
    _no_traceback(proc)


@ENGINES
def test_slow_loris_heads_are_closed(tmp_path, redis_server, fl_name, procs, engine):
    proc, address, addr = _server(tmp_path, redis_server, fl_name, procs, engine, **LIMITS)
    head = b"POST /getModel HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 100
    stop = threading.Event()
    socks = [connect(addr, timeout=20) for _ in range(4)]
    try:
        for s, _ in socks:
            s.sendall(head[:5])
            threading.Thread(target=_trickle, args=(s, head[5:], stop), daemon=True).start()
        t0 = time.monotonic()
        for _s, r in socks:
            assert r.response()[0] == 408 and r.closed()
        assert time.monotonic() - t0 < 15.0
    finally:
        stop.set()
        for s, _ in socks:
            s.close()
    assert start_job(address, fl_name, "after", 1, 1).retcode == SUCCEED
    _no_traceback(proc)


@ENGINES
def test_connections_past_the_cap_are_refused_and_the_server_keeps_serving(tmp_path, redis_server, fl_name,
                                                                             procs, engine):
    proc, address, addr = _server(tmp_path, redis_server, fl_name, procs, engine, **{**LIMITS, "max_connections": 10,
                                                                                "http_idle_timeout": 60.0})
    held = [socket.create_connection(addr, timeout=10) for _ in range(10)]
    try:
        time.sleep(0.3)   # (ordering only: the server has accepted them)
        s, r = connect(addr)
        with s:
            status, _, body = r.response()
            assert status == 503 and b"too many connections" in body and r.closed()
        held.pop().close()
        deadline = time.monotonic() + 10
        while True:   # the slot comes free once the server has seen the close
            s, r = connect(addr)
            with s:
                s.sendall(request("/startFLJob", m.build_start_fl_job(fl_name, "after", 1, 1)))
                status, _, body = r.response()
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert status == 200 and m.parse_start_fl_job(body).retcode == SUCCEED
    finally:
        for s in held:
            s.close()
    _no_traceback(proc)


@ENGINES
def test_idle_connections_are_closed_after_the_idle_timeout(tmp_path, redis_server, fl_name, procs, engine):
    proc, address, addr = _server(tmp_path, redis_server, fl_name, procs, engine,
                                  **{**LIMITS, "http_idle_timeout": 1.0})
    fresh, (used, r) = socket.create_connection(addr, timeout=15), connect(addr, timeout=15)
    with fresh, used:
        used.sendall(request("/getModel", m.build_get_model(fl_name, 1)))
        assert r.response()[0] == 200
        t0 = time.monotonic()
        assert fresh.recv(1) == b""   # nothing sent: closed without a reply
        assert r.closed()             # after a reply, kept alive, then closed when idle
        assert time.monotonic() - t0 < 10.0
    _no_traceback(proc)


def test_an_unknown_or_undecodable_expectation_is_ignored(server):
    """(aiohttp's own expect handler answered 500 with a traceback to bytes that are not UTF-8.)"""
    address, addr, fl_name, _ = server
    s, r = connect(addr)
    with s:
        for expect in (b"Expect: \xc0\xfe-continue\r\n", b"Expect: bogus\r\n"):
            s.sendall(request("/getModel", m.build_get_model(fl_name, 1), extra=expect))
            status, _, body = r.response()
            assert status == 200 and m.parse_get_model(body).retcode == 201
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nExpect: \xc0\xfe\r\n\r\n")
        assert r.response()[0] == 200
        s.sendall(b"POST /nope HTTP/1.1\r\nHost: t\r\nExpect: \xc0\r\nContent-Length: 0\r\n\r\n")
        assert r.response()[0] == 404
    s, r = connect(addr)
    with s:   # no route at all (aiohttp: its own expect handler, answering 500; fast engine: 404)
        s.sendall(b"OPTIONS * HTTP/1.1\r\nHost: t\r\nExpect: \xc0\r\n\r\n")
        assert r.response()[0] in (404, 500)
