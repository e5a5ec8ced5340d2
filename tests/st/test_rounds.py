"""Federated rounds on a real server process: FedAvg, every validation path of startFLJob/updateModel/getModel
with its exact retcode and reason (spec §3.7), Finish, checkpoints, graceful stop."""
import json
import signal
import time

import numpy as np
import pytest

from mindspore_federated.client import messages as m
from tests.utils.bodies import fl_job_body, update_body
from tests.utils.cluster import get_model, post, start_job, start_server, update, wait_model, write_yaml
from tests.utils.multi import ENTRY
from tests.utils.wait import wait_for

SUCCEED, SUC_NOT_READY, OUT_OF_TIME, REQUEST_ERROR = 200, 201, 300, 400
FINISHED = b"The server's training job is disabled or finished."


def post_update_body(address, body):
    status, reply = post(address, "updateModel", body)
    assert status == 200
    return m.parse_update_model(reply)


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
    wait_for(lambda: metrics.exists() and len(metrics.read_text().splitlines()) == 3, 5,
             what="3 metrics lines")
    lines = [json.loads(x) for x in metrics.read_text().splitlines()]
    assert [x["currentIteration"] for x in lines] == [1, 2, 3]
    assert all(x["iterationResult"] == "success" for x in lines)
    expect_loss = (0.25 * 3 + 0.5 * 5 + 2.0 * 11) / 19
    assert lines[0]["metricsLoss"] == expect_loss
    assert lines[0]["clientVisitedInfo"]["updateModelAcceptClientNum"] == 3
    assert lines[-1]["instanceStatus"] == "finish"
    # Finish: only getModel is served; it returns the final model
    assert post(address, "startFLJob", m.build_start_fl_job(fl_name, "late", 4, 1)) == (200, FINISHED)
    # the devices of the last iteration cannot update any more either, and no hybrid round is served
    for iteration in (3, 4):
        body = m.build_update_model(fl_name, "dev0", iteration, uploads[0])
        assert post(address, "updateModel", body) == (200, FINISHED)
    assert post(address, "pushMetrics", m.build_push_metrics(0.5, 0.5)) == (200, FINISHED)
    final = get_model(address, fl_name, 3)
    assert (final.retcode, final.reason, final.iteration) == (SUCCEED, "Get model for iteration 4", 4)
    for name in ("w1", "b1", "frozen"):
        np.testing.assert_array_equal(final.features[name], g.features[name])
    proc.wait_line("CALLBACK iteration_end 3 valid=True")
    assert len(list((workdir / "fl_ckpt").glob("*.ckpt"))) == 3


def test_start_fl_job_validation(small_server, fl_name):
    """Spec §3.7 startFLJob, in the reference's order: schema, field presence (plain text), threshold, data
    size, device metadata; fl_name and iteration values are not checked."""
    _, address, _ = small_server
    status, body = post(address, "startFLJob", b"\x00" * 64)
    r = m.parse_start_fl_job(body)
    assert (status, r.retcode, r.reason, r.iteration, r.is_selected) == (
        200, REQUEST_ERROR, "The schema of RequestFLJob is invalid.", 1, False)
    for missing in ("fl_id", "fl_name", "timestamp"):
        fields = {"fl_name": fl_name, "fl_id": "a", "timestamp": "1700000000000", missing: None}
        assert post(address, "startFLJob", fl_job_body(data_size=5, **fields)) == (
            200, b"Verify flatbuffers schema failed for RequestFLJob."), missing
    for data_size, reason in ((0, "FL job data size is not enough."), (-1, "FL job data size is not enough."),
                              (65536, "FL job data size is too large.")):
        r = start_job(address, fl_name, "a", data_size=data_size)
        assert (r.retcode, r.reason, r.iteration, r.is_selected) == (OUT_OF_TIME, reason, 1, False)
    before = int(time.time() * 1000)
    r = start_job(address, fl_name, "a", data_size=65535)
    after = int(time.time() * 1000)
    assert (r.retcode, r.reason, r.iteration, r.is_selected) == (SUCCEED, "success", 1, True)
    # next_req_time = first startFLJob of the iteration + start_fl_job_time_window + update_model_time_window
    next_time = r.next_req_time
    assert before + 60000 <= next_time <= after + 60000
    plan = r.fl_plan
    assert (plan.fl_name, plan.server_mode, plan.iterations, plan.epochs, plan.mini_batch) == (
        fl_name, "FEDERATED_LEARNING", 3, 1, 16)
    assert plan.lr == pytest.approx(0.01) and plan.encrypt_type == "NOT_ENCRYPT"
    assert list(r.features) == ["b1", "frozen", "w1"]  # the model of iteration 0, sorted by name
    np.testing.assert_array_equal(r.features["w1"], np.arange(6, dtype=np.float32))
    # the fl_name value and the iteration are not checked; the FLJ0 file identifier is optional
    status, body = post(address, "startFLJob", fl_job_body("another job", "b", data_size=1, iteration=42,
                                                           ident=True))
    r = m.parse_start_fl_job(body)
    assert (r.retcode, r.iteration, r.next_req_time) == (SUCCEED, 1, next_time)
    r = start_job(address, fl_name, "a")
    assert (r.retcode, r.reason, r.next_req_time) == (
        OUT_OF_TIME, "Updating device metadata failed for fl id a", next_time)
    assert start_job(address, fl_name, "c").retcode == SUCCEED
    # the threshold is checked before the data size and the device metadata ...
    for fl_id, data_size in (("d", 5), ("d", 0), ("a", 5)):
        r = start_job(address, fl_name, fl_id, data_size=data_size)
        assert (r.retcode, r.reason, r.iteration, r.is_selected, r.next_req_time) == (
            OUT_OF_TIME, "Current amount for startFLJob has reached the threshold. Please startFLJob later.",
            1, False, next_time)
    # ... and after the schema and the fields
    assert post(address, "startFLJob", fl_job_body(fl_name, None, data_size=5)) == (
        200, b"Verify flatbuffers schema failed for RequestFLJob.")
    assert m.parse_start_fl_job(post(address, "startFLJob", b"\x01" * 8)[1]).retcode == REQUEST_ERROR


def test_update_model_validation(small_server, fl_name):
    """Spec §3.7 updateModel, in the reference's order: schema, fields, device metadata, iteration, features,
    missing/empty weights, duplicate."""
    _, address, _ = small_server
    nan, inf = float("nan"), float("inf")
    good = {"w1": np.ones(6, np.float32), "b1": np.ones(3, np.float32)}
    r = post_update_body(address, b"garbage-garbage-garbage")
    assert (r.retcode, r.reason) == (REQUEST_ERROR, "The schema of RequestUpdateModel is invalid.")
    # field checks come first, even for a device that never started
    for kwargs in ({"fl_id": None}, {"fl_id": ""}, {"timestamp": None}, {"loss": nan}, {"loss": -inf},
                   {"accuracy": inf}, {"accuracy": nan}, {"drop_name": True}, {"drop_data": True},
                   {"drop_map": True}):
        r = post_update_body(address, update_body(fl_id=kwargs.pop("fl_id", "x"), **kwargs))
        assert (r.retcode, r.reason) == (
            REQUEST_ERROR, "Verify flatbuffers schema failed for RequestUpdateModel."), kwargs
    # no device metadata: checked before the iteration and the features
    for iteration, feats in ((1, good), (7, {"zz": np.full(2, nan, np.float32)})):
        r = update(address, fl_name, "x", iteration, feats)
        assert (r.retcode, r.reason) == (OUT_OF_TIME, "devices_meta for x is not set. Please retry later.")
    t = start_job(address, fl_name, "x").next_req_time
    for iteration in (7, 0):  # the iteration is checked before the features
        r = update(address, fl_name, "x", iteration, good if iteration else {"zz": np.ones(1, np.float32)})
        assert (r.retcode, r.reason, r.next_req_time) == (
            OUT_OF_TIME, f"UpdateModel iteration number is invalid:{iteration}, current iteration:1, "
                         f"Retry later at time: {t}, fl id is x", t)
    bad_features = {
        "size": {"w1": np.ones(5, np.float32), "b1": np.ones(3, np.float32)},
        "NaN": {"w1": np.array([1, 1, np.nan, 1, 1, 1], np.float32), "b1": np.ones(3, np.float32)},
        "Inf": {"w1": np.ones(6, np.float32), "b1": np.array([1, np.inf, 1], np.float32)},
        "-Inf": {"w1": np.full(6, -np.inf, np.float32), "b1": np.ones(3, np.float32)},
        "unknown name": {**good, "zz": np.ones(6, np.float32)},
        "only an unknown name": {"zz": np.ones(6, np.float32)},
        "require_aggr=False weight of the wrong size": {**good, "frozen": np.ones(3, np.float32)},
    }
    for what, feats in bad_features.items():
        r = update(address, fl_name, "x", 1, feats)
        assert (r.retcode, r.reason, r.next_req_time) == (
            REQUEST_ERROR, f"Verify model feature map failed, retry later at time: {t}", t), what
    r = update(address, fl_name, "x", 1, {"w1": np.ones(6, np.float32)})
    assert (r.retcode, r.reason) == (REQUEST_ERROR, "The updated weight of parameter b1 is missing, fl id: x")
    r = update(address, fl_name, "x", 1, {})
    assert (r.retcode, r.reason) == (REQUEST_ERROR, "Feature map is empty for fl id x")
    r = update(address, fl_name, "x", 1, good)  # a require_aggr=False weight may be left out
    assert (r.retcode, r.reason, r.next_req_time) == (SUCCEED, "success not ready", t)
    r = update(address, fl_name, "x", 1, good)  # a retry (its reply lost): the same answer, counted once
    assert (r.retcode, r.reason, r.next_req_time) == (SUCCEED, "success not ready", t)


def test_update_model_count_already_enough(tmp_path, redis_server, fl_name, procs):
    """U = ceil(3 * 0.5) = 2. Server B accepts one update and is then paused (SIGSTOP); server A accepts the
    second, which reaches U, so A's aggregation waits for B in the all-reduce: meanwhile a third update of
    the same iteration is refused. Once B resumes, the iteration ends with the FedAvg of the two updates."""
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name,
                           round={"start_fl_job_threshold": 3, "update_model_ratio": 0.5})
    _, a = start_server(procs, yaml_path, tmp_path / "a", name="serverA", entry=ENTRY)
    proc_b, b = start_server(procs, yaml_path, tmp_path / "b", name="serverB", entry=ENTRY)
    sizes = {"da": 2, "db": 6, "dc": 1}
    rng = np.random.default_rng(4)
    uploads = {d: {"w1": rng.standard_normal(6).astype(np.float32) * n,
                   "b1": rng.standard_normal(3).astype(np.float32) * n} for d, n in sizes.items()}
    next_times = {start_job(a, fl_name, d, 1, n).next_req_time for d, n in sizes.items()}
    assert len(next_times) == 1
    assert update(b, fl_name, "da", 1, uploads["da"]).retcode == SUCCEED
    proc_b.send(signal.SIGSTOP)
    try:
        assert update(a, fl_name, "db", 1, uploads["db"]).retcode == SUCCEED
        r = update(a, fl_name, "dc", 1, uploads["dc"])
        assert (r.retcode, r.reason, r.next_req_time) == (
            OUT_OF_TIME, "Current amount for updateModel is enough. Please retry later.", next_times.pop())
        assert get_model(a, fl_name, 1).retcode == SUC_NOT_READY  # the aggregation is waiting for B
    finally:
        proc_b.send(signal.SIGCONT)
    for address in (a, b):
        g = wait_model(address, fl_name, 1)
        for name in ("w1", "b1"):
            expect = (uploads["da"][name] + uploads["db"][name]) / np.float32(8)
            np.testing.assert_allclose(g.features[name], expect, rtol=1e-6)


def test_get_model_validation(small_server, fl_name):
    """Spec §3.7 getModel: schema, not-ready with next_req_time in `timestamp`, and SUCCEED with the current
    iteration and the requested (or else the newest) model; fl_name is not checked."""
    _, address, _ = small_server
    now = time.time() * 1000
    g = get_model(address, fl_name, 1)
    not_ready = ("The model is not ready yet for iteration 1. Maybe this is because\n"
                 "1. Client doesn't send enough update model request.\n"
                 "2. Worker has not push all the weights to servers.")
    assert (g.retcode, g.reason, g.iteration) == (SUC_NOT_READY, not_ready, 1)
    assert g.next_req_time > now
    status, body = post(address, "getModel", b"\x01" * 40)
    g = m.parse_get_model(body)
    assert (status, g.retcode, g.reason, g.iteration) == (
        200, REQUEST_ERROR, "The schema of RequestGetModel is invalid.", 1)
    initial = {"w1": np.arange(6, dtype=np.float32), "b1": np.zeros(3, np.float32), "frozen": np.full(4, 7.0)}
    for requested in (0, 57, -3):
        status, body = post(address, "getModel", m.build_get_model("not checked", requested,
                                                                   download_compress_types=(2,)))
        g = m.parse_get_model(body)
        assert (g.retcode, g.reason, g.iteration) == (SUCCEED, "Get model for iteration 1", 1), requested
        assert g.compressed_features == {}  # QUANT is only used when the server is configured for it
        for name, value in initial.items():
            np.testing.assert_array_equal(g.features[name], value.astype(np.float32))
    t = start_job(address, fl_name, "a").next_req_time
    g = get_model(address, fl_name, 1)
    assert (g.retcode, g.reason, g.next_req_time) == (SUC_NOT_READY, not_ready, t)
    status, body = post(address, "getModel", b"")
    assert status == 500 and json.loads(body) == {"error_message": "Get post message failed", "code": "1"}


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
    inst = client.get(f"ms_fl:{{{fl_name}}}:InstanceName:String").decode()
    assert client.hlen(f"ms_fl:{{{fl_name}}}:{inst}:server:Hash") == 1
    proc.send(signal.SIGTERM)
    assert proc.wait_exit(15) == 0
    assert client.hlen(f"ms_fl:{{{fl_name}}}:{inst}:server:Hash") == 0
    client.close()


def test_hybrid_iteration_without_push_weight_is_followed_by_the_next(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, server_mode="HYBRID_TRAINING",
                           round={"start_fl_job_threshold": 2})
    proc, address = start_server(procs, yaml_path, tmp_path / "srv", entry=ENTRY)
    status, body = post(address, "pushMetrics", m.build_push_metrics(0.5, 0.5))
    assert m.parse_push_metrics(body).retcode == SUCCEED
    proc.wait_line("CALLBACK iteration_end 1 valid=True", timeout=10)
    r = wait_for(lambda: (x := start_job(address, fl_name, "d", 2, 1)) and hasattr(x, "retcode") and x, 3,
                 what="startFLJob served in iteration 2")
    assert (r.retcode, r.iteration) == (SUCCEED, 2)
