"""One silo of the cross-silo example: MindSpore LeNet5 on its own non-IID share of the digits.

With FederatedLearningManager in FEDERATED_LEARNING mode the silo acts as a device of the cluster: each FL
iteration is `--sync_frequency` local steps, then its weights are averaged with the other silos' (FedAvg on the
server) and loaded back. `--alone` trains the same steps without the cluster (the baseline). One line per
iteration: `ITERATION <n> silo <k> accuracy <a>` (accuracy of the model after the sync on the test digits).

    python run_silo.py --yaml_config silo.yaml --http_server_address 127.0.0.1:5555 --silo 0
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--yaml_config", default="")
    p.add_argument("--http_server_address", default="127.0.0.1:5555")
    p.add_argument("--silo", type=int, default=0)
    p.add_argument("--silos", type=int, default=3)
    p.add_argument("--classes_per_silo", type=int, default=4)
    p.add_argument("--fl_iteration_num", type=int, default=20)
    p.add_argument("--sync_frequency", type=int, default=5, help="local steps per iteration")
    p.add_argument("--client_batch_size", type=int, default=16)
    p.add_argument("--client_learning_rate", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.5)
    p.add_argument("--alone", action="store_true", help="train without the cluster (baseline)")
    return p.parse_args(argv)


def silo_data(silo, silos, classes_per_silo):
    from example.cross_device_lenet_femnist.data import load_digits_split, partition_non_iid

    split = load_digits_split(seed=0)
    share = partition_non_iid(split.y_train, silos, classes_per_device=classes_per_silo, seed=1)[silo]
    return split.x_train[share], split.y_train[share], split.x_test, split.y_test


def make_dataset(images, labels, batch_size, steps, seed):
    import mindspore.dataset as ds

    rng = np.random.default_rng(seed)

    def batches():
        for _ in range(steps):
            yield images_labels(rng.choice(len(labels), batch_size, replace=len(labels) < batch_size))

    def images_labels(idx):
        return images[idx], labels[idx]

    return ds.GeneratorDataset(batches, ["image", "label"], shuffle=False)


def main(argv=None):
    args = parse_args(argv)
    import mindspore as ms
    from mindspore import Tensor, nn
    from mindspore.train import Model
    from mindspore.train.callback import Callback

    from example.cross_device_lenet_femnist.lenet import LeNet5

    ms.set_context(mode=ms.PYNATIVE_MODE)
    ms.set_seed(args.silo)
    x, y, x_test, y_test = silo_data(args.silo, args.silos, args.classes_per_silo)
    network = LeNet5()
    callbacks = []
    if not args.alone:
        from mindspore_federated import FederatedLearningManager

        flm = FederatedLearningManager(yaml_config=args.yaml_config, model=network,
                                       sync_frequency=args.sync_frequency,
                                       http_server_address=args.http_server_address,
                                       run_mode="FEDERATED_LEARNING")
        callbacks.append(flm)
    print(f"READY silo {args.silo} ({len(y)} digits of classes {sorted(set(y.tolist()))})", flush=True)

    class Evaluate(Callback):
        def on_train_epoch_end(self, run_context):
            epoch = run_context.original_args().cur_epoch_num
            accuracy = float((network(Tensor(x_test)).asnumpy().argmax(axis=1) == y_test).mean())
            print(f"ITERATION {epoch} silo {args.silo} accuracy {accuracy:.4f}", flush=True)

    loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    opt = nn.Momentum(network.trainable_params(), args.client_learning_rate, args.momentum)
    dataset = make_dataset(x, y, args.client_batch_size, args.sync_frequency, args.silo)
    Model(network, loss, opt).train(args.fl_iteration_num, dataset, callbacks=[*callbacks, Evaluate()],
                                    dataset_sink_mode=False)
    print(f"DONE silo {args.silo}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
