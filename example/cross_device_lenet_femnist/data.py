"""Offline data for the example: sklearn digits upscaled to 1x32x32 and a non-IID partition by label."""
from collections import namedtuple

import numpy as np

DigitsSplit = namedtuple("DigitsSplit", ["x_train", "y_train", "x_test", "y_test"])
_UPSCALE = 4  # 8x8 -> 32x32


def _to_images(flat_pixels):
    """(N, 64) pixels in 0..16 -> (N, 1, 32, 32) float32 in [0, 1], each pixel a 4x4 block."""
    images = np.asarray(flat_pixels, np.float32).reshape(-1, 8, 8) / np.float32(16.0)
    images = np.kron(images, np.ones((1, _UPSCALE, _UPSCALE), np.float32))
    return np.ascontiguousarray(images[:, None, :, :], dtype=np.float32)


def load_digits_split(seed=0, test_fraction=0.2):
    """Stratified train/test split of sklearn's bundled digits (1,797 samples, no download).

    Returns DigitsSplit(x_train, y_train, x_test, y_test): images float32 (N, 1, 32, 32) in [0, 1], labels int32.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    digits = load_digits()
    labels = digits.target.astype(np.int32)
    train_idx, test_idx = train_test_split(np.arange(len(labels)), test_size=test_fraction,
                                           random_state=seed, stratify=labels)
    images = _to_images(digits.data)
    return DigitsSplit(images[train_idx], labels[train_idx], images[test_idx], labels[test_idx])


def partition_non_iid(labels, num_devices, classes_per_device=2, seed=0):
    """Label-skewed (non-IID) split of sample indices over `num_devices` devices; every sample assigned once.

    The classes are put on a ring in random order; device d holds the `classes_per_device` consecutive classes
    starting at ring position d mod C, and the samples of each class are split evenly among the devices
    holding it. With 10 classes, 10 devices and 2 classes per device every class sits on exactly 2 devices.
    When num_devices * classes_per_device < C some classes are on no ring slot; each such class goes whole to
    one device (round robin), so those devices hold more classes. Returns a list of int64 index arrays
    (each shuffled).
    """
    labels = np.asarray(labels)
    if num_devices < 1 or classes_per_device < 1:
        raise ValueError("num_devices and classes_per_device must be >= 1")
    rng = np.random.default_rng(seed)
    classes = rng.permutation(np.unique(labels))
    num_classes = len(classes)
    per_device = min(classes_per_device, num_classes)
    holders = {c: [] for c in range(num_classes)}  # ring position -> devices holding that class
    for device in range(num_devices):
        for k in range(per_device):
            holders[(device + k) % num_classes].append(device)
    orphans = [pos for pos, devs in holders.items() if not devs]
    for i, pos in enumerate(orphans):
        holders[pos].append(i % num_devices)
    parts = [[] for _ in range(num_devices)]
    for pos, devices in holders.items():
        members = rng.permutation(np.flatnonzero(labels == classes[pos]))
        for device, chunk in zip(devices, np.array_split(members, len(devices))):
            parts[device].append(chunk)
    return [rng.permutation(np.concatenate(p).astype(np.int64)) if p else np.zeros(0, np.int64)
            for p in parts]
