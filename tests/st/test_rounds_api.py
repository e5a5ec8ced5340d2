"""FLServerJob.run(feature_map) through a real server process: a dict (every feature aggregated) and a
MindSpore `.ckpt` path (only float32 parameters kept), with the CallbackContext given to on_iteration_end."""
import json
import os

import numpy as np

from tests.utils.api_entry import API_ENTRY as ENTRY
from tests.utils.api_entry import DICT_MODEL, wait_callback

# ---- tests ---------------------------------------------------------------------------------------------

def _redis(redis_server):
    import redis

    return redis.Redis(port=redis_server.port, decode_responses=True)


def _declared(redis_server, fl_name):
    from mindspore_federated.state.keys import Keys

    client = _redis(redis_server)
    try:
        info = json.loads(client.get(Keys(fl_name).model_info))
        inst = client.get(Keys(fl_name).instance_name)
    finally:
        client.close()
    return info["features"], inst


def _run_one_iteration(address, fl_name, names_sizes, rng):
    from tests.utils.cluster import start_job, update

    sizes = [3, 9]
    uploads = []
    for d, n in enumerate(sizes):
        r = start_job(address, fl_name, f"dev{d}", 1, n)
        assert (r.retcode, r.reason) == (200, "success")
        uploads.append({name: rng.standard_normal(size).astype(np.float32) * n for name, size in names_sizes})
    for d in range(len(sizes)):
        r = update(address, fl_name, f"dev{d}", 1, uploads[d])
        assert (r.retcode, r.reason) == (200, "success not ready")
    return {name: sum(u[name] for u in uploads) / np.float32(sum(sizes)) for name, _ in names_sizes}


def test_feature_map_as_dict(tmp_path, redis_server, fl_name, procs):
    from mindspore_federated.checkpoint import load_checkpoint
    from tests.utils.cluster import get_model, start_job, start_server, update, wait_model, write_yaml

    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 2})
    proc, address = start_server(procs, yaml_path, tmp_path / "srv", entry=ENTRY,
                                 extra=("--feature_map", "dict"))
    features, inst = _declared(redis_server, fl_name)
    # a dict declares every feature with require_aggr=True, in the dict's order, shape kept
    assert list(features) == list(DICT_MODEL)
    assert {n: (f["size"], f["require_aggr"], f["shape"]) for n, f in features.items()} == {
        "conv.weight": (24, True, [2, 3]), "fc.bias": (12, True, [3])}
    g = get_model(address, fl_name, 0)
    assert (g.retcode, g.reason, g.iteration) == (200, "Get model for iteration 1", 1)
    for name, value in DICT_MODEL.items():
        np.testing.assert_array_equal(g.features[name], value.reshape(-1))
    # ... so an update must carry all of them
    assert start_job(address, fl_name, "partial", 1, 1).retcode == 200
    r = update(address, fl_name, "partial", 1, {"conv.weight": np.ones(6, np.float32)})
    assert (r.retcode, r.reason) == (
        400, "The updated weight of parameter fc.bias is missing, fl id: partial")
    # the rejected device retries with every feature; with a second device the iteration is complete
    rng = np.random.default_rng(3)
    n = 4
    full = {k: rng.standard_normal(v.size).astype(np.float32) * n for k, v in DICT_MODEL.items()}
    retry = {k: rng.standard_normal(v.size).astype(np.float32) for k, v in DICT_MODEL.items()}
    assert start_job(address, fl_name, "full", 1, n).retcode == 200
    assert update(address, fl_name, "full", 1, full).retcode == 200
    assert update(address, fl_name, "partial", 1, retry).retcode == 200
    expect = {k: (full[k] + retry[k]) / np.float32(n + 1) for k in DICT_MODEL}
    g = wait_model(address, fl_name, 1)
    for name in DICT_MODEL:
        np.testing.assert_allclose(g.features[name], expect[name], rtol=1e-6)
    ctx = wait_callback(proc, 1)
    assert ctx["valid"] is True and ctx["fl_name"] == fl_name and ctx["instance"] == inst
    assert ctx["result"] == "Weight aggregation finished! This iteration is valid. Proceed to next iteration."
    assert list(ctx["features"]) == list(DICT_MODEL)
    for name in DICT_MODEL:
        assert ctx["features"][name]["require_aggr"] is True
        assert ctx["features"][name]["shape"] == list(DICT_MODEL[name].shape)
        np.testing.assert_allclose(ctx["features"][name]["data"], expect[name], rtol=1e-6)
    assert os.path.basename(ctx["ckpt"]).startswith(f"{fl_name}_recovery_iteration_1_")
    saved = load_checkpoint(ctx["ckpt"])
    assert {k: v.shape for k, v in saved.items()} == {k: v.shape for k, v in DICT_MODEL.items()}
    np.testing.assert_allclose(saved["conv.weight"].reshape(-1), expect["conv.weight"], rtol=1e-6)


def test_feature_map_as_mindspore_ckpt_path(tmp_path, redis_server, fl_name, procs):
    import mindspore as ms

    from tests.utils.cluster import get_model, start_server, wait_model, write_yaml

    weight = np.array([[0.5, -1.0], [2.0, 3.25]], np.float32)
    bias = np.array([0.125, 8.0], np.float32)
    path = str(tmp_path / "initial.ckpt")
    ms.save_checkpoint([{"name": "dense.weight", "data": ms.Tensor(weight)},
                        {"name": "global_step", "data": ms.Tensor(np.array([7], np.int32))},
                        {"name": "dense.bias", "data": ms.Tensor(bias)},
                        {"name": "half", "data": ms.Tensor(np.ones(3, np.float16))}], path)
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 2})
    proc, address = start_server(procs, yaml_path, tmp_path / "srv", entry=ENTRY,
                                 extra=("--feature_map", f"ckpt:{path}"))
    features, _ = _declared(redis_server, fl_name)
    # only the float32 parameters become features, all aggregated, in file order
    assert list(features) == ["dense.weight", "dense.bias"]
    assert {n: (f["size"], f["require_aggr"], f["shape"]) for n, f in features.items()} == {
        "dense.weight": (16, True, [2, 2]), "dense.bias": (8, True, [2])}
    g = get_model(address, fl_name, 0)
    assert sorted(g.features) == ["dense.bias", "dense.weight"]
    np.testing.assert_array_equal(g.features["dense.weight"], weight.reshape(-1))
    np.testing.assert_array_equal(g.features["dense.bias"], bias)
    expect = _run_one_iteration(address, fl_name, [("dense.weight", 4), ("dense.bias", 2)],
                                np.random.default_rng(5))
    g = wait_model(address, fl_name, 1)
    for name, value in expect.items():
        np.testing.assert_allclose(g.features[name], value, rtol=1e-6)
    ctx = wait_callback(proc, 1)
    assert ctx["valid"] is True and list(ctx["features"]) == ["dense.weight", "dense.bias"]
    assert ctx["features"]["dense.weight"]["shape"] == [2, 2]
    # the recovery checkpoint the server wrote loads in MindSpore with the aggregated values and shapes
    loaded = ms.load_checkpoint(ctx["ckpt"])
    assert sorted(loaded) == ["dense.bias", "dense.weight"]
    assert tuple(loaded["dense.weight"].shape) == (2, 2)
    np.testing.assert_allclose(loaded["dense.weight"].asnumpy().reshape(-1), expect["dense.weight"],
                               rtol=1e-6)
    np.testing.assert_allclose(loaded["dense.bias"].asnumpy(), expect["dense.bias"], rtol=1e-6)

