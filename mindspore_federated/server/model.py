"""Model spec (names, sizes, require_aggr), immutable models and the store of the last 3 iterations."""
import json
from collections import OrderedDict

import numpy as np

from mindspore_federated import errors
from mindspore_federated.compression import quant_encode

MODEL_STORE_SIZE = 3


class ModelSpec:
    """The declared features of a model: order, flat sizes, shapes and require_aggr flags."""

    def __init__(self, entries):
        # entries: list of (name, shape tuple, require_aggr)
        self.order = [name for name, _, _ in entries]
        self.shapes = {name: tuple(shape) for name, shape, _ in entries}
        self.sizes = {name: int(np.prod(shape, dtype=np.int64)) for name, shape, _ in entries}
        self.require_aggr = {name: bool(aggr) for name, _, aggr in entries}
        self.aggregated = [n for n in self.order if self.require_aggr[n]]
        self.reply_order = sorted(self.order)

    @classmethod
    def from_feature_map(cls, fm):
        return cls([(item.name, item.shape, item.require_aggr) for item in fm.items()])

    @classmethod
    def from_info(cls, info_text):
        """The spec declared in ModelInfo:String (a server started without a feature map adopts it).
        Raises ValueError when the declaration is unusable (no features, a shape that does not match the
        byte size)."""
        info = json.loads(info_text)
        features = info["features"]
        order = info.get("order") or list(features)
        entries = []
        for name in order:
            entry = features[name]
            shape = tuple(int(d) for d in entry.get("shape", [int(entry["size"]) // 4]))
            if int(np.prod(shape, dtype=np.int64)) * 4 != int(entry["size"]):
                raise ValueError(f"feature {name}: shape {list(shape)} does not match {entry['size']} bytes")
            entries.append((name, shape, bool(entry["require_aggr"])))
        if not entries:
            raise ValueError("no features declared")
        return cls(entries)

    def accepts(self, weights):
        """True when `weights` (name -> array) has exactly the declared names and element counts."""
        return set(weights) == set(self.order) and all(
            int(np.asarray(weights[n]).size) == self.sizes[n] for n in self.order)

    def to_info(self):
        """JSON text stored in ModelInfo:String (sizes in bytes, as the reference)."""
        features = OrderedDict()
        for name in self.order:
            features[name] = {"size": self.sizes[name] * 4, "type": "fp32",
                              "require_aggr": self.require_aggr[name], "shape": list(self.shapes[name])}
        return json.dumps({"features": features, "order": self.order})

    def check_against(self, info_text):
        """None when consistent with the cached declaration, else the reference's error text."""
        cached = json.loads(info_text)["features"]
        if len(self.order) != len(cached):
            return errors.START_FEATURE_COUNT.format(local=len(self.order), cached=len(cached))
        for name in self.order:
            if name not in cached:
                return errors.START_FEATURE_NOT_FOUND.format(name=name)
            entry = cached[name]
            if bool(entry["require_aggr"]) != self.require_aggr[name]:
                return errors.START_FEATURE_AGGR.format(local=int(self.require_aggr[name]),
                                                        cached=int(bool(entry["require_aggr"])))
            if int(entry["size"]) != self.sizes[name] * 4:
                return errors.START_FEATURE_SIZE.format(local=self.sizes[name] * 4, cached=int(entry["size"]))
        return None

    def total_size(self):
        return sum(self.sizes.values())

    def total_bytes(self):
        return 4 * self.total_size()


class Model:
    """Read-only flat float32 weights keyed by name, in declared order."""

    __slots__ = ("weights", "_quant")

    def __init__(self, weights):
        self.weights = weights
        self._quant = None
        for arr in weights.values():
            arr.flags.writeable = False

    def quantized(self, name):
        """The QUANT encoding of weight `name` (QuantFeature), computed once per model for every reply."""
        if self._quant is None:
            self._quant = {}
        quant = self._quant.get(name)
        if quant is None:
            quant = self._quant[name] = quant_encode(self.weights[name])
        return quant

    @classmethod
    def from_feature_map(cls, fm):
        return cls(OrderedDict((item.name, item.data.copy()) for item in fm.items()))

    @classmethod
    def from_arrays(cls, spec, arrays):
        """A model in `spec`'s order from name -> array of any shape (flattened float32 copies)."""
        return cls(OrderedDict((n, np.ascontiguousarray(arrays[n], np.float32).reshape(-1).copy())
                               for n in spec.order))

    def shaped(self, spec):
        """Name -> array in the declared shape (views, no copies)."""
        return OrderedDict((n, self.weights[n].reshape(spec.shapes[n])) for n in spec.order)

    def nbytes(self):
        return sum(a.nbytes for a in self.weights.values())


class ModelStore:
    """iteration -> Model for the newest MODEL_STORE_SIZE iterations."""

    def __init__(self):
        self._models = OrderedDict()

    def put(self, iteration, model):
        self._models[iteration] = model
        self._models.move_to_end(iteration)
        while len(self._models) > MODEL_STORE_SIZE:
            self._models.popitem(last=False)

    def get(self, iteration):
        return self._models.get(iteration)

    def newest_iteration(self):
        return max(self._models) if self._models else -1

    def newest(self):
        return self._models[self.newest_iteration()] if self._models else None

    def reset(self, iteration, model):
        """Forgets every model and stores `model` as `iteration` (new instance: newest becomes iteration 0)."""
        self._models.clear()
        self.put(iteration, model)

    def iterations(self):
        return list(self._models)
