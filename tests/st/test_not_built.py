"""A server asked for a feature this build does not implement yet refuses to start (exit CONFIG_ERROR) and
names it, whether the YAML asks for it or the cluster's hyper-params in Redis do."""
import json

import pytest
import redis

from mindspore_federated import errors
from mindspore_federated.config import load_config
from mindspore_federated.exit_codes import ExitCode
from mindspore_federated.server.capabilities import NOT_BUILT
from mindspore_federated.state.keys import Keys
from tests.utils.cluster import start_server, write_yaml
from tests.utils.redis_server import free_port

PW = {"share_secrets_ratio": 1.0, "cipher_time_window": 3000, "reconstruct_secrets_threshold": 1}
NOT_BUILT_CONFIGS = {
    "PW_ENCRYPT": {"encrypt": {"encrypt_type": "PW_ENCRYPT", "pw_encrypt": PW}},
    "STABLE_PW_ENCRYPT": {"encrypt": {"encrypt_type": "STABLE_PW_ENCRYPT", "pw_encrypt": PW}},
    "SIGNDS": {"encrypt": {"encrypt_type": "SIGNDS"}},
}
EXPECTED = {
    "PW_ENCRYPT": NOT_BUILT["encrypt.encrypt_type"]["PW_ENCRYPT"],
    "STABLE_PW_ENCRYPT": NOT_BUILT["encrypt.encrypt_type"]["STABLE_PW_ENCRYPT"],
    "SIGNDS": NOT_BUILT["encrypt.encrypt_type"]["SIGNDS"],
}


def _exit_of_refused_server(procs, name, yaml_path, workdir):
    proc = procs.python(name, "-m", "mindspore_federated.server", "--yaml_config", yaml_path,
                        "--http_server_address", f"127.0.0.1:{free_port()}", "--checkpoint_dir",
                        str(workdir / "fl_ckpt"), cwd=str(workdir))
    proc.wait_line("FAILED server: Not built yet: ", timeout=60)
    return proc, proc.wait_exit(30)


@pytest.mark.parametrize("feature", sorted(NOT_BUILT_CONFIGS))
def test_server_refuses_what_is_not_built(tmp_path, redis_server, fl_name, procs, feature):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name,
                           **NOT_BUILT_CONFIGS[feature])
    proc, code = _exit_of_refused_server(procs, "server_" + feature.lower(), yaml_path, tmp_path)
    assert code == ExitCode.CONFIG_ERROR
    assert EXPECTED[feature] in proc.output()
    assert "READY" not in proc.output()
    # it refused before touching the cluster: nothing of this fl_name was declared in Redis
    client = redis.Redis(host="127.0.0.1", port=int(redis_server.address.rsplit(":", 1)[1]))
    try:
        assert not client.keys(f"{Keys(fl_name).base}*")
    finally:
        client.close()


def test_dp_encrypt_is_built(tmp_path, redis_server, fl_name, procs):
    """DP_ENCRYPT is parameter distribution only (noise is added on devices): the server starts."""
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, encrypt={"encrypt_type": "DP_ENCRYPT"})
    proc, _ = start_server(procs, yaml_path, tmp_path / "srv")
    proc.stop()


def test_server_refuses_cluster_hyper_params_asking_for_what_is_not_built(tmp_path, redis_server, fl_name,
                                                                           procs):
    """The cluster's hyper-params win over the YAML: a plain YAML joining a PW_ENCRYPT cluster refuses too."""
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name)
    keys = Keys(fl_name)
    hp = load_config(yaml_path, role="server").hyper_params()
    hp["encrypt_type"] = "PW_ENCRYPT"
    client = redis.Redis(host="127.0.0.1", port=int(redis_server.address.rsplit(":", 1)[1]))
    try:
        client.set(keys.instance_name, "i_declared_elsewhere", ex=600)
        client.set(keys.hyper_params("i_declared_elsewhere"), json.dumps(hp), ex=600)
    finally:
        client.close()
    proc, code = _exit_of_refused_server(procs, "server_joining", yaml_path, tmp_path)
    assert code == ExitCode.CONFIG_ERROR
    assert errors.NOT_BUILT_CLUSTER.format(features=EXPECTED["PW_ENCRYPT"], fl_name=fl_name) in proc.output()
    assert "READY" not in proc.output()
