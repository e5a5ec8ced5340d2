"""A hybrid-training worker: MindSpore LeNet5 refining the devices' aggregate on held-out digits.

Each FL iteration is one training epoch of `--sync_frequency` steps under FederatedLearningManager (it pulls
the devices' aggregate at the first step and pushes the trained weights at the last), then PushMetrics sends
the loss and the accuracy on the evaluation digits, which ends the iteration. One line per iteration:
`ITERATION <n> loss <l> accuracy <a> pull_wait_s <s> train_s <s> push_s <s>`.

    python run_worker.py --yaml_config yamls/hybrid.yaml --fl_iteration_num 10
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--yaml_config", required=True)
    p.add_argument("--fl_iteration_num", type=int, default=5, help="iterations this worker takes part in")
    p.add_argument("--sync_frequency", type=int, default=4, help="training steps per iteration")
    p.add_argument("--sync_type", default="fixed", choices=["fixed", "adaptive"])
    p.add_argument("--client_batch_size", type=int, default=16)
    p.add_argument("--client_learning_rate", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dump_dir", default="", help="save the pulled and pushed weights per iteration (npz)")
    return p.parse_args(argv)


def held_out_digits(seed):
    """The worker's share: the first half of the test split trains, the second half evaluates."""
    from example.cross_device_lenet_femnist.data import load_digits_split

    split = load_digits_split(seed=0)
    half = len(split.y_test) // 2
    return (split.x_test[:half], split.y_test[:half]), (split.x_test[half:], split.y_test[half:])


def make_dataset(images, labels, batch_size, steps, seed):
    """`steps` random batches per epoch (a fresh draw every epoch)."""
    import mindspore.dataset as ds

    rng = np.random.default_rng(seed)

    def batches():
        for _ in range(steps):
            idx = rng.choice(len(labels), batch_size, replace=False)
            yield images[idx], labels[idx]

    return ds.GeneratorDataset(batches, ["image", "label"], shuffle=False)


def dump(directory, name, weights):
    """Writes <directory>/<name>.npz atomically (a reader never sees a partial file)."""
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{name}.tmp.npz")
    np.savez(tmp, **weights)
    os.replace(tmp, os.path.join(directory, f"{name}.npz"))


def main(argv=None):
    args = parse_args(argv)
    import mindspore as ms
    from mindspore import Tensor, nn
    from mindspore.train import Model
    from mindspore.train.callback import Callback

    from example.cross_device_lenet_femnist.lenet import LeNet5
    from mindspore_federated import FederatedLearningManager, PushMetrics

    ms.set_context(mode=ms.PYNATIVE_MODE)
    ms.set_seed(args.seed)
    (x_train, y_train), (x_eval, y_eval) = held_out_digits(args.seed)
    network = LeNet5()
    flm = FederatedLearningManager(yaml_config=args.yaml_config, model=network,
                                   sync_frequency=args.sync_frequency, sync_type=args.sync_type,
                                   run_mode="HYBRID_TRAINING")
    worker = flm.worker
    print(f"READY worker {worker.fl_id}", flush=True)

    class IterationEnd(Callback):
        """After each epoch (= one FL iteration): evaluate, dump, PushMetrics."""

        def on_train_epoch_end(self, run_context):
            loss = float(run_context.original_args().net_outputs.asnumpy())
            logits = network(Tensor(x_eval)).asnumpy()
            accuracy = float((logits.argmax(axis=1) == y_eval).mean())
            iteration = worker.iteration
            if args.dump_dir:
                dump(args.dump_dir, f"pulled_{iteration}", flm.last_pulled)
                dump(args.dump_dir, f"pushed_{iteration}", flm.last_pushed)
            sent = PushMetrics()(loss, accuracy)
            t = worker.timings[-1] if worker.timings else {}
            print(f"ITERATION {iteration} loss {loss:.4f} accuracy {accuracy:.4f} "
                  f"pull_wait_s {t.get('pull_wait_s', 0):.3f} train_s {t.get('train_s', 0):.3f} "
                  f"push_s {t.get('push_s', 0):.3f} metrics_sent {bool(sent)}", flush=True)

    loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    opt = nn.Momentum(network.trainable_params(), args.client_learning_rate, 0.9)
    model = Model(network, loss, opt)
    dataset = make_dataset(x_train, y_train, args.client_batch_size, args.sync_frequency, args.seed)
    from mindspore_federated.worker.link import JobFinished

    try:
        model.train(args.fl_iteration_num, dataset, callbacks=[flm, IterationEnd()], dataset_sink_mode=False)
    except JobFinished as exc:
        print(f"FINISHED {exc}", flush=True)
    finally:
        flm.stop()
    print("DONE worker", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
