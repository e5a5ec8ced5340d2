"""DIFF_SPARSE_QUANT uploads on the server (spec §6): every check runs before the update is counted, then
one C++ pass decodes the upload straight into the FedAvg accumulator (server/aggregation/fedavg.py)."""
from collections import OrderedDict

import numpy as np

from mindspore_federated import _core, errors
from mindspore_federated.config.schema import DIFF_SPARSE_QUANT, NO_UPLOAD_COMPRESS_TYPES

DIFF_SPARSE_QUANT_CODE = 1
MAX_DATA_SIZE = 65535       # startFLJob refuses larger data sizes (server/rounds.py)
MASK_CACHE = 2              # keep-masks kept: this iteration's and a late device's


def upload_compression(hp):
    """The upload compression the cluster advertises and decodes: DIFF_SPARSE_QUANT unless the encrypt type
    takes plain uploads only (PW_ENCRYPT, SIGNDS), else NO_COMPRESS."""
    if hp.get("upload_compress_type") != DIFF_SPARSE_QUANT:
        return "NO_COMPRESS"
    if hp.get("encrypt_type", "NOT_ENCRYPT") in NO_UPLOAD_COMPRESS_TYPES:
        return "NO_COMPRESS"
    return DIFF_SPARSE_QUANT


class CompressedUpload:
    """A checked DIFF_SPARSE_QUANT upload; `add_into` decodes it into the accumulator views it names."""

    def __init__(self, body, mask, segments, elements):
        self.body = body
        self.mask = mask
        self.segments = segments
        self.elements = elements

    def add_into(self, data_size):
        _core.add_diff_sparse_quant(self.mask, self.body, self.segments, float(data_size))


class UploadDecoder:
    """Checks compressed uploads; caches the keep-masks (one per iteration) and the |max| of each weight of
    the model devices train from."""

    def __init__(self):
        self._masks = OrderedDict()
        self._absmax_model = None
        self._absmax = {}

    def mask(self, seed, rate, param_num):
        key = (seed, rate, param_num)
        mask = self._masks.get(key)
        if mask is None:
            mask = self._masks[key] = _core.sparse_mask(seed, rate, param_num)
            while len(self._masks) > MASK_CACHE:
                self._masks.popitem(last=False)
        return mask

    def absmax(self, model, name):
        if self._absmax_model is not model:
            self._absmax_model, self._absmax = model, {}
        value = self._absmax.get(name)
        if value is None:
            w = model.weights[name]
            value = self._absmax[name] = float(np.max(np.abs(w))) if w.size else 0.0
        return value

    def check(self, ctx, body, req_iteration, compressed):
        """(problem text or None, CompressedUpload or None) for the compressed fields of an upload."""
        compress_type, rate, names, entries = compressed
        if upload_compression(ctx.hp) != DIFF_SPARSE_QUANT:
            return errors.COMPRESS_NOT_CONFIGURED, None
        if compress_type != DIFF_SPARSE_QUANT_CODE:
            return errors.COMPRESS_UNKNOWN_TYPE.format(value=compress_type), None
        want = np.float32(ctx.hp["upload_sparse_rate"])
        if np.float32(rate) != want:
            return errors.COMPRESS_RATE.format(got=float(rate), want=float(want)), None
        if req_iteration != ctx.iteration:
            # the cluster answers a wrong iteration first; this only shows while this server catches up
            return errors.COMPRESS_ITERATION.format(iteration=req_iteration, current=ctx.iteration), None
        problem = _check_names(ctx.spec, names, entries)
        if problem:
            return problem, None
        model = ctx.model_for(ctx.iteration - 1)
        param_num = sum(ctx.spec.sizes[n] for n in names)
        mask = self.mask(int(req_iteration), float(want), param_num)  # the seed: the iteration
        segments = [(offset, count, min_val, max_val, model.weights[name], ctx.acc.sums.get(name),
                     self.absmax(model, name)) for name, offset, count, min_val, max_val in entries]
        problem = _core.check_diff_sparse_quant(mask, body, segments, float(MAX_DATA_SIZE))
        if problem:
            return problem, None
        return None, CompressedUpload(body, mask, segments, param_num)


def _check_names(spec, names, entries):
    """The first problem with name_vec and the entries' names, or None."""
    if not names:
        return errors.COMPRESS_NAMES_EMPTY
    if len(names) != len(entries):
        return errors.COMPRESS_NAMES_COUNT.format(names=len(names), entries=len(entries))
    seen = set()
    for index, (name, entry) in enumerate(zip(names, entries)):
        if entry[0] != name:
            return errors.COMPRESS_NAME_ORDER.format(index=index, got=entry[0], want=name)
        if name not in spec.sizes:
            return errors.COMPRESS_NAME_UNKNOWN.format(name=name)
        if name in seen:
            return errors.COMPRESS_NAME_TWICE.format(name=name)
        seen.add(name)
    missing = min((name for name in spec.aggregated if name not in seen), default=None)
    if missing is not None:
        return errors.COMPRESS_MISSING.format(name=missing)
    return None
