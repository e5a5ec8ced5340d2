"""The cross-device LeNet example: digits data, LocalTrainer, and real devices training against a real server."""
import asyncio
import importlib.util
import json
import math

import numpy as np
import pytest

from example.cross_device_lenet_femnist.data import load_digits_split, partition_non_iid
from mindspore_federated.models import LENET5_SHAPES, lenet5_weights
from tests.utils.cluster import start_server, write_yaml


@pytest.fixture(scope="module")
def digits():
    return load_digits_split(seed=0)


@pytest.fixture(scope="module")
def trainer():
    """One LocalTrainer for the module: its graphs are compiled once and reused by every test."""
    pytest.importorskip("mindspore")
    from example.cross_device_lenet_femnist.lenet import LocalTrainer

    return LocalTrainer()


def test_digits_split_shapes_and_range(digits):
    x_train, y_train, x_test, y_test = digits
    assert x_train.shape == (1437, 1, 32, 32) and x_test.shape == (360, 1, 32, 32)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int32 and y_test.dtype == np.int32
    assert 0.0 <= x_train.min() and x_train.max() == 1.0
    # every 8x8 pixel became a constant 4x4 block
    block = x_train[0, 0].reshape(8, 4, 8, 4)
    assert np.all(block == block[:, :1, :, :1])
    assert sorted(set(y_test.tolist())) == list(range(10))


def test_partition_non_iid_assigns_everything_with_two_classes(digits):
    labels = digits.y_train
    parts = partition_non_iid(labels, 10, classes_per_device=2, seed=3)
    assert len(parts) == 10
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(len(labels)))
    assert all(len(np.unique(labels[p])) == 2 for p in parts)
    assert max(map(len, parts)) - min(map(len, parts)) < 15
    few = partition_non_iid(labels, 4, classes_per_device=2, seed=3)
    np.testing.assert_array_equal(np.sort(np.concatenate(few)), np.arange(len(labels)))
    assert [len(p) for p in partition_non_iid(labels, 4, seed=3)] == [len(p) for p in few]


@pytest.mark.mindspore
def test_local_trainer_parameters_match_lenet5_shapes(trainer):
    assert trainer.parameter_shapes == LENET5_SHAPES
    assert list(trainer.parameter_shapes) == list(LENET5_SHAPES)
    assert sum(math.prod(s) for s in trainer.parameter_shapes.values()) == 61706


@pytest.mark.mindspore
def test_local_training_reduces_loss_on_a_shard(trainer, digits):
    shard = partition_non_iid(digits.y_train, 10, seed=0)[0]
    x, y = digits.x_train[shard], digits.y_train[shard]
    start = lenet5_weights(0)
    loss_before, acc_before = trainer.evaluate(start, x, y)
    weights, train_loss, train_acc = trainer.train(start, x, y, epochs=2, batch_size=16, lr=0.02, seed=1)
    assert list(weights) == list(LENET5_SHAPES)
    for name, shape in LENET5_SHAPES.items():
        assert weights[name].dtype == np.float32 and weights[name].shape == (math.prod(shape),)
    loss_after, acc_after = trainer.evaluate(weights, x, y)
    assert loss_after < 0.5 * loss_before and acc_after > max(acc_before, 0.8)
    assert np.isfinite(train_loss) and 0.0 <= train_acc <= 1.0
    # flat and shaped weights are the same input; a call never sees the previous call's momentum
    shaped = {k: v.reshape(LENET5_SHAPES[k]) for k, v in lenet5_weights(0).items()}
    again, again_loss, _ = trainer.train(shaped, x, y, epochs=2, batch_size=16, lr=0.02, seed=1)
    assert again_loss == train_loss
    for name in weights:
        np.testing.assert_array_equal(again[name], weights[name])


@pytest.mark.mindspore
def test_one_step_is_lr_times_masked_gradient(trainer, digits):
    """One step from zero momentum moves w by lr * grad: the lr is live (no stale graph constant) and the
    zero-padded rows of a short batch add nothing (same step as an exact-size batch)."""
    x, y = digits.x_train[:10], digits.y_train[:10]
    start = lenet5_weights(4)
    steps = {}
    for lr, batch in ((0.01, 16), (0.03, 16), (0.01, 10)):
        new, _, _ = trainer.train(start, x, y, epochs=1, batch_size=batch, lr=lr, seed=0)
        steps[lr, batch] = {k: (start[k].ravel() - new[k]) / lr for k in new}
    for name in start:
        np.testing.assert_allclose(steps[0.03, 16][name], steps[0.01, 16][name], rtol=1e-3, atol=2e-5)
        np.testing.assert_allclose(steps[0.01, 10][name], steps[0.01, 16][name], rtol=1e-3, atol=2e-5)
    # against a central difference of the evaluated loss on one bias
    eps = 1e-2
    plus = {k: v.copy() for k, v in start.items()}
    minus = {k: v.copy() for k, v in start.items()}
    plus["fc3.bias"][2] += eps
    minus["fc3.bias"][2] -= eps
    numeric = (trainer.evaluate(plus, x, y)[0] - trainer.evaluate(minus, x, y)[0]) / (2 * eps)
    assert steps[0.01, 16]["fc3.bias"][2] == pytest.approx(numeric, rel=1e-2, abs=1e-4)


def _digits_server(tmp_path, redis_server, fl_name, procs, devices, iterations, **extra):
    """A LeNet server for `devices` phones (1 local epoch, batch 16, lr 0.02); returns its address."""
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, fl_iteration_num=iterations,
                           round={"start_fl_job_threshold": devices},
                           client={"client_epoch_num": 1, "client_batch_size": 16, "client_learning_rate": 0.02},
                           **extra)
    return start_server(procs, yaml_path, tmp_path / "srv")[1]


@pytest.mark.mindspore
@pytest.mark.skipif(importlib.util.find_spec("mindspore_federated.server") is None,
                    reason="no server entry point to start")
def test_devices_train_lenet_against_a_real_server(tmp_path, redis_server, fl_name, procs, trainer, digits):
    from example.cross_device_lenet_femnist.run_devices import run_devices

    devices, iterations = 4, 3
    address = _digits_server(tmp_path, redis_server, fl_name, procs, devices, iterations)
    seen = []
    reports = asyncio.run(run_devices([f"http://{address}"], fl_name, devices, iterations, seed=0,
                                      on_iteration=seen.append, trainer=trainer, data=digits))
    assert seen == reports and [r.iteration for r in reports] == [1, 2, 3]
    assert all(r.participants == devices and not r.errors for r in reports)
    assert [r.model_iteration for r in reports] == [2, 3, 4]
    first, last = reports[0], reports[-1]
    assert first.start_test_accuracy < 0.2  # the server's random initial model
    assert last.test_accuracy > 0.3 and last.test_accuracy > first.test_accuracy + 0.1
    assert last.mean_loss < first.mean_loss
    # the server aggregated exactly the devices' uploads: its data-size weighted loss is ours
    lines = [json.loads(x) for x in (tmp_path / "srv" / "metrics.json").read_text().splitlines()]
    assert [x["currentIteration"] for x in lines] == [1, 2, 3]
    assert all(x["iterationResult"] == "success" for x in lines)
    for line, report in zip(lines, reports):
        assert line["metricsLoss"] == pytest.approx(report.mean_loss, rel=1e-5)


@pytest.mark.mindspore
@pytest.mark.skipif(importlib.util.find_spec("mindspore_federated.server") is None,
                    reason="no server entry point to start")
def test_devices_train_lenet_with_both_compressions(tmp_path, redis_server, fl_name, procs, trainer, digits):
    """QUANT downloads and DIFF_SPARSE_QUANT uploads (rate 0.4): the example still learns as it does plain."""
    from example.cross_device_lenet_femnist.run_devices import run_devices

    devices, iterations = 4, 3
    address = _digits_server(tmp_path, redis_server, fl_name, procs, devices, iterations,
                             compression={"upload_compress_type": "DIFF_SPARSE_QUANT", "upload_sparse_rate": 0.4,
                                          "download_compress_type": "QUANT"})
    reports = asyncio.run(run_devices([f"http://{address}"], fl_name, devices, iterations, seed=0,
                                      trainer=trainer, data=digits, compress=True))
    assert [r.iteration for r in reports] == [1, 2, 3]
    assert all(r.participants == devices and not r.errors for r in reports)
    first, last = reports[0], reports[-1]
    assert last.test_accuracy > 0.3 and last.test_accuracy > first.start_test_accuracy + 0.1
