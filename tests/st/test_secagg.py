"""PW_ENCRYPT end to end: real redis-server, real server processes, our SDK as the devices. The model of an
iteration equals the plain FedAvg of the devices whose updates count, whoever drops out where."""
import asyncio

import numpy as np

from tests.utils.cluster import start_server, write_yaml
from tests.utils.multi import ENTRY, Registry
from tests.utils.secagg import fedavg, pw_section, run_devices
from tests.utils.wait import wait_for

START = {"w1": np.arange(6, dtype=np.float32), "b1": np.zeros(3, np.float32), "frozen": np.full(4, 7.0, np.float32)}


def _cluster(tmp_path, redis_server, fl_name, procs, servers=1, threshold=4, ratio=1.0, t=2, window_ms=20000,
             **extra):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, fl_iteration_num=10,
                           round={"start_fl_job_threshold": threshold, "update_model_ratio": ratio,
                                  "start_fl_job_time_window": 30000, "update_model_time_window": 30000,
                                  "global_iteration_time_window": 90000},
                           encrypt=pw_section(t=t, window_ms=window_ms), **extra)
    return [f"http://{start_server(procs, yaml_path, tmp_path / f'srv{i}', name=f'server{i}', entry=ENTRY)[1]}"
            for i in range(servers)]


def _assert_fedavg(outcome, members, sizes):
    expected = fedavg(START, members, sizes)
    for name in ("w1", "b1"):
        np.testing.assert_allclose(outcome.model[name], expected[name], rtol=1e-4, atol=1e-4, err_msg=name)
    np.testing.assert_array_equal(outcome.model["frozen"], START["frozen"])  # require_aggr=False: kept


def test_pw_one_server_no_dropouts(tmp_path, redis_server, fl_name, procs):
    servers = _cluster(tmp_path, redis_server, fl_name, procs)
    sizes = [3, 5, 7, 11]
    outcomes = asyncio.run(run_devices(servers, fl_name, sizes))
    assert all(o.accepted and o.model_iteration == 2 for o in outcomes), outcomes
    rounds = [name for name, _ in outcomes[0].retcodes]
    assert [r for r in ("exchangeKeys", "getKeys", "shareSecrets", "getSecrets", "updateModel", "getClientList",
                        "reconstructSecrets") if r in rounds] == list(dict.fromkeys(
                            r for r in rounds if r not in ("startFLJob", "getModel")))
    _assert_fedavg(outcomes[0], range(4), sizes)


def test_pw_two_servers_dropouts_before_upload(tmp_path, redis_server, fl_name, procs):
    servers = _cluster(tmp_path, redis_server, fl_name, procs, servers=2, threshold=5, ratio=0.6)
    sizes = [2, 4, 6, 8, 10]
    outcomes = asyncio.run(run_devices(servers, fl_name, sizes, drop_at={1: "getSecrets", 3: "getSecrets"}))
    assert [o.dropped for o in outcomes] == [None, "getSecrets", None, "getSecrets", None]
    for o in (outcomes[0], outcomes[2], outcomes[4]):
        _assert_fedavg(o, [0, 2, 4], sizes)
    assert {r.server for o in outcomes for r in o.requests} == set(servers)   # rounds spread over both


def test_pw_dropout_after_upload_still_counts(tmp_path, redis_server, fl_name, procs):
    servers = _cluster(tmp_path, redis_server, fl_name, procs, servers=2, threshold=4, t=2)
    sizes = [1, 2, 3, 4]
    outcomes = asyncio.run(run_devices(servers, fl_name, sizes, drop_at={2: "updateModel"}))
    assert outcomes[2].dropped == "updateModel" and outcomes[2].accepted
    _assert_fedavg(outcomes[0], range(4), sizes)


def test_pw_too_few_survivors_fail_the_iteration_and_the_next_trains(tmp_path, redis_server, fl_name, procs):
    from mindspore_federated import errors

    servers = _cluster(tmp_path, redis_server, fl_name, procs, threshold=3, t=2, window_ms=3000)
    sizes = [1, 2, 3]
    first = asyncio.run(run_devices(servers, fl_name, sizes, drop_at={0: "updateModel"}))
    registry = Registry(redis_server, fl_name)
    try:
        wait_for(lambda: registry.status().get("iterationNum") == "2", timeout=30)
        status = registry.status()
        assert status["lastIterationSuccess"] == "0"
        # two devices ask for the client list and return shares: both rounds stay below their threshold (3)
        assert status["lastIterationResult"] in {errors.ITER_ROUND_TIMEOUT.format(name=name)
                                                 for name in ("getClientList", "reconstructSecrets")}
        np.testing.assert_array_equal(first[1].model["w1"], START["w1"])   # the failed iteration kept the model
        second = asyncio.run(run_devices(servers, fl_name, sizes, prefix="next"))
        assert all(o.model_iteration == 3 for o in second)
        _assert_fedavg(second[0], range(3), sizes)
    finally:
        registry.close()
