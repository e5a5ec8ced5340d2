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


def test_one_prime_per_cluster_across_servers_and_restarts(tmp_path, redis_server, fl_name, procs):
    from tests.utils.cluster import start_job

    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, encrypt=pw_section(),
                           round={"start_fl_job_threshold": 4, "update_model_ratio": 1.0})
    first, a = start_server(procs, yaml_path, tmp_path / "a", name="a", entry=ENTRY)
    _, b = start_server(procs, yaml_path, tmp_path / "b", name="b", entry=ENTRY)
    primes = {start_job(addr, fl_name, f"dev-{addr}").fl_plan.pw_params.prime for addr in (a, b)}
    assert len(primes) == 1 and len(next(iter(primes))) == 33
    first.kill()
    _, again = start_server(procs, yaml_path, tmp_path / "a2", name="a2", entry=ENTRY)
    assert start_job(again, fl_name, "dev-restarted").fl_plan.pw_params.prime in primes


def test_a_server_killed_during_the_cipher_rounds_never_yields_a_wrong_model(tmp_path, redis_server, fl_name,
                                                                              procs):
    import threading

    from mindspore_federated.state.keys import Keys
    from tests.utils.cluster import get_model

    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, fl_iteration_num=10, encrypt=pw_section(t=2),
                           round={"start_fl_job_threshold": 4, "update_model_ratio": 1.0,
                                  "start_fl_job_time_window": 8000, "update_model_time_window": 8000,
                                  "global_iteration_time_window": 20000})
    victim, a = start_server(procs, yaml_path, tmp_path / "a", name="a", entry=ENTRY)
    _, b = start_server(procs, yaml_path, tmp_path / "b", name="b", entry=ENTRY)
    sizes = [1, 2, 3, 4]
    registry = Registry(redis_server, fl_name)
    keys = Keys(fl_name)

    def kill_during_shares():
        wait_for(lambda: int(registry.r.hget(keys.count(registry.inst, 1), "shareSecrets") or 0) >= 1, 60)
        victim.kill()
    killer = threading.Thread(target=kill_during_shares)
    killer.start()
    try:
        first = asyncio.run(run_devices([f"http://{a}", f"http://{b}"], fl_name, sizes, timeout=60, errors=True))
        killer.join(60)
        first = [o for o in first if not isinstance(o, Exception)]
        assert first, "no device finished its iteration"
        current = int(registry.status()["iterationNum"])
        previous = dict(START)
        for k in range(1, current):   # every model served: unchanged (failed) or the FedAvg of its uploads
            uploaded = sorted(int(f[3:]) for f in registry.r.smembers(keys.fl_set(registry.inst, k, "updateModel")))
            model = get_model(b, fl_name, k).model()
            unchanged = all(np.allclose(model[n], previous[n]) for n in ("w1", "b1"))
            if not unchanged:
                expected = fedavg(previous, uploaded, sizes)
                for name in ("w1", "b1"):
                    np.testing.assert_allclose(model[name], expected[name], rtol=1e-4, atol=1e-4)
            previous = {**START, "w1": np.array(model["w1"]), "b1": np.array(model["b1"])}
        # the cluster trains on with the surviving server
        after = asyncio.run(run_devices([f"http://{b}"], fl_name, sizes, prefix="aft", timeout=60))
        assert all(o.accepted for o in after)
        expected = fedavg(previous, range(4), sizes)
        for name in ("w1", "b1"):
            np.testing.assert_allclose(after[0].model[name], expected[name], rtol=1e-4, atol=1e-4)
    finally:
        registry.close()


def test_devices_whose_shares_come_late_keep_their_upload(tmp_path, redis_server, fl_name, procs):
    """t = 2: the iteration ends at the third reconstructSecrets; the other uploaders, told OutOfTime by the
    next iteration, do not restart: their update counted and they fetch the new model."""
    servers = _cluster(tmp_path, redis_server, fl_name, procs, threshold=8, t=2)
    sizes = [1, 2, 3, 4, 5, 6, 7, 8]
    outcomes = asyncio.run(run_devices(servers, fl_name, sizes, retry_delay=0.5, train_s=0.2))  # staggered uploads
    assert any(r == ("getClientList", 300) or r == ("reconstructSecrets", 300) for o in outcomes for r in o.retcodes)
    assert all(o.accepted and o.restarts == 0 and o.model_iteration == 2 for o in outcomes), \
        [(o.restarts, o.model_iteration) for o in outcomes]
    _assert_fedavg(outcomes[-1], range(8), sizes)


def test_repeated_cipher_requests_as_after_lost_replies(tmp_path, redis_server, fl_name, procs):
    """Every cipher request sent twice (the first reply lost): the server takes each once, answers the repeat
    with success, and the model is the FedAvg."""
    from mindspore_federated.client import device as device_module

    servers = _cluster(tmp_path, redis_server, fl_name, procs, servers=2, threshold=3, t=2)
    original = device_module.Device.request
    repeated = []

    async def twice(self, round_name, body, **kwargs):
        if round_name in ("exchangeKeys", "shareSecrets", "reconstructSecrets", "getKeys", "getSecrets"):
            await original(self, round_name, body, **kwargs)
            repeated.append(round_name)
        return await original(self, round_name, body, **kwargs)

    device_module.Device.request = twice
    try:
        sizes = [2, 3, 4]
        outcomes = asyncio.run(run_devices(servers, fl_name, sizes))
    finally:
        device_module.Device.request = original
    assert {"exchangeKeys", "shareSecrets", "reconstructSecrets"} <= set(repeated)
    assert all(o.accepted and o.restarts == 0 for o in outcomes)
    _assert_fedavg(outcomes[0], range(3), sizes)
