"""FeatureMap / FeatureItem: the named float32 weights a server starts from (reference-compatible)."""
from collections import OrderedDict

import numpy as np

from mindspore_federated import errors


class FeatureItem:
    """One named weight: a flat float32 copy of the data, its shape and whether it is aggregated."""

    def __init__(self, name, data, require_aggr=True):
        if not isinstance(name, str) or not name:
            raise ValueError(errors.FEATURE_NAME.format(name=name))
        if not isinstance(data, np.ndarray):
            raise TypeError(errors.FEATURE_DATA_TYPE.format(name=name, got=type(data).__name__))
        if data.dtype != np.float32:
            raise TypeError(errors.FEATURE_DTYPE.format(name=name, dtype=data.dtype))
        if not isinstance(require_aggr, bool):
            raise TypeError(errors.PARAM_TYPE.format(name="require_aggr", type="bool",
                                                     got=type(require_aggr).__name__))
        self.feature_name = name
        self.shape = tuple(int(d) for d in data.shape)
        self.data = np.ascontiguousarray(data, dtype=np.float32).reshape(-1).copy()
        self.require_aggr = require_aggr

    @property
    def name(self):
        return self.feature_name

    def __repr__(self):
        return f"FeatureItem({self.feature_name!r}, shape={self.shape}, require_aggr={self.require_aggr})"


class FeatureMap:
    """Ordered collection of FeatureItems; insertion order is the declared order."""

    def __init__(self):
        self._items = OrderedDict()

    def add_feature(self, name, data, require_aggr=True):
        """Adds (or replaces) a feature; `data` must be a float32 ndarray (0-d and strided views allowed)."""
        item = FeatureItem(name, data, require_aggr)
        self._items[name] = item
        return item

    def feature_map(self):
        """The items as an ordered dict name -> FeatureItem (reference accessor)."""
        return self._items

    def items(self):
        return list(self._items.values())

    def names(self):
        return list(self._items)

    def __len__(self):
        return len(self._items)

    def __contains__(self, name):
        return name in self._items

    def __getitem__(self, name):
        return self._items[name]

    @classmethod
    def from_any(cls, value):
        """Builds a FeatureMap from a FeatureMap, a dict name -> float32 ndarray, or None (empty)."""
        if value is None:
            return cls()
        if isinstance(value, FeatureMap):
            return value
        if isinstance(value, dict):
            fm = cls()
            for name, data in value.items():
                fm.add_feature(name, data, True)
            return fm
        raise TypeError(f"feature_map should be a FeatureMap, a dict or a checkpoint path, but got "
                        f"{type(value).__name__}")
