"""Workers over HTTPS (enable_ssl, server certificate verified against the YAML's CA) and the cloud worker's
STABLE_PW_ENCRYPT masks: real servers and Redis, certificates made at test time."""
import asyncio
import os
import ssl
import threading

import numpy as np
import pytest

from mindspore_federated.client.device import Device, https_context
from mindspore_federated.config import load_config
from mindspore_federated.models import LENET5_SHAPES
from mindspore_federated.tls import worker_client_context
from mindspore_federated.worker.cloud import CloudWorker
from tests.st.test_tls_cluster import pki, start_tls_server, tls_redis, tls_yaml  # noqa: F401
from tests.utils.certs import TestCA
from tests.utils.cluster import SUCCEED, get_model, start_server, write_yaml
from tests.utils.procs import REPO
from tests.utils.secagg import pw_section

WORKER = os.path.join(REPO, "example", "hybrid_lenet", "run_worker.py")
NAMES = list(LENET5_SHAPES)


def device_iteration_over_https(http, fl_name, ca_file):
    """One device iteration (a small step, so that the worker's training stays finite); the outcome."""
    async def scenario():
        async with Device(f"https://{http}", fl_name, data_size=4, ssl_context=https_context(ca_file)) as device:
            def train(features, _plan):
                return {k: v + np.float32(0.001) for k, v in features.items()}, 0.1, 0.9
            return await asyncio.wait_for(device.run_iteration(train), 90)
    return asyncio.run(scenario())


@pytest.mark.mindspore
def test_hybrid_worker_over_https_completes_an_iteration(tmp_path, fl_name, procs, pki, tls_redis):  # noqa: F811
    yaml_path = tls_yaml(tmp_path, fl_name, pki, tls_redis, server_mode="HYBRID_TRAINING", fl_iteration_num=5)
    _, http = start_tls_server(procs, yaml_path, tmp_path / "srv")
    dump = tmp_path / "dump"
    worker = procs.python("worker", WORKER, "--yaml_config", yaml_path, "--fl_iteration_num", "1",
                          "--sync_frequency", "2", "--dump_dir", str(dump))
    worker.wait_line("READY worker worker_fl_", timeout=120)
    try:
        outcome = device_iteration_over_https(http, fl_name, pki["ca"])   # ends once the worker pushed
    except TimeoutError:
        pytest.fail(f"no model within 90 s; the worker said: {worker.output()[-3000:]}")
    assert outcome.accepted and outcome.model is not None
    assert worker.wait_exit(120) == 0, worker.output()[-3000:]
    with np.load(dump / "pushed_1.npz") as pushed:
        for name in NAMES:
            np.testing.assert_array_equal(np.asarray(outcome.model[name]).reshape(-1), pushed[name], err_msg=name)


def test_worker_link_refuses_a_server_certificate_from_another_ca(tmp_path, fl_name, procs, pki,  # noqa: F811
                                                                   tls_redis):  # noqa: F811
    yaml_path = tls_yaml(tmp_path, fl_name, pki, tls_redis)
    _, http = start_tls_server(procs, yaml_path, tmp_path / "srv")
    other = tmp_path / "other"
    other.mkdir()
    cfg = load_config(tls_yaml(other, fl_name, {**pki, "ca": TestCA("other-ca").write_pem(other / "ca.pem")},
                               tls_redis), role="worker")
    silo = CloudWorker(cfg, [http], ssl_context=worker_client_context(cfg), deadline_s=3)
    with pytest.raises(ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        silo.start_fl_job(1)
    good = CloudWorker(cfg, [http], ssl_context=worker_client_context(load_config(yaml_path, role="worker")))
    assert set(good.start_fl_job(1)) == set(NAMES)
    assert isinstance(good.link.ssl_context, ssl.SSLContext)


def test_two_cloud_workers_stable_pw_masks_cancel_in_the_aggregate(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, fl_iteration_num=5,
                           encrypt=pw_section(t=1, encrypt_type="STABLE_PW_ENCRYPT"),
                           round={"start_fl_job_threshold": 2, "update_model_ratio": 1.0})
    _, address = start_server(procs, yaml_path, tmp_path / "srv")
    cfg = load_config(yaml_path, role="worker")
    silos = [CloudWorker(cfg, [address], deadline_s=60) for _ in range(2)]
    sizes = [3, 5]
    weights, results, errors_seen = [None, None], [None, None], []

    def run(k):
        try:
            start = silos[k].start_fl_job(sizes[k])
            rng = np.random.default_rng(k)
            weights[k] = {n: (np.asarray(v, np.float32).reshape(-1)
                              + rng.standard_normal(np.asarray(v).size).astype(np.float32) * 0.1)
                          for n, v in start.items()}
            results[k] = silos[k].update_and_get_model(weights[k])
        except Exception as exc:   # reported by the assertion below
            errors_seen.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors_seen and not any(t.is_alive() for t in threads), errors_seen
    g = get_model(address, fl_name, 1)
    assert (g.retcode, g.iteration) == (SUCCEED, 2)
    for name in NAMES:
        plain = [weights[k][name].astype(np.float64) * sizes[k] for k in range(2)]
        fedavg = (plain[0] + plain[1]) / sum(sizes)
        np.testing.assert_allclose(np.asarray(g.features[name]).reshape(-1), fedavg, rtol=1e-4, atol=1e-4,
                                   err_msg=name)
        np.testing.assert_allclose(np.asarray(results[0][name]).reshape(-1), fedavg, rtol=1e-4, atol=1e-4)
        for k in range(2):   # what each silo uploaded is masked: far from its plain w·n
            upload = np.asarray(silos[k].last_upload[name], np.float64).reshape(-1)
            assert np.max(np.abs(upload - plain[k])) > 0.01, name


@pytest.mark.mindspore
def test_manager_refuses_https_without_a_ca_and_ssl_config_without_enable_ssl(tmp_path, redis_server, fl_name,
                                                                             pki):  # noqa: F811
    from mindspore import nn

    from mindspore_federated import FederatedLearningManager, SSLConfig, errors

    no_ca = write_yaml(tmp_path, redis_server.address, fl_name, enable_ssl=True,
                       ssl={"server_cert_path": pki["server"], "client_cert_path": pki["client"], "ca_cert_path": ""})
    with pytest.raises(errors.ConfigError, match="'ssl.ca_cert_path' is missing"):   # no HTTPS unverified
        FederatedLearningManager(no_ca, nn.Dense(2, 1), 1, http_server_address="127.0.0.1:1",
                                 run_mode="FEDERATED_LEARNING")
    plain = write_yaml(tmp_path / "plain", redis_server.address, fl_name)
    with pytest.raises(ValueError, match="ssl_config"):
        FederatedLearningManager(plain, nn.Dense(2, 1), 1, http_server_address="127.0.0.1:1",
                                 run_mode="FEDERATED_LEARNING", ssl_config=SSLConfig("a", "b"))
