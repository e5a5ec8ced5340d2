"""The cloud (cross-silo) worker: MindSpore silos with FederatedLearningManager in FEDERATED_LEARNING mode."""
import os
import re

import numpy as np
import pytest

from tests.utils.cluster import SUCCEED, get_model, start_server, write_yaml
from tests.utils.procs import REPO
from tests.utils.secagg import pw_section

pytestmark = pytest.mark.mindspore
SILO = os.path.join(REPO, "example", "cross_silo_lenet", "run_silo.py")


@pytest.mark.parametrize("encrypt", [None, pw_section(t=1, encrypt_type="STABLE_PW_ENCRYPT")],
                         ids=["NOT_ENCRYPT", "STABLE_PW_ENCRYPT"])
def test_two_silos_share_one_model_per_iteration(tmp_path, redis_server, fl_name, procs, encrypt):
    extra = {"encrypt": encrypt} if encrypt else {}
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, fl_iteration_num=5,
                           round={"start_fl_job_threshold": 2, "update_model_ratio": 1.0}, **extra)
    _, address = start_server(procs, yaml_path, tmp_path / "srv")
    silos = [procs.python(f"silo{k}", SILO, "--yaml_config", yaml_path, "--http_server_address", address,
                          "--silo", str(k), "--silos", "2", "--fl_iteration_num", "2", "--sync_frequency", "2")
             for k in (0, 1)]
    for silo in silos:
        assert silo.wait_exit(240) == 0, silo.output()[-3000:]
    curves = [re.findall(r"ITERATION (\d+) silo \d accuracy ([0-9.]+)", s.output()) for s in silos]
    assert [it for it, _ in curves[0]] == ["1", "2"]
    assert curves[0] == curves[1]   # after each sync both silos hold the same global model
    g = get_model(address, fl_name, 2)
    assert (g.retcode, g.iteration) == (SUCCEED, 3)
    assert all(np.all(np.isfinite(v)) for v in g.features.values())


def test_cloud_worker_refuses_encrypt_types_other_than_not_encrypt_and_stable_pw(tmp_path, redis_server, fl_name):
    """Only NOT_ENCRYPT and STABLE_PW_ENCRYPT are the cloud worker's (spec §9.3); the others are refused."""
    from mindspore_federated.config import load_config
    from mindspore_federated.worker.cloud import CloudWorker

    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, encrypt={
        "encrypt_type": "PW_ENCRYPT", "pw_encrypt": {"share_secrets_ratio": 1.0, "cipher_time_window": 3000,
                                                     "reconstruct_secrets_threshold": 1}})
    with pytest.raises(ValueError, match="the YAML asks for PW_ENCRYPT"):
        CloudWorker(load_config(yaml_path, role="worker"), ["127.0.0.1:1"])


@pytest.mark.timeout(1800)
def test_cross_silo_example_beats_every_silo_alone(tmp_path):
    """example/cross_silo_lenet/run.py: three non-IID silos learning together end above the best silo trained
    alone for the same steps (a silo alone sees 4-5 of the 10 classes, so it stays near 0.5)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, os.path.join(REPO, "example", "cross_silo_lenet", "run.py"),
                          "--fl_iteration_num", "12", "--workdir", str(tmp_path)],
                         env={**os.environ, "PYTHONPATH": REPO}, capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    federated, best = map(float, re.search(r"federated ([0-9.]+) vs best single silo ([0-9.]+)",
                                           out.stdout).groups())
    assert federated > best
