"""Simulated phones: each trains LeNet5 on its non-IID digits shard through the device SDK, then evaluates."""
import argparse
import asyncio
import os
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import aiohttp
import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from example.cross_device_lenet_femnist.data import load_digits_split, partition_non_iid
from mindspore_federated.client.device import Device, DeviceError, RetryPolicy, https_context
from mindspore_federated.client.messages import CompressType
from mindspore_federated.client.simulator import (
    over_admission_warning,
    positive_float,
    positive_int,
    turned_away,
)

# Used when the FL plan carries no (positive) value and nothing is given explicitly.
FALLBACK_EPOCHS, FALLBACK_BATCH_SIZE, FALLBACK_LR = 1, 16, 0.01


@dataclass
class IterationReport:
    """One FL iteration as seen by the simulated devices.

    iteration: the server iteration the devices trained in. participants: devices whose updateModel was accepted
    (out of `devices`). wall_seconds: from the first startFLJob to the new global model being fetched.
    mean_loss / local_accuracy: data-size weighted means of the devices' training loss and of their trained
    weights' accuracy on their own shard. start_test_accuracy: the global model the iteration started from,
    test_loss / test_accuracy: the new global model, both on the held-out test set.
    """

    iteration: int
    participants: int
    devices: int
    wall_seconds: float
    mean_loss: float
    local_accuracy: float
    start_test_accuracy: float
    test_loss: float
    test_accuracy: float
    model_iteration: int
    errors: tuple = ()

    def line(self):
        """A one-line human summary."""
        text = (f"iteration {self.iteration:3d}: participants {self.participants}/{self.devices}, "
                f"wall {self.wall_seconds:6.2f} s, mean local loss {self.mean_loss:.4f}, "
                f"test accuracy {self.test_accuracy:.4f} (loss {self.test_loss:.4f})")
        if self.errors:
            text += f", {len(self.errors)} device error(s): {self.errors[0]}"
        return text


class _Simulation:
    """The shared state of one run: shards, the single LocalTrainer, its one-thread executor."""

    def __init__(self, trainer, data, shards, executor, overrides, seed):
        self.trainer = trainer
        self.data = data
        self.shards = shards
        self.executor = executor
        self.overrides = overrides  # (epochs, batch_size, lr), None entries come from the plan
        self.seed = seed
        self.results = {}
        self.start_model = None
        self.warned = False   # the over-admission warning is printed once per run

    def hyper_params(self, fl_plan):
        epochs, batch_size, lr = self.overrides
        if epochs is None:
            epochs = fl_plan.epochs if fl_plan is not None and fl_plan.epochs > 0 else FALLBACK_EPOCHS
        if batch_size is None:
            batch_size = fl_plan.mini_batch if fl_plan is not None and fl_plan.mini_batch > 0 \
                else FALLBACK_BATCH_SIZE
        if lr is None:
            lr = fl_plan.lr if fl_plan is not None and fl_plan.lr > 0 else FALLBACK_LR
        return int(epochs), int(batch_size), float(lr)

    def train_fn(self, device_index, round_no):
        """The SDK's train_fn for one device: runs LocalTrainer.train in the executor (one device at a time)."""
        idx = self.shards[device_index]

        async def train(features, fl_plan):
            if self.start_model is None:
                self.start_model = {name: np.array(value, np.float32) for name, value in features.items()}
            epochs, batch_size, lr = self.hyper_params(fl_plan)
            seed = self.seed * 1_000_003 + round_no * 1009 + device_index
            loop = asyncio.get_running_loop()
            weights, loss, accuracy = await loop.run_in_executor(
                self.executor, lambda: self.trainer.train(features, self.data.x_train[idx], self.data.y_train[idx],
                                                          epochs, batch_size, lr, seed=seed))
            self.results[device_index] = (len(idx), loss, accuracy)
            return weights, loss, accuracy

        return train

    async def evaluate(self, weights):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.executor, lambda: self.trainer.evaluate(weights, self.data.x_test, self.data.y_test))


async def run_devices(server_urls, fl_name, num_devices, iterations, *, seed=0, on_iteration=None,
                      epochs=None, batch_size=None, lr=None, momentum=0.5, classes_per_device=2,
                      url_prefix="", policy=None, trainer=None, data=None, dp_noise=False, ssl_context=None,
                      compress=False):
    """Simulates `num_devices` phones for `iterations` FL iterations against the servers; returns the reports.

    server_urls: base URLs (list or comma-separated string). Every device holds one non-IID shard of the digits
    training set (`classes_per_device` classes, see data.partition_non_iid) and declares its number of samples
    as data_size (the SDK uploads w * data_size; the server divides by the sum). Each iteration all devices run
    startFLJob -> local training -> updateModel -> getModel concurrently; training (blocking, CPU-bound) runs on
    one shared LocalTrainer in a one-thread executor, so HTTP stays async. Local epochs, batch size and learning
    rate come from the FL plan unless `epochs` / `batch_size` / `lr` are given. After each iteration the new
    global model is evaluated on the held-out test set and an IterationReport is passed to
    `on_iteration(report)` (sync or async) and collected. Stops early when the server says the job is finished.
    `trainer` (a LocalTrainer, else one is built with `momentum`) and `data` (a DigitsSplit) may be passed in
    to reuse them across runs. `ssl_context` verifies https:// servers (client.device.https_context(ca_file)).
    The privacy mode follows the servers' plan (PW_ENCRYPT masks the uploads, ...); with DP_ENCRYPT the phones
    add the plan's noise when `dp_noise`.
    `compress` asks for QUANT model downloads and encodes uploads as DIFF_SPARSE_QUANT when the servers
    advertise it.
    Raises RuntimeError when an iteration yields no new global model.
    """
    if num_devices < 1 or iterations < 1:
        raise ValueError("num_devices and iterations must be >= 1")
    data = data if data is not None else load_digits_split(seed=seed)
    shards = partition_non_iid(data.y_train, num_devices, classes_per_device, seed=seed)
    if any(len(s) == 0 for s in shards):
        raise ValueError(f"{num_devices} devices leave some device without training samples")
    reports = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lenet-trainer") as executor:
        if trainer is None:
            from example.cross_device_lenet_femnist.lenet import LocalTrainer

            trainer = await asyncio.get_running_loop().run_in_executor(executor, LocalTrainer, momentum)
        sim = _Simulation(trainer, data, shards, executor, (epochs, batch_size, lr), seed)
        async with aiohttp.ClientSession() as session:
            devices = [Device(server_urls, fl_name, fl_id=f"{fl_name}-phone-{seed}-{i}", data_size=len(s),
                              url_prefix=url_prefix, session=session, policy=policy,
                              rng=random.Random(seed * 7919 + i), dp_noise=dp_noise, ssl_context=ssl_context,
                              download_compress_types=(CompressType.QUANT,) if compress else (),
                              upload_compress=compress)
                       for i, s in enumerate(shards)]
            start_accuracy = None
            for round_no in range(iterations):
                report = await _one_iteration(sim, devices, round_no, start_accuracy)
                if report is None:
                    break
                start_accuracy = report.test_accuracy
                reports.append(report)
                if on_iteration is not None:
                    result = on_iteration(report)
                    if asyncio.iscoroutine(result):
                        await result
    return reports


async def _one_iteration(sim, devices, round_no, start_accuracy):
    """Runs one iteration on every device; None when the server has finished the job."""
    sim.results.clear()
    sim.start_model = None
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(dev.run_iteration(sim.train_fn(i, round_no))
                                      for i, dev in enumerate(devices)), return_exceptions=True)
    wall = time.perf_counter() - started
    errors, good, accepted_ids, turned = [], [], set(), 0
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, DeviceError):
            errors.append(f"{type(outcome).__name__}: {outcome}")
            outcome = outcome.outcome
        elif isinstance(outcome, BaseException):
            raise outcome
        turned += turned_away(outcome)
        if outcome is not None:
            good.append(outcome)
            if outcome.accepted:
                accepted_ids.add(index)
    if good and all(o.finished for o in good) and not any(o.accepted for o in good):
        return None
    warning = over_admission_warning(turned, len(devices))
    if warning and not sim.warned:
        print(warning, file=sys.stderr, flush=True)
        sim.warned = True
    accepted = [o for o in good if o.accepted]
    with_model = [o for o in accepted if o.model is not None]
    if not with_model:
        raise RuntimeError(f"no device obtained a new global model; errors: {errors[:3]}")
    newest = max(with_model, key=lambda o: o.model_iteration)
    if start_accuracy is None and sim.start_model is not None:
        _, start_accuracy = await sim.evaluate(sim.start_model)
    test_loss, test_accuracy = await sim.evaluate(newest.model)
    results = [r for i, r in sim.results.items() if i in accepted_ids]  # uploads the server counted
    sizes = np.array([r[0] for r in results], np.float64)
    losses = np.array([r[1] for r in results], np.float64)
    local_acc = np.array([r[2] for r in results], np.float64)
    weight_sum = sizes.sum()
    return IterationReport(
        iteration=max(o.iteration for o in accepted), participants=len(accepted), devices=len(devices),
        wall_seconds=wall,
        mean_loss=float((sizes * losses).sum() / weight_sum) if weight_sum else float("nan"),
        local_accuracy=float((sizes * local_acc).sum() / weight_sum) if weight_sum else float("nan"),
        start_test_accuracy=float("nan") if start_accuracy is None else float(start_accuracy),
        test_loss=float(test_loss), test_accuracy=float(test_accuracy),
        model_iteration=newest.model_iteration, errors=tuple(errors))


def parse_args(argv=None):
    """Command-line options."""
    p = argparse.ArgumentParser(
        prog="python -m example.cross_device_lenet_femnist.run_devices", description=__doc__,
        epilog="Local epochs / batch size / learning rate come from the server's FL plan (YAML client section) "
               "unless overridden here. Recommended server YAML for 10 devices: round.start_fl_job_threshold 10, "
               "client.client_epoch_num 2, client.client_batch_size 16, client.client_learning_rate 0.02.")
    p.add_argument("--servers", required=True, help="comma-separated base URLs, e.g. http://127.0.0.1:6666")
    p.add_argument("--ca_file", "--ca-file", dest="ca_file", default=None,
                   help="https:// servers (enable_ssl): verify their certificates with this CA file")
    p.add_argument("--fl_name", "--fl-name", dest="fl_name", required=True)
    p.add_argument("--devices", type=positive_int, default=10)
    p.add_argument("--iterations", type=positive_int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--classes_per_device", "--classes-per-device", dest="classes_per_device",
                   type=positive_int, default=2)
    p.add_argument("--epochs", type=positive_int, default=None, help="override the plan's client_epoch_num")
    p.add_argument("--batch_size", "--batch-size", dest="batch_size", type=positive_int, default=None,
                   help="override the plan's client_batch_size")
    p.add_argument("--lr", type=positive_float, default=None, help="override the plan's client_learning_rate")
    p.add_argument("--momentum", type=float, default=0.5, help="local optimizer momentum (not in the plan)")
    p.add_argument("--url_prefix", "--url-prefix", dest="url_prefix", default="")
    p.add_argument("--http_timeout", "--http-timeout", dest="http_timeout", type=positive_float, default=30.0)
    p.add_argument("--compress", action="store_true",
                   help="QUANT model downloads, DIFF_SPARSE_QUANT uploads when the servers advertise it")
    return p.parse_args(argv)


def main(argv=None):
    """CLI entry point; returns the exit code (0 ok, 1 failed, 130 interrupted)."""
    args = parse_args(argv)
    servers = [s if "://" in s else f"http://{s}" for s in args.servers.split(",") if s.strip()]
    policy = RetryPolicy(http_timeout=args.http_timeout)
    print(f"{args.devices} devices, {args.iterations} iterations, servers {', '.join(servers)}, "
          f"fl_name {args.fl_name}", flush=True)

    def show(report):
        if not shown:
            print(f"initial model: test accuracy {report.start_test_accuracy:.4f}", flush=True)
        shown.append(report)
        print(report.line(), flush=True)

    shown = []
    try:
        reports = asyncio.run(run_devices(servers, args.fl_name, args.devices, args.iterations, seed=args.seed,
                                          on_iteration=show, epochs=args.epochs, batch_size=args.batch_size,
                                          lr=args.lr, momentum=args.momentum,
                                          classes_per_device=args.classes_per_device,
                                          url_prefix=args.url_prefix, policy=policy,
                                          ssl_context=https_context(args.ca_file) if args.ca_file else None,
                                          compress=args.compress))
    except KeyboardInterrupt:
        return 130
    except (RuntimeError, ValueError, DeviceError) as exc:
        print(f"failed: {exc}", file=sys.stderr, flush=True)
        return 1
    if reports:
        print(f"done: {len(reports)} iterations, test accuracy {reports[0].start_test_accuracy:.4f} -> "
              f"{reports[-1].test_accuracy:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
