"""LeNet5 for 1x32x32 digits and a LocalTrainer that compiles one GRAPH_MODE train step per process."""
import threading
from collections import OrderedDict

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops

NUM_CLASSES = 10
IMAGE_SHAPE = (1, 32, 32)


class LeNet5(nn.Cell):
    """Classic LeNet5: conv5(6) - pool - conv5(16) - pool - fc120 - fc84 - fc10, ReLU, biases everywhere.

    Its trainable parameters are exactly mindspore_federated.models.LENET5_SHAPES (61,706 float32).
    """

    def __init__(self, num_classes=NUM_CLASSES, num_channels=1):
        super().__init__()
        self.conv1 = nn.Conv2d(num_channels, 6, 5, pad_mode="valid", has_bias=True)
        self.conv2 = nn.Conv2d(6, 16, 5, pad_mode="valid", has_bias=True)
        self.fc1 = nn.Dense(16 * 5 * 5, 120)
        self.fc2 = nn.Dense(120, 84)
        self.fc3 = nn.Dense(84, num_classes)
        self.relu = nn.ReLU()
        self.max_pool2d = nn.MaxPool2d(kernel_size=2, stride=2)
        self.flatten = nn.Flatten()

    def construct(self, x):
        x = self.max_pool2d(self.relu(self.conv1(x)))
        x = self.max_pool2d(self.relu(self.conv2(x)))
        x = self.flatten(x)
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        return self.fc3(x)


class _TrainStep(nn.Cell):
    """One SGD step on a zero-padded fixed-size batch; returns (mean loss over the real rows, logits).

    The loss is the sparse softmax cross-entropy averaged over the rows whose `mask` is 1, so padding rows
    contribute neither loss nor gradient. The logits (computed before the update) give the training accuracy.
    """

    def __init__(self, network, optimizer):
        super().__init__(auto_prefix=False)  # keep the parameter names of `network` unprefixed
        self.network = network
        self.optimizer = optimizer
        self.ce = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="none")
        self.grad_fn = ms.value_and_grad(self.forward, None, optimizer.parameters, has_aux=True)

    def forward(self, x, label, mask):
        logits = self.network(x)
        loss = (self.ce(logits, label) * mask).sum() / ops.maximum(mask.sum(), 1.0)
        return loss, logits

    def construct(self, x, label, mask):
        (loss, logits), grads = self.grad_fn(x, label, mask)
        loss = ops.depend(loss, self.optimizer(grads))
        return loss, logits


class _Logits(nn.Cell):
    """Inference wrapper: a separate top cell so evaluation has its own compiled graph."""

    def __init__(self, network):
        super().__init__(auto_prefix=False)
        self.network = network

    def construct(self, x):
        return self.network(x)


def _softmax_ce(logits, labels):
    """Per-sample sparse softmax cross-entropy in numpy (float64)."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return log_norm - z[np.arange(len(labels)), labels]


class LocalTrainer:
    """One LeNet5 + loss + Momentum optimizer shared by every simulated device of the process.

    The train step and the inference graph are compiled once (GRAPH_MODE, CPU) for a fixed batch shape: the last,
    short batch of an epoch is zero-padded and masked out of the loss, so a shard of any size never recompiles.
    The learning rate is a Parameter of the optimizer, so changing it does not recompile either; a new
    `batch_size` compiles one more graph. Calls are serialised by an internal lock (one device trains at a time).
    momentum: of nn.Momentum; the default 0.5 (not 0.9) keeps FedAvg steady on label-skewed shards.
    Note: the constructor switches the process to GRAPH_MODE on the CPU.
    """

    def __init__(self, momentum=0.5, eval_batch_size=128):
        ms.set_device("CPU")
        ms.set_context(mode=ms.GRAPH_MODE)
        self.net = LeNet5()
        self._params = OrderedDict((p.name, p) for p in self.net.trainable_params())
        self._opt = nn.Momentum(self.net.trainable_params(), learning_rate=Tensor(0.01, ms.float32),
                                momentum=momentum)
        self._lr = self._opt.learning_rate
        if not isinstance(self._lr, Parameter):  # pragma: no cover - MindSpore wraps a scalar Tensor lr
            raise TypeError("expected nn.Momentum to hold the learning rate as a Parameter")
        self._train_step = _TrainStep(self.net, self._opt)
        self._train_step.set_train()
        self._logits = _Logits(self.net)
        self._eval_batch_size = int(eval_batch_size)
        self._lock = threading.RLock()

    # -- weights ---------------------------------------------------------------------------------

    @property
    def parameter_shapes(self):
        """OrderedDict name -> shape of the trainable parameters (equals LENET5_SHAPES)."""
        return OrderedDict((name, tuple(p.shape)) for name, p in self._params.items())

    def load_weights(self, weights):
        """Copies `weights` (name -> flat or shaped float32 array, exactly the net's names) into the net."""
        missing = [n for n in self._params if n not in weights]
        unknown = [n for n in weights if n not in self._params]
        if missing or unknown:
            raise KeyError(f"weights do not match LeNet5: missing {missing}, unknown {unknown}")
        for name, param in self._params.items():
            arr = np.asarray(weights[name], dtype=np.float32)
            shape = tuple(param.shape)
            if arr.size != int(np.prod(shape)):
                raise ValueError(f"{name}: {arr.size} values, expected shape {shape}")
            param.set_data(Tensor(np.array(arr.reshape(shape), dtype=np.float32, copy=True)))

    def get_weights(self):
        """name -> flat float32 copy of every trainable parameter (LENET5_SHAPES order)."""
        return OrderedDict((name, p.asnumpy().astype(np.float32, copy=True).ravel())
                           for name, p in self._params.items())

    def _reset_optimizer(self, lr):
        for moment in self._opt.moments:
            moment.set_data(Tensor(np.zeros(moment.shape, np.float32)))
        self._lr.set_data(Tensor(np.float32(lr)))

    # -- training and evaluation -----------------------------------------------------------------

    def train(self, weights, images, labels, epochs, batch_size, lr, *, seed=None):
        """Local SGD-with-momentum from `weights` on (images, labels) for `epochs` shuffled epochs.

        Momentum starts at zero for every call (devices never share optimizer state).
        Returns (new_weights: name -> flat float32 array, mean training loss over all steps, training accuracy
        over the last epoch, i.e. of each batch's predictions just before its update, like a phone reports it).
        """
        images, labels = _check_data(images, labels)
        epochs, batch_size, lr = int(epochs), int(batch_size), float(lr)
        if epochs < 1 or batch_size < 1 or not lr > 0:
            raise ValueError(f"need epochs >= 1, batch_size >= 1, lr > 0; got {epochs}, {batch_size}, {lr}")
        if len(labels) == 0:
            raise ValueError("no local data to train on")
        rng = np.random.default_rng(seed)
        with self._lock:
            self.load_weights(weights)
            self._reset_optimizer(lr)
            total, steps = 0.0, 0
            for _ in range(epochs):
                order = rng.permutation(len(labels))
                correct = 0
                for start in range(0, len(order), batch_size):
                    idx = order[start:start + batch_size]
                    x, y, mask = _padded_batch(images, labels, idx, batch_size)
                    loss, logits = self._train_step(Tensor(x), Tensor(y), Tensor(mask))
                    total += float(loss.asnumpy())
                    steps += 1
                    correct += int((logits.asnumpy()[:len(idx)].argmax(axis=1) == labels[idx]).sum())
            new_weights = self.get_weights()
        return new_weights, total / steps, correct / len(labels)

    def evaluate(self, weights, images, labels):
        """(mean cross-entropy loss, accuracy) of `weights` (None: the net's current weights) on the data."""
        images, labels = _check_data(images, labels)
        with self._lock:
            if weights is not None:
                self.load_weights(weights)
            return self._evaluate_loaded(images, labels)

    def _evaluate_loaded(self, images, labels):
        if len(labels) == 0:
            return float("nan"), float("nan")
        bs = self._eval_batch_size
        losses, correct = 0.0, 0
        for start in range(0, len(labels), bs):
            idx = np.arange(start, min(start + bs, len(labels)))
            x, _, _ = _padded_batch(images, labels, idx, bs)
            logits = self._logits(Tensor(x)).asnumpy()[:len(idx)]
            y = labels[idx]
            losses += float(_softmax_ce(logits, y).sum())
            correct += int((logits.argmax(axis=1) == y).sum())
        return losses / len(labels), correct / len(labels)


def _check_data(images, labels):
    images = np.asarray(images, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int32)
    if images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"images must be (N, 1, 32, 32), got {images.shape}")
    if labels.shape != (len(images),):
        raise ValueError(f"labels must be ({len(images)},), got {labels.shape}")
    return images, labels


def _padded_batch(images, labels, idx, batch_size):
    """The samples `idx` zero-padded to `batch_size` rows, with a 1/0 float32 mask of the real rows."""
    n = len(idx)
    x = np.zeros((batch_size, *IMAGE_SHAPE), np.float32)
    y = np.zeros((batch_size,), np.int32)
    mask = np.zeros((batch_size,), np.float32)
    x[:n], y[:n], mask[:n] = images[idx], labels[idx], 1.0
    return x, y, mask

