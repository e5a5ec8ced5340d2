"""FedAvg accumulator: inline and executor paths, exact Σu/Σn, require_aggr passthrough, non-finite result."""
import asyncio

import numpy as np

from mindspore_federated.server.aggregation.fedavg import INLINE_ELEMENTS, FedAvgAccumulator
from mindspore_federated.server.model import Model, ModelSpec


def _spec(size):
    return ModelSpec([("w", (size,), True), ("frozen", (3,), False)])


def _base(size):
    return Model({"w": np.zeros(size, np.float32), "frozen": np.full(3, 7.0, np.float32)})


def _run(size, uploads):
    async def main():
        acc = FedAvgAccumulator(_spec(size))
        try:
            await asyncio.gather(*(acc.add({"w": u}, n) for u, n in uploads))
            await acc.drain()
            return acc.average(_base(size)), acc
        finally:
            acc.close()

    return asyncio.run(main())


def test_inline_path_exact_average():
    rng = np.random.default_rng(0)
    uploads = [(rng.standard_normal(10).astype(np.float32), n) for n in (1, 2, 3)]
    assert FedAvgAccumulator.is_inline({"w": uploads[0][0]})
    model, acc = _run(10, uploads)
    expect = sum(u for u, _ in uploads) / np.float32(6)
    np.testing.assert_allclose(model.weights["w"], expect, rtol=1e-6)
    np.testing.assert_array_equal(model.weights["frozen"], np.full(3, 7.0, np.float32))
    assert (acc.count, acc.data_size) == (3, 6)


def test_executor_path_for_large_updates():
    size = INLINE_ELEMENTS + 5
    uploads = [(np.full(size, float(i + 1), np.float32), 1) for i in range(4)]
    assert not FedAvgAccumulator.is_inline({"w": uploads[0][0]})
    model, acc = _run(size, uploads)
    np.testing.assert_array_equal(model.weights["w"], np.full(size, 2.5, np.float32))
    assert acc.count == 4


def test_non_finite_average_is_rejected_and_reset_clears():
    model, acc = _run(4, [(np.full(4, 3e38, np.float32), 1), (np.full(4, 3e38, np.float32), 1)])
    assert model is None
    acc.reset()
    assert acc.data_size == 0 and not acc.flat.any()
