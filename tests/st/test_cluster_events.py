"""The first startFLJob of an iteration opens the round window on every server at once (an event), not
at the other servers' next 1 s sync: their replies carry the same next_req_time (window start + window)
within a few tens of milliseconds."""
import time

import numpy as np

from tests.utils.cluster import get_model, start_job, start_server, update, write_yaml
from tests.utils.multi import models_everywhere
from tests.utils.wait import BUSY_SLACK_S, wait_for

SUCCEED, SUC_NOT_READY = 200, 201


def test_round_start_reaches_every_server_at_once(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 1},
                           fl_iteration_num=10)
    _, a = start_server(procs, yaml_path, tmp_path / "srv_a", name="server_a",
                        entry=("-m", "mindspore_federated.server"), model="lenet")
    _, b = start_server(procs, yaml_path, tmp_path / "srv_b", name="server_b",
                        entry=("-m", "mindspore_federated.server"), model="lenet")
    from mindspore_federated.models import lenet5_weights

    sizes = {n: w.size for n, w in lenet5_weights().items()}
    lags = []
    for it in (1, 2, 3, 4):
        if it > 1:
            # B has just switched to `it` (the iteration event made it sync now), so its next periodic sync
            # is about 1 s away: only the round event can tell it about the window opened below in time
            models_everywhere([a, b], fl_name, it - 1)
        r = start_job(a, fl_name, f"d{it}", it, 1)
        assert r.retcode == SUCCEED, r.reason
        opened = time.monotonic()

        def b_knows(it=it, expect=r.next_req_time):
            g = get_model(b, fl_name, it)
            assert (g.retcode, g.iteration) == (SUC_NOT_READY, it)
            return g.next_req_time == expect

        wait_for(b_knows, BUSY_SLACK_S, interval=0.005, what=f"server B knowing the window of iteration {it}")
        lags.append(time.monotonic() - opened)
        upload = {n: np.full(size, float(it), np.float32) for n, size in sizes.items()}
        assert update(a, fl_name, f"d{it}", it, upload).retcode == SUCCEED
    print("round window start seen by the second server after (s):", ", ".join(f"{x:.3f}" for x in lags))
    final = models_everywhere([b], fl_name, 4)[0]
    np.testing.assert_array_equal(final.features["fc3.bias"], np.full(10, 4.0))
