"""Every feature a configuration can ask for is built now (server/capabilities.py NOT_BUILT is empty): servers
asking for the privacy modes start, whether the YAML asks for them or the cluster's hyper-params in Redis do.
(A feature added later without its implementation gets a NOT_BUILT row and a refusal test here again.)"""
import json

import pytest
import redis

from mindspore_federated.config import load_config
from mindspore_federated.state.keys import Keys
from tests.utils.cluster import start_server, write_yaml

PW = {"share_secrets_ratio": 1.0, "cipher_time_window": 3000, "reconstruct_secrets_threshold": 1}
def test_dp_encrypt_is_built(tmp_path, redis_server, fl_name, procs):
    """DP_ENCRYPT is parameter distribution only (noise is added on devices): the server starts."""
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, encrypt={"encrypt_type": "DP_ENCRYPT"})
    proc, _ = start_server(procs, yaml_path, tmp_path / "srv")
    proc.stop()


@pytest.mark.parametrize("encrypt_type", ["PW_ENCRYPT", "STABLE_PW_ENCRYPT", "SIGNDS"])
def test_encryption_is_built(tmp_path, redis_server, fl_name, procs, encrypt_type):
    """Secure aggregation and SignDS are built (server/secagg/): the server starts (tests/st/test_secagg*.py)."""
    encrypt = {"encrypt_type": encrypt_type, **({"pw_encrypt": PW} if "PW" in encrypt_type else {})}
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, encrypt=encrypt)
    proc, _ = start_server(procs, yaml_path, tmp_path / "srv")
    proc.stop()


def test_cluster_hyper_params_asking_for_secure_aggregation_win_over_the_yaml(tmp_path, redis_server, fl_name,
                                                                             procs):
    """The cluster's hyper-params win over the YAML: a plain YAML joining a PW_ENCRYPT cluster runs PW_ENCRYPT
    (built now; enable_ssl and pki_verify, still not built, must match the YAML's anyway)."""
    from tests.utils.cluster import start_job

    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name)
    keys = Keys(fl_name)
    hp = load_config(yaml_path, role="server").hyper_params()
    hp.update(encrypt_type="PW_ENCRYPT", cipher_time_window=3000, reconstruct_secrets_threshold=1)
    client = redis.Redis(host="127.0.0.1", port=int(redis_server.address.rsplit(":", 1)[1]))
    try:
        client.set(keys.instance_name, "i_declared_elsewhere", ex=600)
        client.set(keys.hyper_params("i_declared_elsewhere"), json.dumps(hp), ex=600)
    finally:
        client.close()
    proc, address = start_server(procs, yaml_path, tmp_path / "srv")
    plan = start_job(address, fl_name, "dev").fl_plan
    assert plan.encrypt_type == "PW_ENCRYPT" and len(plan.pw_params.prime) == 33
    proc.stop()
