"""client_verify.pki_verify through real server processes with certificates made at test time: signed
devices (the SDK's DeviceIdentity, the simulator) train; a forged signature, a stale timestamp, a wrong or
unknown fl_id, a chain to an unknown root and a revoked equipment certificate get the reference's replies;
missing roots refuse start-up."""
import asyncio
import re
import time

import numpy as np
import pytest

from mindspore_federated import errors
from mindspore_federated.client import Device, RetryPolicy
from mindspore_federated.client import messages as m
from mindspore_federated.exit_codes import ExitCode
from mindspore_federated.server.replies import OUT_OF_TIME, REQUEST_ERROR
from tests.utils.certs import DevicePKI
from tests.utils.cluster import post, start_server, wait_model, write_yaml
from tests.utils.redis_server import free_port


def now_text(shift_ms=0):
    return str(int(time.time() * 1000) + shift_ms)


@pytest.fixture(scope="module")
def pki():
    return DevicePKI()


@pytest.fixture(params=["fast", "aiohttp"])
def server(tmp_path, redis_server, fl_name, procs, pki, request):
    revoked = pki.identity("revoked")
    first, second = pki.write_roots(tmp_path)
    crl = pki.write_crl(tmp_path / "equip.crl", [revoked])
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name,
                           client_verify={"pki_verify": True, "root_first_ca_path": first,
                                          "root_second_ca_path": second, "equip_crl_path": crl,
                                          "replay_attack_time_diff": 60000},
                           client={"http_engine": request.param})
    _, address = start_server(procs, yaml_path, tmp_path / "srv")
    return address, revoked


def start(address, fl_name, identity, fl_id=None, timestamp=None, sign_data=None):
    fl_id = fl_id or identity.fl_id
    timestamp = timestamp or now_text()
    fields = identity.start_fields(fl_id, timestamp)
    if sign_data is not None:
        fields["sign_data"] = sign_data
    body = m.build_start_fl_job(fl_name, fl_id, 1, 10, **fields)
    status, body = post(address, "startFLJob", body)
    assert status == 200
    return m.parse_start_fl_job(body)


def upload(address, fl_name, identity, features, timestamp=None, signature=None, fl_id=None):
    timestamp = timestamp or now_text()
    signature = signature if signature is not None else identity.signature(timestamp, 1)
    body = m.build_update_model(fl_name, fl_id or identity.fl_id, 1, features, timestamp=timestamp,
                                signature=signature)
    status, reply = post(address, "updateModel", body)
    assert status == 200
    return m.parse_update_model(reply)


def test_signed_devices_train_and_forgeries_get_the_reference_replies(server, fl_name, pki):
    address, revoked = server
    good, other = pki.identity("good"), pki.identity("other")
    # startFLJob refusals (nothing is admitted, so the iteration still needs its two devices)
    unsigned = m.build_start_fl_job(fl_name, good.fl_id, 1, 10)
    plain = m.parse_start_fl_job(post(address, "startFLJob", unsigned)[1])
    assert plain.text == errors.FLJOB_VERIFY                               # no certificates at all
    refused = {
        "bad signature": start(address, fl_name, good, sign_data=b"\x07" * 256),
        "stale timestamp": start(address, fl_name, good, timestamp=now_text(-120000)),
        "fl_id of another device": start(address, fl_name, good, fl_id=other.fl_id),
        "unknown root": start(address, fl_name, DevicePKI("stranger").identity("x")),
        "revoked": start(address, fl_name, revoked),
    }
    for what, reply in refused.items():
        assert (reply.retcode, reply.reason) == (REQUEST_ERROR, errors.FLJOB_SIGN), what
    assert start(address, fl_name, good, sign_data=b"").reason == errors.FLJOB_SIGN_EMPTY
    # updateModel before startFLJob: no attestation stored
    features = {"w": np.zeros(1, np.float32)}
    early = upload(address, fl_name, good, features)
    assert (early.retcode, early.reason) == (OUT_OF_TIME, errors.UPDATE_SIGN_STALE.format(fl_id=good.fl_id))

    # two signed devices run the iteration through the SDK; `good` first sends forged and stale uploads
    async def train_both():
        policy = RetryPolicy(http_timeout=10, step_timeout=30, iteration_timeout=60)
        servers = f"http://{address}"
        forged, started = {}, {}

        def train(features, _plan):
            if not forged:
                model = started["model"] = {name: np.array(v) for name, v in features.items()}
                forged["bad"] = upload(address, fl_name, good, model, signature=b"\x01" * 256)
                forged["stale"] = upload(address, fl_name, good, model, timestamp=now_text(-120000))
                wrong_key = other.signature(now_text(), 1)
                forged["other"] = upload(address, fl_name, good, model, signature=wrong_key)
            return {name: np.array(v) + np.float32(0.5) for name, v in features.items()}

        async with Device(servers, fl_name, identity=good, policy=policy) as a, \
                Device(servers, fl_name, identity=other, policy=policy) as b:
            return await asyncio.gather(a.run_iteration(train, fetch_model=False),
                                        b.run_iteration(train, fetch_model=False)), forged, started.get("model")

    outcomes, forged, start_model = asyncio.run(train_both())
    assert all(o.accepted for o in outcomes)
    assert (forged["bad"].retcode, forged["bad"].reason) == (
        REQUEST_ERROR, errors.UPDATE_SIGN_FAILED.format(fl_id=good.fl_id))
    assert (forged["other"].retcode, forged["other"].reason) == (
        REQUEST_ERROR, errors.UPDATE_SIGN_FAILED.format(fl_id=good.fl_id))
    assert (forged["stale"].retcode, forged["stale"].reason) == (
        OUT_OF_TIME, errors.UPDATE_SIGN_STALE.format(fl_id=good.fl_id))
    # getModel of iteration 1 is not ready until iteration 1 is aggregated; then it answers iteration 2 with
    # the average of the two signed uploads (start model + 0.5): none of the forged uploads was counted
    aggregated = wait_model(address, fl_name, 1, timeout=30)
    assert aggregated.iteration == 2
    for name, start_value in start_model.items():
        np.testing.assert_allclose(aggregated.features[name], start_value + np.float32(0.5), rtol=1e-6)


def test_simulator_devices_sign_with_identities_from_an_equipment_ca(tmp_path, redis_server, fl_name, procs,
                                                                     pki):
    first, second = pki.write_roots(tmp_path)
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, fl_iteration_num=10,
                           round={"start_fl_job_threshold": 4, "update_model_ratio": 1.0},
                           client_verify={"pki_verify": True, "root_first_ca_path": first,
                                          "root_second_ca_path": second})
    _, address = start_server(procs, yaml_path, tmp_path / "srv")
    sim = procs.python("simulator", "-m", "mindspore_federated.client.simulator",
                       "--servers", f"http://{address}", "--fl-name", fl_name, "--devices", "4",
                       "--iterations", "2", "--retry-delay", "0.05", "--iteration-timeout", "60",
                       "--no-progress", "--equip-ca", *pki.write_equip_ca(tmp_path))
    sim.wait_line("iteration=2 ", timeout=120)
    assert sim.wait_exit(10) == 0, "\n".join(sim.lines)
    summaries = [dict(re.findall(r"(\w+)=(\S+)", line))
                 for line in sim.lines if line.startswith("iteration=")]
    assert [(s["accepted"], s["failures"], s["mismatched"]) for s in summaries] == [("4", "0", "0")] * 2


@pytest.mark.parametrize("missing", ["root_first_ca_path", "root_second_ca_path", "equip_crl_path"])
def test_missing_pki_files_refuse_start(tmp_path, redis_server, fl_name, procs, pki, missing):
    first, second = pki.write_roots(tmp_path)
    paths = {"root_first_ca_path": first, "root_second_ca_path": second,
             "equip_crl_path": pki.write_crl(tmp_path / "equip.crl", [])}
    paths[missing] = str(tmp_path / "absent.pem")
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name,
                           client_verify={"pki_verify": True, **paths})
    proc = procs.python("server", "-m", "mindspore_federated.server", "--yaml_config", yaml_path,
                        "--http_server_address", f"127.0.0.1:{free_port()}", "--checkpoint_dir",
                        str(tmp_path / "fl_ckpt"), cwd=str(tmp_path))
    assert proc.wait_exit(60) == ExitCode.SERVER_START_FAILED  # as for unusable TLS material
    text = errors.PKI_FILE_MISSING.format(key="client_verify." + missing, path=tmp_path / "absent.pem")
    assert text in proc.output()
    assert "READY" not in proc.output()
