"""Secure-aggregation helpers for tests: YAML sections, SDK devices with known updates, the expected FedAvg."""
import asyncio

import numpy as np

from mindspore_federated.client.device import Device, RetryPolicy


def pw_section(t=2, window_ms=20000, ratio=1.0, encrypt_type="PW_ENCRYPT"):
    return {"encrypt_type": encrypt_type, "pw_encrypt": {"share_secrets_ratio": ratio,
                                                         "cipher_time_window": window_ms,
                                                         "reconstruct_secrets_threshold": t}}


def trained(index):
    """Device `index`'s train_fn: each weight moves by a device-specific, element-specific step."""
    def train(features, plan):
        return {name: np.asarray(w, np.float32).ravel() + np.float32(0.1 * (index + 1))
                + np.arange(np.asarray(w).size, dtype=np.float32) * np.float32(0.01 * index)
                for name, w in features.items()}
    return train


def fedavg(start_model, members, data_sizes):
    """{name: Σ n_i w_i / Σ n_i} over `members` (device indices) trained from `start_model`."""
    total = sum(data_sizes[i] for i in members)
    out = {}
    for name, w in start_model.items():
        acc = np.zeros(np.asarray(w).size, np.float64)
        for i in members:
            acc += data_sizes[i] * trained(i)({name: w}, None)[name].astype(np.float64)
        out[name] = acc / total
    return out


def policy(timeout=90.0, retry_delay=0.05):
    return RetryPolicy(retry_delay=retry_delay, max_retry_delay=max(0.2, retry_delay), retry_jitter=0.5,
                       step_timeout=timeout, iteration_timeout=timeout,
                       max_restart_wait=2.0, max_restarts=1000)


def _slow(train, delay):
    async def slow_train(features, plan):
        result = train(features, plan)
        await asyncio.sleep(delay)
        return result
    return slow_train


async def run_devices(servers, fl_name, data_sizes, drop_at=None, prefix="dev", timeout=90.0, errors=False,
                      retry_delay=0.05, train_s=0.0):
    """One iteration of len(data_sizes) devices (device i drops after drop_at[i], if given; trains for
    i * train_s seconds); the outcomes (with errors=True a device's exception in its place)."""
    drop_at = drop_at or {}
    devices = [Device(servers, fl_name, fl_id=f"{prefix}{i:03d}", data_size=n, policy=policy(timeout, retry_delay),
                      drop_at=drop_at.get(i)) for i, n in enumerate(data_sizes)]
    try:
        return await asyncio.gather(*(d.run_iteration(_slow(trained(i), i * train_s)) for i, d in enumerate(devices)),
                                    return_exceptions=errors)
    finally:
        for d in devices:
            await d.close()
