"""Summary outputs of real servers (spec §8): every metrics.json key and its value for a scripted iteration,
event.txt after `continuous_failure_times` consecutive failures, and one metrics line (and one
on_iteration_end) per iteration for a cluster of two servers writing to the same file."""
import json
import re
import time

import numpy as np
import redis

from mindspore_federated import errors
from mindspore_federated.client import messages as m
from mindspore_federated.state.keys import Keys
from tests.utils.api_entry import API_ENTRY as ENTRY
from tests.utils.api_entry import callbacks, wait_callback
from tests.utils.bodies import fl_job_body
from tests.utils.cluster import get_model, post, start_job, start_server, update, wait_model, write_yaml
from tests.utils.wait import wait_for

SUCCEED, SUC_NOT_READY, OUT_OF_TIME, REQUEST_ERROR = 200, 201, 300, 400
METRICS_KEYS = ["clientVisitedInfo", "currentIteration", "endTime", "flIterationNum", "flName",
                "instanceName", "instanceStatus", "iterationExecutionTime", "iterationResult", "metricsAuc",
                "metricsLoss", "startTime"]
TIME_RE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}")


def parse_local_ms(text):
    """`YYYY-mm-dd HH:MM:SS.mmm` local time -> epoch ms."""
    assert TIME_RE.fullmatch(text), text
    return int(time.mktime(time.strptime(text[:19], "%Y-%m-%d %H:%M:%S"))) * 1000 + int(text[20:])


def now_ms():
    return int(time.time() * 1000)


def metric_lines(path, count, timeout=10.0):
    wait_for(lambda: path.exists() and len(path.read_text().splitlines()) >= count, timeout,
             what=f"{count} lines in {path}")
    return path.read_text().splitlines()


def instance_of(redis_server, fl_name):
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    try:
        return client.get(Keys(fl_name).instance_name)
    finally:
        client.close()


def start_with_eval(address, fl_name, fl_id, data_size, eval_data_size):
    status, body = post(address, "startFLJob", m.build_start_fl_job(fl_name, fl_id, 1, data_size,
                                                                     eval_data_size=eval_data_size))
    assert status == 200
    return m.parse_start_fl_job(body)


def test_metrics_line_every_key_and_value(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, fl_iteration_num=3,
                           round={"start_fl_job_threshold": 3, "update_model_ratio": 1.0})
    workdir = tmp_path / "srv"
    _, address = start_server(procs, yaml_path, workdir, entry=ENTRY)
    # startFLJob: 8 replies, 3 accepted
    assert m.parse_start_fl_job(post(address, "startFLJob", b"\x07" * 24)[1]).retcode == REQUEST_ERROR
    assert start_with_eval(address, fl_name, "a", 0, 4).retcode == OUT_OF_TIME
    no_timestamp = fl_job_body(fl_name, "a", timestamp=None)
    assert post(address, "startFLJob", no_timestamp) == (200, errors.FLJOB_VERIFY.encode())
    before = now_ms()
    assert start_with_eval(address, fl_name, "a", 3, 4).retcode == SUCCEED
    after_first = now_ms()
    assert start_with_eval(address, fl_name, "a", 3, 4).retcode == OUT_OF_TIME
    assert start_with_eval(address, fl_name, "b", 5, 0).retcode == SUCCEED
    assert start_with_eval(address, fl_name, "c", 11, 12).retcode == SUCCEED
    assert start_with_eval(address, fl_name, "d", 1, 1).retcode == OUT_OF_TIME
    # getModel: 3 replies, 1 accepted
    assert m.parse_get_model(post(address, "getModel", b"\x07" * 24)[1]).retcode == REQUEST_ERROR
    assert get_model(address, fl_name, 1).retcode == SUC_NOT_READY
    assert get_model(address, fl_name, 0).retcode == SUCCEED
    # updateModel: 8 replies, 3 accepted
    w = {"w1": np.ones(6, np.float32), "b1": np.ones(3, np.float32)}
    assert m.parse_update_model(post(address, "updateModel", b"\x07" * 24)[1]).retcode == REQUEST_ERROR
    assert update(address, fl_name, "x", 1, w).retcode == OUT_OF_TIME
    assert update(address, fl_name, "a", 9, w).retcode == OUT_OF_TIME
    assert update(address, fl_name, "a", 1, w, loss=float("nan")).retcode == REQUEST_ERROR
    assert update(address, fl_name, "a", 1, w, loss=0.25, acc=0.5).retcode == SUCCEED
    # a retried update (its first reply lost) gets SUCCEED again and counts once: in total, not in accept
    assert update(address, fl_name, "a", 1, w, loss=0.25, acc=0.5).retcode == SUCCEED
    assert update(address, fl_name, "b", 1, w, loss=0.5, acc=0.75).retcode == SUCCEED
    assert update(address, fl_name, "c", 1, w, loss=2.0, acc=0.125).retcode == SUCCEED
    last_update = now_ms()
    raw = metric_lines(workdir / "metrics.json", 1)[0]
    seen = now_ms()
    line = json.loads(raw)
    assert list(json.loads(raw, object_pairs_hook=lambda pairs: [k for k, _ in pairs])) == METRICS_KEYS
    assert line["clientVisitedInfo"] == {
        "startFLJobTotalClientNum": 8, "startFLJobAcceptClientNum": 3, "startFLJobRejectClientNum": 5,
        "updateModelTotalClientNum": 8, "updateModelAcceptClientNum": 3, "updateModelRejectClientNum": 5,
        "getModelTotalClientNum": 3, "getModelAcceptClientNum": 1, "getModelRejectClientNum": 2,
        "participationTimeLevel1": 3, "participationTimeLevel2": 3, "participationTimeLevel3": 3}
    assert (line["currentIteration"], line["flIterationNum"], line["flName"], line["instanceStatus"],
            line["iterationResult"]) == (1, 3, fl_name, "running", "success")
    assert line["instanceName"] == instance_of(redis_server, fl_name)
    assert line["metricsLoss"] == (0.25 * 3 + 0.5 * 5 + 2.0 * 11) / 19
    assert line["metricsAuc"] == (0.5 * 4 + 0.75 * 0 + 0.125 * 12) / 16
    start, end = parse_local_ms(line["startTime"]), parse_local_ms(line["endTime"])
    assert before <= start <= after_first          # the first accepted startFLJob opened the iteration
    assert last_update - 1000 <= end <= seen       # written when the last update ended it
    assert line["iterationExecutionTime"] == end - start


def test_event_file_after_continuous_failures(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, fl_iteration_num=10,
                           round={"start_fl_job_threshold": 2, "start_fl_job_time_window": 300},
                           summary={"continuous_failure_times": 2, "failure_event_file": "events/event.txt"})
    workdir = tmp_path / "srv"
    proc, address = start_server(procs, yaml_path, workdir, entry=ENTRY)
    tcp = re.search(r"tcp=(\S+)", proc.wait_ready()).group(1)
    event_file = workdir / "events" / "event.txt"
    assert event_file.read_text() == ""   # created (with its folder) when the server starts
    bounds = []
    for it in (1, 2, 3, 4):  # one device per iteration: each startFLJob window expires
        assert start_job(address, fl_name, f"lonely{it}", it, 1).retcode == SUCCEED
        assert wait_callback(proc, it)["valid"] is False
        bounds.append(now_ms())
        lines = event_file.read_text().splitlines()
        assert len(lines) == it // 2, (it, lines)  # a line after the 2nd failure in a row, the counter resets
    pattern = re.compile(rf"nodeRole:SERVER,{re.escape(tcp)},currentTime:(?P<t>[0-9: .-]+),"
                         r"event:Iteration failed 2 times continuously;")
    for line, (low, high) in zip(event_file.read_text().splitlines(), [bounds[0:2], bounds[2:4]]):
        match = pattern.fullmatch(line)
        assert match, line
        assert low - 1000 <= parse_local_ms(match.group("t")) <= high
    results = [json.loads(x)["iterationResult"] for x in metric_lines(workdir / "metrics.json", 4)]
    assert results == ["fail"] * 4


def test_two_servers_agree_on_continuous_failures(tmp_path, redis_server, fl_name, procs):
    """Whichever server writes an iteration's summary, the cluster writes one event per 2 failures in a row."""
    events = tmp_path / "shared" / "event.txt"
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, fl_iteration_num=10,
                           round={"start_fl_job_threshold": 2, "start_fl_job_time_window": 300},
                           summary={"continuous_failure_times": 2, "failure_event_file": str(events),
                                    "metrics_file": str(tmp_path / "shared" / "metrics.json")})
    (_, a), (_, b) = [start_server(procs, yaml_path, tmp_path / f"srv{i}", name=f"server{i}", entry=ENTRY)
                      for i in range(2)]
    for it in range(1, 7):  # one device per iteration, on alternating servers: every iteration fails
        assert start_job(a if it % 2 else b, fl_name, f"lonely{it}", it, 1).retcode == SUCCEED
        assert json.loads(metric_lines(tmp_path / "shared" / "metrics.json", it)[-1])["iterationResult"] == "fail"
        for address in (a, b):   # both servers are in the next iteration
            wait_for(lambda x=address, it=it: get_model(x, fl_name, it + 1).iteration == it + 1, 10,
                     what=f"iteration {it + 1} on {address}")
    wait_for(lambda: len(events.read_text().splitlines()) >= 3, 10, what="three failure events")
    lines = events.read_text().splitlines()
    assert len(lines) == 3, lines
    assert all(line.endswith("event:Iteration failed 2 times continuously;") for line in lines), lines


def test_two_servers_write_one_line_per_iteration(tmp_path, redis_server, fl_name, procs):
    shared = tmp_path / "shared" / "metrics.json"
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, fl_iteration_num=5,
                           round={"start_fl_job_threshold": 4, "update_model_ratio": 1.0},
                           summary={"metrics_file": str(shared)})
    servers = [start_server(procs, yaml_path, tmp_path / f"srv{i}", name=f"server{i}", entry=ENTRY)
               for i in range(2)]
    (proc_a, a), (proc_b, b) = servers
    sizes, losses = [1, 2, 3, 4], [0.5, 0.25, 1.0, 2.0]
    rng = np.random.default_rng(11)
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    keys, inst = Keys(fl_name), instance_of(redis_server, fl_name)
    try:
        for it in (1, 2):
            for d, n in enumerate(sizes):   # d0, d1 start on A; d2, d3 on B
                assert start_job(a if d < 2 else b, fl_name, f"i{it}d{d}", it, n).retcode == SUCCEED
            assert get_model(a, fl_name, it).retcode == SUC_NOT_READY
            assert get_model(b, fl_name, it).retcode == SUC_NOT_READY
            uploads = [{"w1": rng.standard_normal(6).astype(np.float32) * n,
                        "b1": rng.standard_normal(3).astype(np.float32) * n} for n in sizes]
            for d in range(4):              # d0, d2 update on A; d1, d3 on B
                r = update(a if d % 2 == 0 else b, fl_name, f"i{it}d{d}", it, uploads[d], loss=losses[d])
                assert r.retcode == SUCCEED
            for address in (a, b):
                g = wait_model(address, fl_name, it)
                np.testing.assert_allclose(g.features["w1"], sum(u["w1"] for u in uploads) / np.float32(10),
                                           rtol=1e-5, atol=1e-6)
            # both servers have reported the iteration and its writer has finished: no line can follow
            wait_for(lambda it=it: client.hlen(keys.summary(inst, it)) == 2 and
                     client.get(keys.summary_lock(inst, it)) == "Finish", 10,
                     what=f"summary of iteration {it}")
    finally:
        client.close()
    lines = [json.loads(x) for x in shared.read_text().splitlines()]
    assert [x["currentIteration"] for x in lines] == [1, 2]
    for line in lines:
        assert line["iterationResult"] == "success"
        assert line["metricsLoss"] == (0.5 * 1 + 0.25 * 2 + 1.0 * 3 + 2.0 * 4) / 10
        visited = line["clientVisitedInfo"]
        assert (visited["startFLJobTotalClientNum"], visited["startFLJobAcceptClientNum"]) == (4, 4)
        assert (visited["updateModelTotalClientNum"], visited["updateModelAcceptClientNum"]) == (4, 4)
        # getModel: the two not-ready requests of the iteration plus the test's polls (how many of those come
        # before each server switches varies); the first successful poll of the previous model on each server
        # is accepted in the next iteration
        accepted = 0 if line["currentIteration"] == 1 else 2
        assert visited["getModelAcceptClientNum"] == accepted
        assert visited["getModelTotalClientNum"] >= accepted + 2
        assert visited["getModelRejectClientNum"] == visited["getModelTotalClientNum"] - accepted
        assert visited["participationTimeLevel3"] == 4
    for it in (1, 2):
        assert sum(1 for proc in (proc_a, proc_b) for c in callbacks(proc) if c["iteration"] == it) == 1
    assert not any((tmp_path / f"srv{i}" / "metrics.json").exists() for i in range(2))
    ckpts = [p.name for i in range(2) for p in (tmp_path / f"srv{i}" / "fl_ckpt").glob("*.ckpt")]
    assert sorted(int(re.search(r"_iteration_(\d+)_", n).group(1)) for n in ckpts) == [1, 2]


def test_hybrid_metrics_are_the_pushed_values_and_always_valid_json(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, server_mode="HYBRID_TRAINING",
                           round={"start_fl_job_threshold": 2, "start_fl_job_time_window": 300})
    workdir = tmp_path / "srv"
    proc, address = start_server(procs, yaml_path, workdir, entry=ENTRY)
    # a hybrid worker's iteration: pushWeight of the trained model, then pushMetrics ends the iteration
    pushed = {"w1": np.full(6, 3.0, np.float32), "b1": np.full(3, -1.0, np.float32)}
    status, body = post(address, "pushWeight", m.build_push_weight(1, pushed))
    r = m.parse_push_weight(body)
    assert (r.retcode, r.reason, r.iteration) == (SUCCEED, "PushWeight succeed.", 1)
    status, body = post(address, "pushMetrics", m.build_push_metrics(0.75, 0.5))
    assert status == 200 and m.parse_push_metrics(body).retcode == SUCCEED
    ctx = wait_callback(proc, 1)
    assert (ctx["valid"], ctx["result"]) == (
        True, "Push metrics finished! This iteration is valid. Proceed to next iteration.")
    # iteration 2 ends by its startFLJob window, with no metrics pushed
    r = start_job(address, fl_name, "lonely", 2, 1)
    assert r.retcode == SUCCEED
    np.testing.assert_array_equal(r.features["w1"], pushed["w1"])
    assert wait_callback(proc, 2)["valid"] is False

    def strict(token):
        raise AssertionError(f"metrics.json holds {token}, which is not JSON")

    lines = [json.loads(x, parse_constant=strict) for x in metric_lines(workdir / "metrics.json", 2)]
    got = [(x["currentIteration"], x["iterationResult"], x["metricsLoss"], x["metricsAuc"]) for x in lines]
    assert got == [(1, "success", 0.75, 0.5), (2, "fail", 0.0, 0.0)]
