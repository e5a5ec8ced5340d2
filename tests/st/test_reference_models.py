"""Two reference behaviours around the declared model, on real server processes: an updateModel lacking
several weights is rejected naming the first missing one in sorted name order, and a server started with an
empty FeatureMap (not None) does not adopt the cluster's model but fails start-up on the feature count."""
import numpy as np

from mindspore_federated import errors
from tests.utils.cluster import start_job, start_server, update, write_yaml
from tests.utils.job_entry import FOUR_FEATURES, JOB_ENTRY
from tests.utils.redis_server import free_port

ENTRY = JOB_ENTRY
SUCCEED, REQUEST_ERROR = 200, 400


def _weights(*names):
    return {n: np.ones(int(np.prod(FOUR_FEATURES[n][0])), np.float32) for n in names}


def test_missing_weights_are_named_in_sorted_order(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 2})
    _, address = start_server(procs, yaml_path, tmp_path / "srv", entry=ENTRY,
                              extra=("--feature_map", "four"))
    assert start_job(address, fl_name, "dev", 1, 4).retcode == SUCCEED
    # declared order: feature_conv, feature_bn, feature_bn2, feature_fc; missing feature_conv and feature_bn2
    r = update(address, fl_name, "dev", 1, _weights("feature_bn", "feature_fc"))
    assert (r.retcode, r.reason) == (REQUEST_ERROR, errors.UPDATE_MISSING_WEIGHT.format(name="feature_bn2",
                                                                                       fl_id="dev"))
    r = update(address, fl_name, "dev", 1, _weights("feature_fc"))
    assert (r.retcode, r.reason) == (REQUEST_ERROR, errors.UPDATE_MISSING_WEIGHT.format(name="feature_bn",
                                                                                       fl_id="dev"))
    r = update(address, fl_name, "dev", 1, _weights(*FOUR_FEATURES))   # complete: accepted
    assert r.retcode == SUCCEED, r.reason


def test_empty_feature_map_is_not_none(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name)
    start_server(procs, yaml_path, tmp_path / "srv_a", name="server_four", entry=ENTRY,
                 extra=("--feature_map", "four"))
    empty = procs.python("server_empty", *ENTRY, "--yaml_config", yaml_path, "--http_server_address",
                         f"127.0.0.1:{free_port()}", "--checkpoint_dir", str(tmp_path / "empty_ckpt"),
                         "--feature_map", "empty", cwd=str(tmp_path))
    expected = "The number 0 of local features != the number 4 declared in the the distributed cache"
    assert errors.START_FEATURE_COUNT.format(local=0, cached=4) == expected
    empty.wait_line(f"FAILED server: {expected}", timeout=60)
    assert empty.wait_exit(30) != 0
    assert "READY" not in empty.output()
    # None still means "take the cluster's model"
    start_server(procs, yaml_path, tmp_path / "srv_none", name="server_none", entry=ENTRY,
                 extra=("--feature_map", "none"))
