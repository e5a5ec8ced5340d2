"""Federated rounds on a real server process: FedAvg, validation paths, windows, Finish, checkpoints, metrics."""
import json
import os
import signal
import time

import numpy as np
import pytest

from mindspore_federated.client import messages as m
from tests.utils.cluster import post, start_server, write_yaml
from tests.utils.wait import wait_for

ENTRY = (os.path.join(os.path.dirname(os.path.abspath(__file__)), "server_entry.py"),)
SUCCEED, SUC_NOT_READY, OUT_OF_TIME, REQUEST_ERROR = 200, 201, 300, 400


def start_job(address, fl_name, fl_id, iteration=1, data_size=10):
    status, body = post(address, "startFLJob", m.build_start_fl_job(fl_name, fl_id, iteration, data_size))
    assert status == 200
    return m.parse_start_fl_job(body)


def update(address, fl_name, fl_id, iteration, features, loss=0.0, acc=0.0):
    status, body = post(address, "updateModel", m.build_update_model(fl_name, fl_id, iteration, features,
                                                                       upload_loss=loss, upload_accuracy=acc))
    assert status == 200
    return m.parse_update_model(body)


def get_model(address, fl_name, iteration):
    status, body = post(address, "getModel", m.build_get_model(fl_name, iteration))
    assert status == 200
    return m.parse_get_model(body)


def wait_model(address, fl_name, iteration, timeout=10.0):
    return wait_for(lambda: (r := get_model(address, fl_name, iteration)).retcode == SUCCEED and r,
                    timeout, what=f"model of iteration {iteration}")


@pytest.fixture
def small_server(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name,
                           round={"start_fl_job_threshold": 3}, fl_iteration_num=3,
                           summary={"continuous_failure_times": 2})
    proc, address = start_server(procs, yaml_path, tmp_path / "srv", entry=ENTRY)
    return proc, address, tmp_path / "srv"


def test_fedavg_exact_over_iterations_with_passthrough(small_server, fl_name):
    proc, address, workdir = small_server
    sizes = [3, 5, 11]
    rng = np.random.default_rng(0)
    for it in (1, 2, 3):
        uploads, losses = [], [0.25, 0.5, 2.0]
        for d, n in enumerate(sizes):
            r = start_job(address, fl_name, f"dev{d}", it, n)
            assert (r.retcode, r.reason, r.iteration) == (SUCCEED, "success", it)
            assert set(r.features) == {"w1", "b1", "frozen"}
            np.testing.assert_array_equal(r.features["frozen"], np.full(4, 7.0, np.float32))
            assert r.fl_plan.fl_name == fl_name and r.fl_plan.iterations == 3
            uploads.append({"w1": rng.standard_normal(6).astype(np.float32) * n,
                            "b1": rng.standard_normal(3).astype(np.float32) * n})
        for d in range(3):
            r = update(address, fl_name, f"dev{d}", it, uploads[d], loss=losses[d])
            assert (r.retcode, r.reason) == (SUCCEED, "success not ready")
        g = wait_model(address, fl_name, it)
        assert g.iteration == it + 1
        for name in ("w1", "b1"):
            expect = sum(u[name].astype(np.float32) for u in uploads) / np.float32(sum(sizes))
            np.testing.assert_allclose(g.features[name], expect, rtol=1e-6)
        np.testing.assert_array_equal(g.features["frozen"], np.full(4, 7.0, np.float32))
    metrics = workdir / "metrics.json"
    wait_for(lambda: metrics.exists() and len(metrics.read_text().splitlines()) == 3, 5, what="3 metrics lines")
    lines = [json.loads(x) for x in metrics.read_text().splitlines()]
    assert [x["currentIteration"] for x in lines] == [1, 2, 3]
    assert all(x["iterationResult"] == "success" for x in lines)
    expect_loss = (0.25 * 3 + 0.5 * 5 + 2.0 * 11) / 19
    assert lines[0]["metricsLoss"] == expect_loss
    assert lines[0]["clientVisitedInfo"]["updateModelAcceptClientNum"] == 3
    assert lines[-1]["instanceStatus"] == "finish"
    # Finish: only getModel is served; it returns the final model
    status, body = post(address, "startFLJob", m.build_start_fl_job(fl_name, "late", 4, 1))
    assert body == b"The server's training job is disabled or finished."
    assert get_model(address, fl_name, 3).retcode == SUCCEED
    proc.wait_line("CALLBACK iteration_end 3 valid=True")
    assert len(list((workdir / "fl_ckpt").glob("*.ckpt"))) == 3


def test_start_fl_job_validation(small_server, fl_name):
    _, address, _ = small_server
    assert start_job(address, fl_name, "a", data_size=0).reason == "FL job data size is not enough."
    assert start_job(address, fl_name, "a", data_size=70000).reason == "FL job data size is too large."
    assert start_job(address, fl_name, "a").retcode == SUCCEED
    r = start_job(address, fl_name, "a")
    assert (r.retcode, r.reason) == (OUT_OF_TIME, "Updating device metadata failed for fl id a")
    assert start_job(address, fl_name, "b").retcode == SUCCEED
    assert start_job(address, fl_name, "c").retcode == SUCCEED
    r = start_job(address, fl_name, "d")
    assert (r.retcode, r.reason) == (OUT_OF_TIME, "Current amount for startFLJob has reached the threshold. "
                                                  "Please startFLJob later.")
    assert r.next_req_time > time.time() * 1000
    status, body = post(address, "startFLJob", b"\x00" * 64)
    r = m.parse_start_fl_job(body)
    assert (r.retcode, r.reason) == (REQUEST_ERROR, "The schema of RequestFLJob is invalid.")


def test_update_model_validation(small_server, fl_name):
    _, address, _ = small_server
    good = {"w1": np.ones(6, np.float32), "b1": np.ones(3, np.float32)}
    r = update(address, fl_name, "x", 1, good)
    assert (r.retcode, r.reason) == (OUT_OF_TIME, "devices_meta for x is not set. Please retry later.")
    start_job(address, fl_name, "x")
    r = update(address, fl_name, "x", 7, good)
    assert r.retcode == OUT_OF_TIME and r.reason.startswith(
        "UpdateModel iteration number is invalid:7, current iteration:1, Retry later at time: ")
    assert r.reason.endswith("fl id is x")
    bad_size = {"w1": np.ones(5, np.float32), "b1": np.ones(3, np.float32)}
    r = update(address, fl_name, "x", 1, bad_size)
    assert r.retcode == REQUEST_ERROR and r.reason.startswith("Verify model feature map failed, retry later at time:")
    nan = {"w1": np.full(6, np.nan, np.float32), "b1": np.ones(3, np.float32)}
    assert update(address, fl_name, "x", 1, nan).retcode == REQUEST_ERROR
    unknown = {"zz": np.ones(6, np.float32)}
    assert update(address, fl_name, "x", 1, unknown).retcode == REQUEST_ERROR
    r = update(address, fl_name, "x", 1, {"w1": np.ones(6, np.float32)})
    assert (r.retcode, r.reason) == (REQUEST_ERROR, "The updated weight of parameter b1 is missing, fl id: x")
    r = update(address, fl_name, "x", 1, {})
    assert (r.retcode, r.reason) == (REQUEST_ERROR, "Feature map is empty for fl id x")
    assert update(address, fl_name, "x", 1, good).retcode == SUCCEED
    r = update(address, fl_name, "x", 1, good)
    assert (r.retcode, r.reason) == (OUT_OF_TIME, "Updating metadata of UpdateModelClientList failed for fl id x")
    status, body = post(address, "updateModel", b"garbage-garbage-garbage")
    r = m.parse_update_model(body)
    assert (r.retcode, r.reason) == (REQUEST_ERROR, "The schema of RequestUpdateModel is invalid.")


def test_get_model_and_plain_text_replies(small_server, fl_name):
    _, address, _ = small_server
    g = get_model(address, fl_name, 1)
    assert g.retcode == SUC_NOT_READY and g.reason.startswith("The model is not ready yet for iteration 1.")
    g = get_model(address, fl_name, 0)
    assert (g.retcode, g.iteration) == (SUCCEED, 1)
    np.testing.assert_array_equal(g.features["w1"], np.arange(6, dtype=np.float32))
    status, body = post(address, "getModel", b"")
    assert status == 500 and json.loads(body) == {"error_message": "Get post message failed", "code": "1"}


def test_window_expiry_fails_iteration_and_advances(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name,
                           round={"start_fl_job_threshold": 2, "start_fl_job_time_window": 400,
                                  "update_model_time_window": 400})
    proc, address = start_server(procs, yaml_path, tmp_path / "srv", entry=ENTRY)
    assert start_job(address, fl_name, "only").retcode == SUCCEED
    g = wait_for(lambda: (r := get_model(address, fl_name, 1)).retcode == SUCCEED and r, 5, what="iteration 2")
    assert g.iteration == 2
    np.testing.assert_array_equal(g.features["w1"], np.arange(6, dtype=np.float32))  # model unchanged
    metrics = tmp_path / "srv" / "metrics.json"
    wait_for(lambda: metrics.exists() and metrics.read_text().strip(), 5, what="metrics line")
    line = json.loads(metrics.read_text().splitlines()[0])
    assert line["iterationResult"] == "fail"
    r = start_job(address, fl_name, "only", iteration=2)
    assert (r.retcode, r.iteration) == (SUCCEED, 2)


def test_checkpoint_restart_resumes_next_iteration(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 1})
    workdir = tmp_path / "srv"
    proc, address = start_server(procs, yaml_path, workdir, name="first", entry=ENTRY)
    start_job(address, fl_name, "d", 1, 2)
    upload = {"w1": np.full(6, 4.0, np.float32), "b1": np.full(3, 2.0, np.float32)}
    assert update(address, fl_name, "d", 1, upload).retcode == SUCCEED
    wait_model(address, fl_name, 1)
    proc.wait_line("CALLBACK iteration_end 1 valid=True")
    proc.send(signal.SIGTERM)
    assert proc.wait_exit(15) == 0
    assert "CALLBACK before_stopped" in proc.output()
    proc2, address2 = start_server(procs, yaml_path, workdir, name="second", entry=ENTRY)
    r = start_job(address2, fl_name, "d2", 2, 1)
    assert (r.retcode, r.iteration) == (SUCCEED, 2)
    np.testing.assert_array_equal(r.features["w1"], np.full(6, 2.0, np.float32))
    np.testing.assert_array_equal(r.features["b1"], np.full(3, 1.0, np.float32))


def test_sigterm_deregisters_and_exits_zero(tmp_path, redis_server, fl_name, procs):
    import redis

    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name)
    proc, _ = start_server(procs, yaml_path, tmp_path / "srv", entry=ENTRY)
    client = redis.Redis(port=redis_server.port)
    inst = client.get(f"ms_fl:{fl_name}:InstanceName:String").decode()
    assert client.hlen(f"ms_fl:{fl_name}:{inst}:server:Hash") == 1
    t0 = time.monotonic()
    proc.send(signal.SIGTERM)
    assert proc.wait_exit(10) == 0
    assert time.monotonic() - t0 < 5
    assert client.hlen(f"ms_fl:{fl_name}:{inst}:server:Hash") == 0
    client.close()
