"""FedAvg accumulator: every accepted update is streamed into one buffer per weight by the C++ kernel."""
import asyncio
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from mindspore_federated import _core
from mindspore_federated.server.model import Model

# Updates with more elements than this are accumulated on the executor thread (the kernel releases
# the GIL); smaller ones cost less than the thread hop and run inline.
INLINE_ELEMENTS = 1 << 20


def _elements(update):
    """Elements an update adds: name -> array, or a compressed upload (its `elements`)."""
    if isinstance(update, dict):
        return sum(a.size for a in update.values())
    return update.elements


class FedAvgAccumulator:
    """Σ uploaded weights (clients upload w·n) and Σ n for the aggregated features of one iteration.

    Σ n is also kept per weight (`weight_sizes`): a hybrid-training upload may leave weights out, and a weight
    is averaged over the updates that carried it (none: it keeps the iteration's starting value)."""

    def __init__(self, spec):
        self.spec = spec
        total = sum(spec.sizes[n] for n in spec.aggregated)
        # One contiguous buffer (the all-reduce works on it in place) with a view per aggregated weight.
        self.flat = np.zeros(total, np.float32)
        self.sums = OrderedDict()
        self.offsets = {}
        offset = 0
        for name in spec.aggregated:
            self.offsets[name] = offset
            self.sums[name] = self.flat[offset:offset + spec.sizes[name]]
            offset += spec.sizes[name]
        self.index = {name: i for i, name in enumerate(self.sums)}
        self.weight_sizes = np.zeros(len(self.sums), np.float64)
        self.data_size = 0
        self.count = 0
        self._executor = None
        self._pending = 0
        self._idle = None

    def reset(self):
        self.flat.fill(0.0)
        self.weight_sizes.fill(0.0)
        self.data_size = 0
        self.count = 0

    def _add(self, arrays, data_size):
        if not isinstance(arrays, dict):  # a compressed upload (server/compressed.py) decodes itself in
            arrays.add_into(data_size)
            return
        for name, arr in arrays.items():
            acc = self.sums.get(name)
            if acc is not None:
                _core.accumulate(acc, arr)

    @staticmethod
    def is_inline(arrays):
        """True when add() will run without suspending (small updates)."""
        return arrays is not None and _elements(arrays) <= INLINE_ELEMENTS

    async def add(self, arrays, data_size):
        """Adds one device's update (name -> float32 view, or a checked compressed upload whose decoder adds
        it, data_size-weighted); large models run off the event loop."""
        elements = _elements(arrays)
        if elements <= INLINE_ELEMENTS:
            self._add(arrays, data_size)
        else:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="fedavg")
            self._pending += 1
            try:
                await asyncio.get_running_loop().run_in_executor(self._executor, self._add, arrays, data_size)
            finally:
                self._pending -= 1
                if self._pending == 0 and self._idle is not None:
                    self._idle.set()
        self.data_size += data_size
        self.count += 1
        if not isinstance(arrays, dict) or len(arrays) == len(self.sums):  # a compressed upload carries all
            self.weight_sizes += data_size
        else:
            for name in arrays:
                if name in self.index:
                    self.weight_sizes[self.index[name]] += data_size

    def extras(self):
        """[Σn, Σn per weight] as float64, what the cross-server all-reduce sums next to `flat`."""
        return np.concatenate(([float(self.data_size)], self.weight_sizes))

    async def drain(self):
        """Waits until no accumulation is in flight."""
        while self._pending:
            self._idle = asyncio.Event()
            await self._idle.wait()

    def average(self, base_model, total_data_size=None, weight_sizes=None):
        """New Model: Σu/Σn for aggregated weights, `base_model`'s values for require_aggr=False ones.

        `total_data_size` and `weight_sizes` override the local Σn (overall and per weight) after a
        cross-server all-reduce. A weight no update carried keeps its `base_model` value. Returns None when
        the result is not finite (the caller keeps the previous model).
        """
        n = total_data_size if total_data_size is not None else self.data_size
        per_weight = self.weight_sizes if weight_sizes is None else weight_sizes
        if n <= 0:
            return None
        out = self.flat.copy()
        uniform = bool(np.all(per_weight == n))
        if uniform:
            _core.divide(out, float(n))
        weights = OrderedDict()
        for name in self.spec.order:
            if not self.spec.require_aggr[name]:
                weights[name] = base_model.weights[name]
                continue
            view = out[self.offsets[name]:self.offsets[name] + self.spec.sizes[name]]
            if not uniform:
                count = float(per_weight[self.index[name]])
                if count <= 0:
                    view[:] = np.asarray(base_model.weights[name]).reshape(-1)
                else:
                    _core.divide(view, count)
            weights[name] = view
        if not _core.all_finite(out):
            return None
        return Model(weights)

    def close(self):
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
