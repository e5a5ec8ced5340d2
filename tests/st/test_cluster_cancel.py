"""An iteration that ends while a server waits in its all-reduce (a peer that never joins): the server stops
waiting at once (the collective is cancelled) instead of sitting out the 10 s all-reduce step timeout."""
import signal

import numpy as np

from mindspore_federated import errors
from tests.utils.cluster import health, start_job, update, wait_model, write_yaml
from tests.utils.multi import start_servers
from tests.utils.wait import BUSY_SLACK_S, wait_for

SUCCEED = 200
GLOBAL_WINDOW_MS = 2500


def test_iteration_end_cancels_a_waiting_allreduce(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, fl_iteration_num=10,
                           round={"start_fl_job_threshold": 2, "global_iteration_time_window": GLOBAL_WINDOW_MS})
    (pa, a), (pb, b) = start_servers(procs, tmp_path, yaml_path, 2)
    ones = {"w1": np.ones(6, np.float32), "b1": np.ones(3, np.float32)}
    for d in range(2):
        assert start_job(a, fl_name, f"d{d}", 1, 1).retcode == SUCCEED
    assert update(b, fl_name, "d0", 1, ones).retcode == SUCCEED   # b holds one update ...
    pb.send(signal.SIGSTOP)                                        # ... and will not join the all-reduce
    try:
        assert update(a, fl_name, "d1", 1, ones).retcode == SUCCEED  # the last one: a starts the all-reduce
        # the global window fails iteration 1; a must be in iteration 2 right after, not 10 s later
        wait_for(lambda: health(a)["iteration"] == 2, GLOBAL_WINDOW_MS / 1000 + BUSY_SLACK_S,
                 what="a switching to iteration 2 after the global window")
        pa.wait_line(f"iteration 1 finished: {errors.ITER_GLOBAL_TIMEOUT}", timeout=BUSY_SLACK_S)
        # a stopped waiting because the collective was cancelled, not because its 10 s step timed out
        pa.wait_line("collective cancelled: iteration 1 ended", timeout=BUSY_SLACK_S)
    finally:
        pb.send(signal.SIGCONT)
    wait_for(lambda: health(b)["iteration"] == 2, 15, what="b in iteration 2 after SIGCONT")
    # both train iteration 2 together
    for d in range(2):
        assert start_job(a if d else b, fl_name, f"e{d}", 2, 1).retcode == SUCCEED
    for d in range(2):
        assert update(b if d else a, fl_name, f"e{d}", 2, {k: v * 3 for k, v in ones.items()}).retcode == SUCCEED
    for address in (a, b):
        np.testing.assert_allclose(wait_model(address, fl_name, 2, timeout=15).features["w1"], np.full(6, 3.0))
