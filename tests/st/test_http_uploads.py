"""Upload admission and routing on a real server (both HTTP engines): more concurrent updateModel bodies
than upload slots (pooled buffers, paused connections), chunked request bodies, truncated and over-long
bodies (FedAvg stays exact), and the URL prefix."""
import http.client
import json
import socket
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from mindspore_federated import errors
from mindspore_federated.client import messages as m
from tests.utils.cluster import SUCCEED, post, start_job, start_server, wait_model, write_yaml
from tests.utils.multi import ENTRY

DEVICES = 12
ENGINES = pytest.mark.parametrize("engine", ["fast", "aiohttp"])


def _post_chunked(address, name, body, piece=7):
    """POST with Transfer-Encoding: chunked (no Content-Length), in small pieces."""
    host, port = address.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.putrequest("POST", "/" + name)
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        for start in range(0, len(body), piece):
            part = body[start:start + piece]
            conn.send(b"%x\r\n%s\r\n" % (len(part), part))
        conn.send(b"0\r\n\r\n")
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _send_raw(address, data, half_close, timeout=10.0):
    """Writes raw bytes (then half-closes if asked); returns what the server answers until it closes or
    until one reply has been read."""
    host, port = address.split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        out = b""
        while (chunk := s.recv(65536)) and not (b"\r\n\r\n" in out + chunk and (out + chunk).endswith(b"}")):
            out += chunk
        return out + chunk


def _update_body(fl_name, fl_id, n, rng):
    upload = {"w1": rng.standard_normal(6).astype(np.float32) * n,
              "b1": rng.standard_normal(3).astype(np.float32) * n}
    return upload, m.build_update_model(fl_name, fl_id, 1, upload)


@ENGINES
def test_more_concurrent_uploads_than_slots_exact_fedavg(tmp_path, redis_server, fl_name, procs, engine):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name,
                           round={"start_fl_job_threshold": DEVICES},
                           client={"max_concurrent_uploads": 1, "http_engine": engine})
    _, address = start_server(procs, yaml_path, tmp_path / "srv", entry=ENTRY)
    rng = np.random.default_rng(7)
    sizes = [int(rng.integers(1, 20)) for _ in range(DEVICES)]
    for d, n in enumerate(sizes):
        assert start_job(address, fl_name, f"d{d}", 1, n).retcode == SUCCEED
    uploads, bodies = zip(*(_update_body(fl_name, f"d{d}", n, rng) for d, n in enumerate(sizes)))

    def send(d):
        if d % 3 == 0:  # some bodies arrive chunked, in 7-byte pieces, while others wait for the slot
            status, reply = _post_chunked(address, "updateModel", bodies[d])
        else:
            status, reply = post(address, "updateModel", bodies[d])
        assert status == 200
        return m.parse_update_model(reply).retcode

    with ThreadPoolExecutor(DEVICES) as pool:
        assert list(pool.map(send, range(DEVICES))) == [SUCCEED] * DEVICES
    served = wait_model(address, fl_name, 1)
    for name in ("w1", "b1"):
        expect = sum(u[name].astype(np.float64) for u in uploads) / sum(sizes)
        np.testing.assert_allclose(served.features[name], expect, rtol=1e-5, atol=1e-6)


@ENGINES
def test_truncated_and_overlong_uploads_get_error_replies(tmp_path, redis_server, fl_name, procs, engine):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 1},
                           client={"max_concurrent_uploads": 1, "http_engine": engine})
    proc, address = start_server(procs, yaml_path, tmp_path / "srv", entry=ENTRY)
    assert start_job(address, fl_name, "d0", 1, 2).retcode == SUCCEED
    upload, body = _update_body(fl_name, "d0", 2, np.random.default_rng(1))
    # Body shorter than its Content-Length, then EOF: the device is gone, nothing is counted, and the
    # upload slot comes back (checked below: max_concurrent_uploads is 1).
    head = b"POST /updateModel HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
    assert _send_raw(address, head + body[: len(body) // 2], half_close=True) == b""
    # Content-Length above the server's body limit: the reference's JSON error; the body is never read.
    huge = b"POST /updateModel HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (1 << 40)
    reply = _send_raw(address, huge + b"x" * 1024, half_close=False)
    assert reply.startswith(b"HTTP/1.1 500 "), reply[:200]
    assert reply.endswith(json.dumps({"error_message": errors.POST_MESSAGE_FAILED, "code": "1"}).encode())
    # The single upload slot was returned both times: a real update still goes through.
    status, raw = post(address, "updateModel", body)
    assert status == 200 and m.parse_update_model(raw).retcode == SUCCEED
    served = wait_model(address, fl_name, 1)
    np.testing.assert_allclose(served.features["w1"], upload["w1"] / 2, rtol=1e-6)
    assert not any("Traceback" in line for line in proc.lines), "\n".join(proc.lines)


@ENGINES
def test_url_prefix_routes_and_unknown_paths(tmp_path, redis_server, fl_name, procs, engine):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 1},
                           client={"http_url_prefix": "/fl/", "http_engine": engine})
    _, address = start_server(procs, yaml_path, tmp_path / "srv", entry=ENTRY)
    body = m.build_start_fl_job(fl_name, "p0", 1, 2)
    status, reply = post(address, "startFLJob", body, prefix="/fl/")
    assert status == 200 and m.parse_start_fl_job(reply).retcode == SUCCEED
    assert post(address, "startFLJob", body)[0] == 404          # without the prefix: not a device route
    assert post(address, "nope", body, prefix="/fl/")[0] == 404
