"""Round windows and the global iteration timer on a real server: each expiry fails the iteration with the
reference's reason text (seen in the status hash, the on_iteration_end context and metrics.json), the
iteration number advances, the model stays the previous one, and the next iteration trains normally."""
import json
import time

import numpy as np
import pytest
import redis

from mindspore_federated.state.keys import Keys
from tests.utils.api_entry import API_ENTRY as ENTRY
from tests.utils.api_entry import wait_callback
from tests.utils.cluster import get_model, start_job, start_server, update, wait_model, write_yaml
from tests.utils.wait import wait_for

SUCCEED = 200
INITIAL_W1 = np.arange(6, dtype=np.float32)
ONES = {"w1": np.ones(6, np.float32), "b1": np.ones(3, np.float32)}
LONG = 30000


def _start_only(address, fl_name):
    assert start_job(address, fl_name, "a", 1, 2).retcode == SUCCEED


def _start_both_update_one(address, fl_name):
    for fl_id in ("a", "b"):
        assert start_job(address, fl_name, fl_id, 1, 2).retcode == SUCCEED
    assert update(address, fl_name, "a", 1, ONES).retcode == SUCCEED


ROUND_TIMEOUT = "Round {} timeout! This iteration is invalid. Proceed to next iteration."
CASES = {
    # name: (round config, what the devices do, reason, the window the failure must wait for)
    "startFLJob window": ({"start_fl_job_time_window": 500, "update_model_time_window": LONG,
                           "global_iteration_time_window": 60000}, _start_only,
                          ROUND_TIMEOUT.format("startFLJob"), 500),
    "updateModel window": ({"start_fl_job_time_window": LONG, "update_model_time_window": 500,
                            "global_iteration_time_window": 60000}, _start_both_update_one,
                           ROUND_TIMEOUT.format("updateModel"), 500),
    "global timer": ({"start_fl_job_time_window": LONG, "update_model_time_window": LONG,
                      "global_iteration_time_window": 700}, _start_only,
                     "Global timer timeout! This iteration is invalid. Proceed to next iteration.", 700),
}


@pytest.mark.parametrize("case", list(CASES))
def test_expiry_fails_iteration_with_reason_and_advances(tmp_path, redis_server, fl_name, procs, case):
    round_cfg, act, reason, window_ms = CASES[case]
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name,
                           round={"start_fl_job_threshold": 2, "update_model_ratio": 1.0, **round_cfg})
    workdir = tmp_path / "srv"
    proc, address = start_server(procs, yaml_path, workdir, entry=ENTRY)
    t0 = time.time()
    act(address, fl_name)
    # the iteration is not over before its window
    g = get_model(address, fl_name, 1)
    assert g.retcode == 201 and g.iteration == 1
    ctx = wait_callback(proc, 1, timeout=10)
    elapsed_ms = (time.time() - t0) * 1000
    assert (ctx["valid"], ctx["result"]) == (False, reason)
    assert elapsed_ms >= window_ms
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    try:
        keys = Keys(fl_name)
        status = client.hgetall(keys.status(client.get(keys.instance_name)))
    finally:
        client.close()
    assert (status["iterationNum"], status["lastIterationSuccess"], status["lastIterationResult"]) == (
        "2", "0", reason)
    # the failed iteration keeps the previous model under its number; the next one starts from it
    g = wait_model(address, fl_name, 1)
    assert (g.retcode, g.reason, g.iteration) == (SUCCEED, "Get model for iteration 2", 2)
    np.testing.assert_array_equal(g.features["w1"], INITIAL_W1)
    np.testing.assert_array_equal(ctx["features"]["w1"]["data"], INITIAL_W1)
    metrics = workdir / "metrics.json"
    wait_for(lambda: metrics.exists() and metrics.read_text().strip(), 5, what="metrics line of iteration 1")
    line = json.loads(metrics.read_text().splitlines()[0])
    assert (line["currentIteration"], line["iterationResult"]) == (1, "fail")
    assert window_ms <= line["iterationExecutionTime"] < window_ms + 5000
    # iteration 2 trains normally, including the devices of the failed iteration
    for fl_id, n in (("a", 1), ("b", 3)):
        r = start_job(address, fl_name, fl_id, 2, n)
        assert (r.retcode, r.iteration) == (SUCCEED, 2)
        np.testing.assert_array_equal(r.features["w1"], INITIAL_W1)
    uploads = {"a": {"w1": np.full(6, 2.0, np.float32), "b1": np.full(3, 1.0, np.float32)},
               "b": {"w1": np.full(6, 6.0, np.float32), "b1": np.full(3, 7.0, np.float32)}}
    for fl_id, upload in uploads.items():
        assert update(address, fl_name, fl_id, 2, upload).retcode == SUCCEED
    g = wait_model(address, fl_name, 2)
    np.testing.assert_array_equal(g.features["w1"], np.full(6, 2.0, np.float32))
    np.testing.assert_array_equal(g.features["b1"], np.full(3, 2.0, np.float32))
    ctx = wait_callback(proc, 2)
    assert ctx["valid"] is True
