"""The other privacy modes end to end with real server processes: STABLE_PW_ENCRYPT (pairwise masks that cancel
in the sum), SIGNDS (exact reconstruction against a hand computation), DP_ENCRYPT (parameters in the plan)."""
import asyncio

import numpy as np

from mindspore_federated import errors
from mindspore_federated.client import messages as m
from tests.utils.cluster import SUCCEED, post, start_job, start_server, wait_model, write_yaml
from tests.utils.multi import ENTRY
from tests.utils.secagg import fedavg, pw_section, run_devices

START = {"w1": np.arange(6, dtype=np.float32), "b1": np.zeros(3, np.float32), "frozen": np.full(4, 7.0, np.float32)}


def _servers(tmp_path, redis_server, fl_name, procs, encrypt, threshold=2, count=1, ratio=1.0, **extra):
    extra.setdefault("fl_iteration_num", 10)
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, encrypt=encrypt,
                           round={"start_fl_job_threshold": threshold, "update_model_ratio": ratio}, **extra)
    return [start_server(procs, yaml_path, tmp_path / f"srv{i}", name=f"server{i}", entry=ENTRY)[1]
            for i in range(count)]


def test_stable_pw_two_clients_masks_cancel(tmp_path, redis_server, fl_name, procs):
    addresses = _servers(tmp_path, redis_server, fl_name, procs,
                         pw_section(t=1, encrypt_type="STABLE_PW_ENCRYPT"), count=2)
    sizes = [3, 9]
    outcomes = asyncio.run(run_devices([f"http://{a}" for a in addresses], fl_name, sizes))
    rounds = {name for o in outcomes for name, _ in o.retcodes}
    assert {"exchangeKeys", "getKeys"} <= rounds and not rounds & {"shareSecrets", "reconstructSecrets"}
    expected = fedavg(START, [0, 1], sizes)
    for name in ("w1", "b1"):
        np.testing.assert_allclose(outcomes[0].model[name], expected[name], rtol=1e-4, atol=1e-4)
    # the shared secrets rounds are not served under STABLE_PW_ENCRYPT
    status, _ = post(addresses[0], "shareSecrets", b"\0" * 16)
    assert status == 404


def _signds_update(address, fl_name, fl_id, sign, index, names=("b1", "frozen", "w1")):
    body = m.build_update_model(fl_name, fl_id, 1, {n: np.zeros(0, np.float32) for n in names}, sign=sign,
                                index_array=index)
    status, reply = post(address, "updateModel", body)
    assert status == 200
    return m.parse_update_model(reply)


def test_signds_reconstruction_matches_a_hand_computation(tmp_path, redis_server, fl_name, procs):
    lr = 0.5
    (address,) = _servers(tmp_path, redis_server, fl_name, procs,
                          {"encrypt_type": "SIGNDS", "signds": {"sign_global_lr": lr}})
    plan = start_job(address, fl_name, "a", data_size=2).fl_plan
    assert plan.encrypt_type == "SIGNDS" and plan.ds_params.sign_global_lr == lr
    start_job(address, fl_name, "b", data_size=6)
    # bad index lists first: none, too many -> the feature-map verification text
    for index in ([], list(range(101))):
        reply = _signds_update(address, fl_name, "a", 1, index)
        assert reply.retcode == 400 and reply.reason.startswith(errors.SIGNDS_INDEX.split("{")[0])
    # request order b1 (3), frozen (4), w1 (6): global indices 0..12
    assert _signds_update(address, fl_name, "a", 1, [0, 4, 8]).retcode == SUCCEED
    assert _signds_update(address, fl_name, "b", -1, [2, 8, 12], names=("b1", "frozen", "w1")).retcode == SUCCEED
    model = wait_model(address, fl_name, 1, timeout=20).model()
    flat_a = np.concatenate([START["b1"], START["frozen"], START["w1"]])
    flat_b = flat_a.copy()
    flat_a[[0, 4, 8]] += lr
    flat_b[[2, 8, 12]] -= lr
    avg = (2 * flat_a + 6 * flat_b) / 8
    np.testing.assert_allclose(model["b1"], avg[0:3], rtol=1e-6)
    np.testing.assert_allclose(model["w1"], avg[7:13], rtol=1e-6)
    np.testing.assert_array_equal(model["frozen"], START["frozen"])   # require_aggr=False: kept


def test_dp_encrypt_parameters_are_in_the_plan(tmp_path, redis_server, fl_name, procs):
    dp = {"dp_eps": 20.0, "dp_delta": 0.05, "dp_norm_clip": 2.5}
    (address,) = _servers(tmp_path, redis_server, fl_name, procs, {"encrypt_type": "DP_ENCRYPT", "dp_encrypt": dp})
    plan = start_job(address, fl_name, "a").fl_plan
    assert plan.encrypt_type == "DP_ENCRYPT"
    assert (plan.dp_params.dp_eps, plan.dp_params.dp_delta, plan.dp_params.dp_norm_clip) == pytest_approx(dp)


def pytest_approx(dp):
    import pytest

    return pytest.approx((dp["dp_eps"], dp["dp_delta"], dp["dp_norm_clip"]))


def test_simulator_pw_with_dropouts(tmp_path, redis_server, fl_name, procs):
    import re

    addresses = _servers(tmp_path, redis_server, fl_name, procs, pw_section(t=3), threshold=6, count=2, ratio=0.6)
    sim = procs.python("simulator", "-m", "mindspore_federated.client.simulator",
                       "--servers", ",".join(f"http://{a}" for a in addresses), "--fl-name", fl_name,
                       "--devices", "6", "--iterations", "2", "--delta", "0.25", "--retry-delay", "0.05",
                       "--iteration-timeout", "60", "--no-progress", "--encrypt", "PW_ENCRYPT",
                       "--dropouts", "2", "--drop-at", "getSecrets")
    sim.wait_line("iteration=2 ", timeout=120)
    assert sim.wait_exit(10) == 0, "\n".join(sim.lines)
    for line in (x for x in sim.lines if x.startswith("iteration=")):
        fields = dict(re.findall(r"(\w+)=(\S+)", line))
        assert (fields["accepted"], fields["dropped"], fields["failures"], fields["mismatched"]) == (
            "4", "2", "0", "0"), line
