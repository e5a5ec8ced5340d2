"""Prometheus /metrics of a real cluster (redis-server, server and scheduler processes) after an iteration,
parsed with prometheus_client's own parser; and the scheduler's management token, caller log and bind."""
import json
import re
import urllib.request

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mindspore_federated.client import messages as m
from mindspore_federated.errors import SCHED_UNAUTHORIZED
from tests.utils.cluster import call, post, start_scheduler, update, wait_model, write_yaml
from tests.utils.multi import start_servers
from tests.utils.redis_server import free_port
from tests.utils.wait import wait_for

TOKEN = "s3cret-token-for-tests"


def scrape(address, path="/metrics", token=None):
    """{(name, frozenset(labels)): value} of one scrape, and the families by name."""
    req = urllib.request.Request(f"http://{address}{path}")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def get_json(address, path, token=None):
    req = urllib.request.Request(f"http://{address}{path}")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_metrics_of_a_real_cluster_after_an_iteration(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 2})
    ((_, srv),) = start_servers(procs, tmp_path, yaml_path, 1)
    _, sched = start_scheduler(procs, yaml_path)
    rng = np.random.default_rng(7)
    uploads = {f"d{i}": {"w1": rng.standard_normal(6).astype(np.float32),
                         "b1": rng.standard_normal(3).astype(np.float32)} for i in range(2)}
    # a rejected update first: no startFLJob from this device
    assert update(srv, fl_name, "stranger", 1, uploads["d0"]).retcode != 200
    for fl_id, size, eval_size in (("d0", 4, 1), ("d1", 6, 3)):
        status, reply = post(srv, "startFLJob", m.build_start_fl_job(fl_name, fl_id, 1, size,
                                                                     eval_data_size=eval_size))
        assert status == 200 and m.parse_start_fl_job(reply).retcode == 200
    sent = 0
    for fl_id, loss, acc in (("d0", 0.5, 0.25), ("d1", 1.5, 0.75)):
        body = m.build_update_model(fl_name, fl_id, 1, uploads[fl_id], upload_loss=loss, upload_accuracy=acc)
        status, reply = post(srv, "updateModel", body)
        assert status == 200 and m.parse_update_model(reply).retcode == 200
        sent += len(body)
    wait_model(srv, fl_name, 1)

    def server_done():
        s = scrape(srv)
        return value(s, "msfl_server_iterations_total", result="success") == 1 and \
            value(s, "msfl_server_live_servers") == 1 and s
    s = wait_for(server_done, 20, what="the server's metrics of the ended iteration")
    assert value(s, "msfl_server_iteration") == 2
    assert value(s, "msfl_server_instance_state", state="running") == 1
    assert value(s, "msfl_server_instance_state", state="disable") == 0
    assert value(s, "msfl_server_round_threshold", round="startFLJob") == 2
    assert value(s, "msfl_server_round_threshold", round="updateModel") == 2
    assert value(s, "msfl_server_requests_total", round="startFLJob", result="accepted") == 2
    assert value(s, "msfl_server_requests_total", round="updateModel", result="accepted") == 2
    assert value(s, "msfl_server_requests_total", round="updateModel", result="rejected") == 1
    assert value(s, "msfl_server_update_rejected_total", reason="no_device_meta") == 1
    assert value(s, "msfl_server_request_duration_seconds_count", round="updateModel") == 3
    assert value(s, "msfl_server_request_duration_seconds_count", round="startFLJob") == 2
    assert value(s, "msfl_server_received_bytes_total", round="updateModel") > sent  # + the rejected one
    assert value(s, "msfl_server_sent_bytes_total", round="updateModel") > 0
    for stage in ("collect", "all-reduce", "average", "finish"):
        assert value(s, "msfl_server_aggregation_stage_seconds_count", stage=stage) == 1, stage
    assert value(s, "msfl_server_model_bytes") > 0
    assert value(s, "msfl_redis_round_trips_total", client="redis_py") > 0
    assert value(s, "msfl_redis_round_trips_total", client="pipelined") > 0    # the hot path (hiredis)
    assert value(s, "msfl_redis_errors_total", client="redis_py") == 0
    assert value(s, "msfl_redis_errors_total", client="pipelined") == 0
    assert value(s, "process_resident_memory_bytes") > 0 and value(s, "process_cpu_seconds_total") > 0

    def scheduler_done():
        s = scrape(sched)
        return value(s, "msfl_cluster_iterations_total", result="success") == 1 and \
            value(s, "msfl_cluster_last_loss") is not None and value(s, "msfl_cluster_last_loss") > 0 and s
    s = wait_for(scheduler_done, 20, what="the scheduler's metrics of the ended iteration")
    assert value(s, "msfl_cluster_iteration") == 2
    assert value(s, "msfl_cluster_live_nodes", role="server") == 1
    assert value(s, "msfl_cluster_round_threshold", round="updateModel") == 2
    # as metrics.json computes them: loss weighted by data size (4, 6), accuracy by eval data size (1, 3)
    assert value(s, "msfl_cluster_last_loss") == pytest.approx((0.5 * 4 + 1.5 * 6) / 10)
    assert value(s, "msfl_cluster_last_accuracy") == pytest.approx((0.25 * 1 + 0.75 * 3) / 4)
    assert value(s, "process_resident_memory_bytes") > 0
    status, raw = get_json(sched, "/dashboard/api/overview")
    overview = json.loads(raw)
    assert status == 200 and overview["cluster"]["iteration"] == 2
    (first,) = [it for it in overview["iterations"] if it["iteration"] == 1]
    assert first["success"] is True and first["participants"] == 2
    assert first["loss"] == pytest.approx(1.1) and first["duration_ms"] >= 0


def test_metrics_path_is_configurable(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, metrics={"path": "/internal/prom"},
                           client={"http_engine": "aiohttp"})
    ((_, srv),) = start_servers(procs, tmp_path, yaml_path, 1)
    assert get_json(srv, "/metrics")[0] == 404
    assert value(scrape(srv, "/internal/prom"), "msfl_server_iteration") == 1


def test_token_guards_the_management_plane_and_calls_are_logged(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 1})
    start_servers(procs, tmp_path, yaml_path, 1)
    proc, sched = start_scheduler(procs, yaml_path, env={"MSF_MANAGE_TOKEN": TOKEN})
    for path in ("/state", "/disableFLS", "/metrics", "/dashboard/api/overview"):
        for token in (None, "wrong"):
            status, raw = get_json(sched, path, token)
            assert status == 401, path
            assert json.loads(raw) == {"code": "1", "error_message": SCHED_UNAUTHORIZED}
    assert call(sched, "state", token=TOKEN)[0] == 200
    assert get_json(sched, "/dashboard")[0] == 200            # the page itself carries no cluster data
    assert get_json(sched, "/dashboard/static/app.js")[0] == 200
    assert get_json(sched, "/metrics", TOKEN)[0] == 200
    assert call(sched, "disableFLS", {}, token=TOKEN)[1]["code"] == "0"
    line = proc.wait_line("management call POST /disableFLS", timeout=10)
    assert re.search(r"from 127\.0\.0\.1:\d+: HTTP 200 start disabling FL-Server successful\.", line), line
    proc.wait_line("refused GET /state from 127.0.0.1:", timeout=10)
    assert call(sched, "state", token=TOKEN)[1]["cluster_state"] == "CLUSTER_DISABLE"
    s = scrape(sched, token=TOKEN)
    assert value(s, "msfl_scheduler_management_calls_total", path="/disableFLS", status="200") == 1
    assert value(s, "msfl_scheduler_unauthorized_total") == 8


def test_cli_and_tools_pass_the_token(tmp_path, redis_server, fl_name, procs, monkeypatch):
    from mindspore_federated import cli

    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 1})
    start_servers(procs, tmp_path, yaml_path, 1)
    _, sched = start_scheduler(procs, yaml_path, env={"MSF_MANAGE_TOKEN": TOKEN})
    monkeypatch.delenv("MSF_MANAGE_TOKEN", raising=False)
    assert cli.main(["state", "--address", sched]) == cli.EXIT_FAILED
    assert cli.main(["state", "--address", sched, "--token", TOKEN]) == cli.EXIT_OK
    monkeypatch.setenv("MSF_MANAGE_TOKEN", TOKEN)
    assert cli.main(["state", "--address", sched]) == cli.EXIT_OK


def test_default_bind_is_loopback(tmp_path, redis_server, fl_name, procs):
    """Without --scheduler_manage_address / --scheduler_ip the REST API listens on 127.0.0.1 only."""
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name)
    proc = procs.python("scheduler", "-m", "mindspore_federated.scheduler", "--yaml_config", yaml_path,
                        "--scheduler_manage_port", str(free_port()))
    line = proc.wait_line("READY scheduler", timeout=30)
    assert re.search(r"READY scheduler 127\.0\.0\.1:\d+$", line.strip()), line
