"""PW_ENCRYPT with client_verify.pki_verify through a real server process, certificates made at test time:
signed SDK devices run every cipher round (the list-signature rounds too) and the model is the FedAvg; a
forged exchangeKeys signature and a stale getKeys timestamp get the reference's replies."""
import asyncio
import os
import time

import numpy as np
import pytest

from mindspore_federated import errors
from mindspore_federated.client import messages as m
from mindspore_federated.client.device import Device
from mindspore_federated.client.messages import cipher as cw
from mindspore_federated.server.replies import OUT_OF_TIME, REQUEST_ERROR, SUCCEED
from tests.utils.certs import DevicePKI
from tests.utils.cluster import post, start_server, write_yaml
from tests.utils.multi import ENTRY
from tests.utils.secagg import fedavg, policy, pw_section, trained

START = {"w1": np.arange(6, dtype=np.float32), "b1": np.zeros(3, np.float32), "frozen": np.full(4, 7.0, np.float32)}
CIPHER_ORDER = ("exchangeKeys", "getKeys", "shareSecrets", "getSecrets", "updateModel", "getClientList",
                "pushListSign", "getListSign", "reconstructSecrets")


@pytest.fixture(scope="module")
def pki():
    return DevicePKI()


def _server(tmp_path, redis_server, fl_name, procs, pki, threshold):
    first, second = pki.write_roots(tmp_path)
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, fl_iteration_num=10,
                           round={"start_fl_job_threshold": threshold, "update_model_ratio": 1.0,
                                  "start_fl_job_time_window": 30000, "update_model_time_window": 30000,
                                  "global_iteration_time_window": 90000},
                           encrypt=pw_section(t=2, window_ms=20000),
                           client_verify={"pki_verify": True, "root_first_ca_path": first,
                                          "root_second_ca_path": second, "replay_attack_time_diff": 60000})
    return start_server(procs, yaml_path, tmp_path / "srv", entry=ENTRY)[1]


def _now(shift_ms=0):
    return str(int(time.time() * 1000) + shift_ms)


async def _train(address, fl_name, identities, sizes):
    devices = [Device([f"http://{address}"], fl_name, data_size=n, policy=policy(), identity=ident)
               for ident, n in zip(identities, sizes)]
    try:
        return await asyncio.gather(*(d.run_iteration(trained(i)) for i, d in enumerate(devices)))
    finally:
        for d in devices:
            await d.close()


def test_signed_devices_run_every_cipher_round_and_the_model_is_fedavg(tmp_path, redis_server, fl_name, procs,
                                                                       pki):
    address = _server(tmp_path, redis_server, fl_name, procs, pki, threshold=4)
    identities = [pki.identity(f"pw{i}") for i in range(4)]
    # devices sorted by fl_id, so device i is trained(i) whatever the ids
    identities.sort(key=lambda ident: ident.fl_id)
    sizes = [3, 5, 7, 11]
    outcomes = asyncio.run(_train(address, fl_name, identities, sizes))
    assert all(o.accepted and o.model_iteration == 2 for o in outcomes), outcomes
    rounds = list(dict.fromkeys(name for name, _ in outcomes[0].retcodes if name not in ("startFLJob", "getModel")))
    assert rounds == list(CIPHER_ORDER)
    expected = fedavg(START, range(4), sizes)
    for name in ("w1", "b1"):
        np.testing.assert_allclose(outcomes[0].model[name], expected[name], rtol=1e-4, atol=1e-4, err_msg=name)
    np.testing.assert_array_equal(outcomes[0].model["frozen"], START["frozen"])


def _cipher(address, round_name, body):
    status, reply = post(address, round_name, body)
    assert status == 200
    return m.PARSERS[round_name](reply)


def test_forged_and_stale_cipher_requests_get_the_reference_replies(tmp_path, redis_server, fl_name, procs, pki):
    address = _server(tmp_path, redis_server, fl_name, procs, pki, threshold=4)
    device = pki.identity("forger")
    timestamp = _now()
    started = m.parse_start_fl_job(post(address, "startFLJob", m.build_start_fl_job(
        fl_name, device.fl_id, 1, 10, **device.start_fields(device.fl_id, timestamp)))[1])
    assert started.retcode == SUCCEED, started.reason
    c_pk, s_pk, iv, salt = os.urandom(32), os.urandom(32), os.urandom(16), os.urandom(32)

    def exchange(signature, ts):
        return _cipher(address, "exchangeKeys", cw.build_exchange_keys(
            device.fl_id, 1, c_pk, s_pk, iv, iv, salt, timestamp=ts, signature=signature))

    ts = _now()
    forged = exchange(device.signature(ts, 1, s_pk, c_pk), ts)      # the keys signed in the wrong order
    assert (forged.retcode, forged.reason) == (REQUEST_ERROR, errors.SIGN_FAILED)
    unsigned = exchange(None, ts)
    assert (unsigned.retcode, unsigned.reason) == (REQUEST_ERROR, errors.SIGN_FAILED)
    ts = _now()
    accepted = exchange(device.signature(ts, 1, c_pk, s_pk), ts)
    assert accepted.retcode == SUCCEED, accepted.reason

    stale_ts = _now(-120000)
    stale = _cipher(address, "getKeys", cw.build_get_keys(device.fl_id, 1, timestamp=stale_ts,
                                                         signature=device.signature(stale_ts, 1)))
    assert stale.retcode == OUT_OF_TIME  # ReturnExchangeKeys has no reason field
    ts = _now()
    fresh = _cipher(address, "getKeys", cw.build_get_keys(device.fl_id, 1, timestamp=ts,
                                                         signature=device.signature(ts, 1)))
    assert fresh.retcode != OUT_OF_TIME  # signature and clock fine: the round itself answers (not ready yet)
