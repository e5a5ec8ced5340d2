"""A server asked for a feature this build does not implement yet refuses to start (exit CONFIG_ERROR) and
names it, whether the YAML asks for it or the cluster's hyper-params in Redis do."""
import json

import pytest
import redis

from mindspore_federated.config import ALLOWED_CIPHERS, load_config
from mindspore_federated.exit_codes import ExitCode
from mindspore_federated.server.capabilities import NOT_BUILT
from mindspore_federated.state.keys import Keys
from tests.utils.cluster import start_server, write_yaml
from tests.utils.redis_server import free_port

PW = {"share_secrets_ratio": 1.0, "cipher_time_window": 3000, "reconstruct_secrets_threshold": 1}
NOT_BUILT_CONFIGS = {
    "pki_verify": {"client_verify": {"pki_verify": True}},   # the CA paths are filled in by the test
    "enable_ssl": {"enable_ssl": True},                      # and so is the TLS material
}
EXPECTED = {
    "pki_verify": NOT_BUILT["client_verify.pki_verify"][True],
    "enable_ssl": NOT_BUILT["enable_ssl"][True],
}


def _with_material(tmp_path, overrides):
    """Existing (dummy) files for the paths that pki_verify / enable_ssl require."""
    def touch(name):
        path = tmp_path / name
        path.write_text("not read: the server refuses before loading it\n")
        return str(path)

    if "client_verify" in overrides:
        overrides = {"client_verify": {**overrides["client_verify"], "root_first_ca_path": touch("root1.pem"),
                                       "root_second_ca_path": touch("root2.pem")}}
    if "enable_ssl" in overrides:
        overrides = {**overrides, "ssl": {"server_cert_path": touch("server.p12"),
                                          "client_cert_path": touch("client.p12"),
                                          "ca_cert_path": touch("ca.pem"), "cipher_list": ALLOWED_CIPHERS[0]}}
    return overrides


def _exit_of_refused_server(procs, name, yaml_path, workdir):
    proc = procs.python(name, "-m", "mindspore_federated.server", "--yaml_config", yaml_path,
                        "--http_server_address", f"127.0.0.1:{free_port()}", "--checkpoint_dir",
                        str(workdir / "fl_ckpt"), cwd=str(workdir))
    proc.wait_line("FAILED server: Not built yet: ", timeout=60)
    return proc, proc.wait_exit(30)


@pytest.mark.parametrize("feature", sorted(NOT_BUILT_CONFIGS))
def test_server_refuses_what_is_not_built(tmp_path, redis_server, fl_name, procs, feature):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name,
                           **_with_material(tmp_path, NOT_BUILT_CONFIGS[feature]))
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
