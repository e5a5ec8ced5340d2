"""What the server refuses as not built yet: each such setting is named, DP_ENCRYPT and the defaults pass."""
import pytest

from mindspore_federated.server import capabilities
from mindspore_federated.server.capabilities import NOT_BUILT, check_hyper_params, not_built


@pytest.mark.parametrize("key,value", [(k, v) for k, values in NOT_BUILT.items() for v in values])
def test_each_not_built_setting_is_named(key, value):
    assert not_built({key: value}) == [NOT_BUILT[key][value]]


def test_defaults_and_dp_encrypt_are_built():
    assert not_built({"encrypt.encrypt_type": "NOT_ENCRYPT", "client_verify.pki_verify": False,
                      "enable_ssl": False, "compression.upload_compress_type": "NO_COMPRESS"}) == []
    assert not_built({"encrypt.encrypt_type": "DP_ENCRYPT"}) == []
    assert not_built({"compression.upload_compress_type": "DIFF_SPARSE_QUANT"}) == []
    assert not_built({}) == []


def test_every_problem_is_listed_at_once():
    found = not_built({"encrypt.encrypt_type": "SIGNDS", "compression.upload_compress_type": "DIFF_SPARSE_QUANT",
                       "enable_ssl": True, "client_verify.pki_verify": True})
    assert found == []   # every feature is built (secure aggregation: server/secagg/)


def test_cluster_hyper_params_are_checked_under_their_names():
    assert set(capabilities.HYPER_PARAM_NAMES.values()) == set(NOT_BUILT)
    # built (issue 14): never refused
    check_hyper_params({"encrypt_type": "NOT_ENCRYPT", "pki_verify": True, "enable_ssl": True}, "fl")
    # built (issue 13, server/secagg/): never refused either
    for encrypt_type in ("PW_ENCRYPT", "STABLE_PW_ENCRYPT", "SIGNDS"):
        check_hyper_params({"encrypt_type": encrypt_type}, "fl")
