"""The inter-server TCP port caps frame sizes to what the model needs: a forged header announcing a huge
payload is refused at once (no 1 GiB reservation, connection closed), while model-sized traffic
(a 10x LeNet all-reduce and model fetch) still flows."""
import socket
import struct

import numpy as np

from mindspore_federated.models import lenet5_weights
from tests.utils.cluster import start_job, start_server, update, write_yaml
from tests.utils.multi import models_everywhere

SUCCEED = 200
FRAME_MAGIC, FRAME_VERSION, FRAME_HELLO = 0x4346534D, 1, 1


def tcp_address(proc):
    return proc.wait_ready().split("tcp=", 1)[1].split()[0]


def forged_header(payload_len):
    """A well-formed 32-byte frame header (hello) that announces `payload_len` payload bytes."""
    return struct.pack("<IHHIIQQ", FRAME_MAGIC, FRAME_VERSION, FRAME_HELLO, 0, 0, 0, payload_len)


def closed_by_peer(sock, timeout):
    """True when the peer closes (FIN or RST) the connection within `timeout` s."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_forged_frame_header_is_refused_and_model_traffic_still_flows(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 2},
                           fl_iteration_num=5)
    pa, a = start_server(procs, yaml_path, tmp_path / "srv_a", name="server_a", model="lenet10x")
    pb, b = start_server(procs, yaml_path, tmp_path / "srv_b", name="server_b", model="lenet10x")
    host, port = tcp_address(pa).rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(forged_header(1 << 30) + b"x" * 64)
        assert closed_by_peer(sock, 15.0), "a frame announcing 1 GiB was accepted"

    # legitimate model-sized frames: iteration 1 all-reduces the 2.5 MB model over both servers,
    # iteration 2 is aggregated on A alone and B fetches the model from A
    shapes = {n: w.size for n, w in lenet5_weights(0, copies=10).items()}
    rng = np.random.default_rng(3)
    for it, targets in ((1, (a, b)), (2, (a, a))):
        uploads = [{n: rng.standard_normal(size).astype(np.float32) for n, size in shapes.items()}
                   for _ in targets]
        for d in range(2):
            assert start_job(targets[d], fl_name, f"i{it}d{d}", it, 1).retcode == SUCCEED
        for d in range(2):
            assert update(targets[d], fl_name, f"i{it}d{d}", it, uploads[d]).retcode == SUCCEED
        replies = models_everywhere([a, b], fl_name, it)
        for name in ("fc1.weight.copy9", "conv1.weight.copy0"):
            expect = (uploads[0][name] + uploads[1][name]) / np.float32(2)
            for r in replies:
                np.testing.assert_allclose(r.features[name], expect, rtol=1e-5, atol=1e-6)
        for name in shapes:
            np.testing.assert_array_equal(replies[0].features[name], replies[1].features[name])
