"""What the plan's encrypt type asks of a device's upload (spec §5): pairwise masks (PW_ENCRYPT,
STABLE_PW_ENCRYPT: client/secure.py), Gaussian noise on the update (DP_ENCRYPT), or a SignDS sign and index
list instead of the weights (SIGNDS). Also where a device told to drop out stops."""
import math

import numpy as np

from mindspore_federated.client.secure import Dropped, PairwiseSession

SIGNDS_MAX_INDICES = 100


def dp_noise(weights, old, dp, rng):
    """w_old + clip(w - w_old, dp_norm_clip) + N(0, σ²), σ = clip·sqrt(2 ln(1.25/δ))/ε (Gaussian mechanism)."""
    names = sorted(weights)
    delta = np.concatenate([np.asarray(weights[n], np.float32).ravel() - np.asarray(old[n], np.float32).ravel()
                            for n in names])
    norm = float(np.linalg.norm(delta))
    if norm > dp.dp_norm_clip > 0:
        delta *= np.float32(dp.dp_norm_clip / norm)
    sigma = dp.dp_norm_clip * math.sqrt(2.0 * math.log(1.25 / dp.dp_delta)) / dp.dp_eps
    delta += rng.normal(0.0, sigma, delta.size).astype(np.float32)
    out, offset = {}, 0
    for name in names:
        size = np.asarray(weights[name]).size
        out[name] = np.asarray(old[name], np.float32).ravel() + delta[offset:offset + size]
        offset += size
    return out


def signds_encode(weights, old, ds):
    """(sign, sorted index list): the direction most of the largest changes share, and where they are
    (global element index over the weights in name order, the order the features are uploaded in)."""
    names = sorted(weights)
    delta = np.concatenate([np.asarray(weights[n], np.float32).ravel() - np.asarray(old[n], np.float32).ravel()
                            for n in names])
    k = max(1, min(SIGNDS_MAX_INDICES, int(ds.sign_k * delta.size) or 1))
    top = np.argsort(-np.abs(delta), kind="stable")[:k]
    sign = 1 if float(delta[top].sum()) >= 0 else -1
    chosen = sorted(int(i) for i in top if np.sign(delta[i]) == sign) or [int(top[0])]
    return sign, chosen[:SIGNDS_MAX_INDICES]


class DevicePrivacy:
    """One iteration of one Device: `call(round, body)` sends with the device's retry rules."""

    def __init__(self, device, start, call):
        self.device = device
        self.plan = start.fl_plan
        self.mode = self.plan.encrypt_type if self.plan is not None else ""
        self.old = start.model() if self.mode in ("DP_ENCRYPT", "SIGNDS") else None  # read-only views
        self.call = call
        self.session = None

    def _drop(self, phase):
        if self.device.drop_at == phase:
            raise Dropped(phase)

    async def before_training(self):
        self._drop("startFLJob")
        if self.mode in ("PW_ENCRYPT", "STABLE_PW_ENCRYPT"):
            d = self.device
            self.session = PairwiseSession(d.fl_id, d.iteration, self.plan, self.call,
                                           stable=self.mode == "STABLE_PW_ENCRYPT", drop_at=d.drop_at,
                                           identity=d.identity)
            await self.session.before_training()

    def encode(self, weights):
        """(weights, extra build_update_model arguments) before weighting by data_size."""
        if self.mode == "DP_ENCRYPT" and self.device.dp_noise and self.plan.dp_params is not None:
            return dp_noise(weights, self.old, self.plan.dp_params, np.random.default_rng()), {}
        if self.mode == "SIGNDS" and self.plan.ds_params is not None:
            sign, index = signds_encode(weights, self.old, self.plan.ds_params)
            empty = {name: np.zeros(0, np.float32) for name in sorted(weights)}
            return empty, {"sign": sign, "index_array": index}
        return weights, {}

    def mask(self, weights):
        return self.session.mask(weights) if self.session is not None else weights

    async def after_upload(self):
        if self.session is not None:
            await self.session.after_upload()
        else:
            self._drop("updateModel")
