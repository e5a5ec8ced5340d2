"""Overload: thousands of devices arriving at once (each on its own connection) against a real server whose
Redis accepts only a few connections; a device retrying an update whose reply it lost."""
import os
import socket
import sys

import numpy as np

from tests.utils.cluster import SUCCEED, get_model, start_job, start_server, update, wait_model, write_yaml
from tests.utils.multi import ENTRY
from tests.utils.wait import wait_for

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "bench")
DEVICES = 3000
REDIS_MAXCLIENTS = 12   # the server's hot path must not need a connection per request in flight


def _redis_command(port, *args):
    """One RESP command on a short-lived connection; returns the first reply line."""
    payload = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in map(str.encode, args))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        return s.recv(256).split(b"\r\n", 1)[0]


def test_herd_completes_with_few_redis_connections(tmp_path, fresh_redis, fl_name, procs):
    """DEVICES devices start together (startFLJob -> updateModel -> getModel polling, restarting from
    startFLJob when an update is refused): the iteration completes, and no device gets anything but SUCCEED
    or SucNotReady, although Redis refuses connections beyond a handful."""
    assert _redis_command(fresh_redis.port, "CONFIG", "SET", "maxclients", str(REDIS_MAXCLIENTS)) == b"+OK"
    yaml_path = write_yaml(tmp_path, fresh_redis.address, fl_name,
                           round={"start_fl_job_threshold": DEVICES, "start_fl_job_time_window": 600000,
                                  "update_model_time_window": 600000,
                                  "global_iteration_time_window": 1200000})
    proc, address = start_server(procs, yaml_path, tmp_path / "srv", entry=ENTRY)
    sys.path.insert(0, BENCH)  # the spawned client processes get this path too
    try:
        from herd import HerdClients  # pylint: disable=import-outside-toplevel
        with HerdClients(f"http://{address}", fl_name, procs=2, http_timeout=50.0) as clients:
            result = clients.run_iteration(DEVICES, timeout=55.0)
    finally:
        sys.path.remove(BENCH)
    kinds = {f"{r} {k}": n for (r, k), n in result["kinds"].items()}
    refused = {k: n for k, n in kinds.items() if not k.endswith((" SUCCEED", " SucNotReady"))}
    assert refused == {}, (refused, result["failures"][:5])
    assert result["accepted"] == DEVICES and result["got_model"] == DEVICES, result["failures"][:5]
    assert not result["admitted_bad"]
    assert "distributed cache" not in proc.output()
    assert wait_model(address, fl_name, 1).iteration == 2


def test_update_retry_after_a_lost_reply_counts_once(tmp_path, redis_server, fl_name, procs):
    """A device repeats its accepted updateModel (as if the reply was lost): it gets the same SUCCEED, and its
    update counts once (the iteration still waits for the second device, whose update then completes it)."""
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 2})
    _, address = start_server(procs, yaml_path, tmp_path / "srv", entry=ENTRY)
    feats = {"w1": np.ones(6, np.float32), "b1": np.ones(3, np.float32)}
    assert start_job(address, fl_name, "a", 1, 1).retcode == SUCCEED
    assert start_job(address, fl_name, "b", 1, 1).retcode == SUCCEED
    first = update(address, fl_name, "a", 1, feats)
    assert (first.retcode, first.reason) == (SUCCEED, "success not ready")
    for _ in range(2):
        again = update(address, fl_name, "a", 1, feats)
        assert (again.retcode, again.reason, again.next_req_time) == (SUCCEED, "success not ready",
                                                                      first.next_req_time)
    assert get_model(address, fl_name, 1).retcode != SUCCEED  # one update of two: not aggregated yet
    assert update(address, fl_name, "b", 1, {k: v * 3 for k, v in feats.items()}).retcode == SUCCEED
    model = wait_for(lambda: (r := get_model(address, fl_name, 1)).retcode == SUCCEED and r, 20,
                     what="iteration 1 aggregated")
    np.testing.assert_allclose(np.asarray(model.features["b1"]), np.full(3, 2.0, np.float32))
