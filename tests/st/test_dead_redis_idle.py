"""A server whose Redis died waits for it without burning a core, and trains again once it is back."""
import os
import time

from tests.utils.cluster import start_job, start_server, update, write_yaml
from tests.utils.multi import ENTRY, models_everywhere
from tests.utils.redis_server import RedisServer
from tests.utils.wait import wait_for

TICK = os.sysconf("SC_CLK_TCK")
WATCH_S = 5.0


def _cpu_seconds(pid):
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def test_server_waits_for_a_dead_redis_without_spinning(tmp_path, procs, fl_name):
    import numpy as np

    redis = RedisServer(tmp_path / "redis").start()
    try:
        yaml_path = write_yaml(tmp_path, redis.address, fl_name)
        proc, address = start_server(procs, yaml_path, tmp_path / "s0", entry=ENTRY)
        redis.kill()
        before = _cpu_seconds(proc.pid)
        time.sleep(WATCH_S)
        used = _cpu_seconds(proc.pid) - before
        # retrying a refused connection in a loop cost ~3 s of CPU in these 5 s; waiting costs ~0.05 s
        assert used < 1.0, f"the server used {used:.2f} s of CPU in {WATCH_S} s while Redis was down"
        assert proc.proc.poll() is None
        redis.start()
        # Redis came back empty: the server re-declares the cluster, then admits devices and trains again
        def admitted():
            reply = start_job(address, fl_name, "probe", 1, 1)
            return reply if reply.retcode == 200 else None

        iteration = wait_for(admitted, 30, what="a device admitted after Redis came back").iteration
        assert start_job(address, fl_name, "second", iteration, 1).retcode == 200
        weights = {"w1": np.ones(6, np.float32), "b1": np.ones(3, np.float32)}
        for fl_id in ("probe", "second"):
            assert update(address, fl_name, fl_id, iteration, weights).retcode == 200
        served = models_everywhere([address], fl_name, iteration, timeout=30)[0]
        assert served.iteration == iteration + 1  # the iteration trained: the next one is running
        np.testing.assert_allclose(served.features["w1"].ravel(), np.ones(6))  # (1*1 + 1*1) / 2
    finally:
        redis.stop()
