"""A server started without a feature map takes the model from the cluster: the declaration in Redis
(names, shapes, require_aggr), the weights from a live peer, or, with no peer, its newest recovery
checkpoint; with no declared model it fails to start with START_EMPTY_MODEL."""
import signal

import numpy as np

from tests.utils.cluster import get_model, start_job, start_server, update, write_yaml
from tests.utils.job_entry import JOB_ENTRY
from tests.utils.multi import ENTRY, models_everywhere

SUCCEED = 200
NO_MODEL_ENTRY = JOB_ENTRY   # FLServerJob(...).run(None)


def test_server_without_feature_map_adopts_the_cluster_model(tmp_path, redis_server, fl_name, procs):
    from mindspore_federated import errors

    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 2},
                           fl_iteration_num=10)
    ckpt = str(tmp_path / "shared_ckpt")   # one checkpoint dir for every server of this test
    pa, a = start_server(procs, yaml_path, tmp_path / "srv_a", name="server_a", entry=ENTRY,
                         extra=("--checkpoint_dir", ckpt))
    rng = np.random.default_rng(11)

    def train(iteration, starts, updates):
        sizes = [3, 4]
        uploads = [{"w1": rng.standard_normal(6).astype(np.float32) * n,
                    "b1": rng.standard_normal(3).astype(np.float32) * n} for n in sizes]
        for d, target in enumerate(starts):
            assert start_job(target, fl_name, f"i{iteration}d{d}", iteration, sizes[d]).retcode == SUCCEED
        for d, target in enumerate(updates):   # no "frozen": it is require_aggr=False on every server
            r = update(target, fl_name, f"i{iteration}d{d}", iteration, uploads[d])
            assert r.retcode == SUCCEED, r.reason
        return {n: sum(u[n] for u in uploads) / np.float32(sum(sizes)) for n in ("w1", "b1")}

    def check(replies, expect, iteration):
        for r in replies:
            assert r.iteration == iteration + 1
            for name, value in expect.items():
                np.testing.assert_allclose(r.features[name], value, rtol=1e-6, atol=1e-7)
            np.testing.assert_array_equal(r.features["frozen"], np.full(4, 7.0, np.float32))

    expect1 = train(1, [a, a], [a, a])
    check(models_everywhere([a], fl_name, 1), expect1, 1)

    # B has no feature map: it adopts the declaration and the model of iteration 1 from A, serves at once
    pb, b = start_server(procs, yaml_path, tmp_path / "srv_b", name="server_b", entry=NO_MODEL_ENTRY,
                         extra=("--checkpoint_dir", ckpt))
    pb.wait_line("no feature map: serving the model declared in the distributed cache", timeout=1)
    check([get_model(b, fl_name, 1)], expect1, 1)
    # both hold updates of iteration 2: exact FedAvg through the all-reduce, identical on both
    expect2 = train(2, [b, a], [b, a])
    check(models_everywhere([a, b], fl_name, 2), expect2, 2)

    # with no server left, a server without a feature map resumes from the newest recovery checkpoint
    for proc in (pa, pb):
        proc.send(signal.SIGTERM)
        assert proc.wait_exit(15) == 0
    pc, c = start_server(procs, yaml_path, tmp_path / "srv_c", name="server_c", entry=NO_MODEL_ENTRY,
                         extra=("--checkpoint_dir", ckpt))
    pc.wait_line("loading recovery checkpoint", timeout=1)
    check([get_model(c, fl_name, 2)], expect2, 2)

    # nothing declared for this fl_name: nothing to serve
    other = write_yaml(tmp_path / "other", redis_server.address, fl_name + "_none")
    pd = procs.python("server_none", *NO_MODEL_ENTRY, "--yaml_config", other, "--http_server_address",
                      "127.0.0.1:1", "--checkpoint_dir", str(tmp_path / "none_ckpt"), cwd=str(tmp_path))
    pd.wait_line(f"FAILED server: {errors.START_EMPTY_MODEL}", timeout=30)
    assert pd.wait_exit(10) != 0

