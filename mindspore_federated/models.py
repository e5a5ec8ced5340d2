"""Built-in initial models (pure numpy, no MindSpore): LeNet5 with MindSpore's parameter names."""
from collections import OrderedDict

import numpy as np

LENET5_SHAPES = OrderedDict([
    ("conv1.weight", (6, 1, 5, 5)), ("conv1.bias", (6,)),
    ("conv2.weight", (16, 6, 5, 5)), ("conv2.bias", (16,)),
    ("fc1.weight", (120, 400)), ("fc1.bias", (120,)),
    ("fc2.weight", (84, 120)), ("fc2.bias", (84,)),
    ("fc3.weight", (10, 84)), ("fc3.bias", (10,)),
])  # 61,706 float32 parameters


def lenet5_weights(seed=0, copies=1):
    """LeNet5 weights (He-uniform like init, zero biases); `copies` > 1 repeats every tensor (10x model)."""
    rng = np.random.default_rng(seed)
    weights = OrderedDict()
    for copy in range(copies):
        suffix = "" if copies == 1 else f".copy{copy}"
        for name, shape in LENET5_SHAPES.items():
            if name.endswith("bias"):
                weights[name + suffix] = np.zeros(shape, np.float32)
            else:
                fan_in = int(np.prod(shape[1:]))
                bound = np.sqrt(6.0 / fan_in)
                weights[name + suffix] = rng.uniform(-bound, bound, size=shape).astype(np.float32)
    return weights


def lenet5_feature_map(seed=0, copies=1):
    from mindspore_federated.startup.feature_map import FeatureMap

    fm = FeatureMap()
    for name, arr in lenet5_weights(seed, copies).items():
        fm.add_feature(name, arr, True)
    return fm
