"""Builders for unit tests of the server engine: a validated config, a small model, real peers and state."""
import contextlib
from collections import OrderedDict

import numpy as np

from mindspore_federated.config import load_config_dict
from mindspore_federated.server.model import Model, ModelSpec
from mindspore_federated.server.peers import Peers, max_frame_bytes
from tests.utils.cluster import BASE_CONFIG, _merge

SIZES = OrderedDict((("w1", 6), ("b1", 3)))


def engine_config(fl_name, redis_address="127.0.0.1:6379", **overrides):
    """A validated server config (tests.utils.cluster.BASE_CONFIG with `overrides` merged in)."""
    data = _merge(BASE_CONFIG, {"fl_name": fl_name, "distributed_cache": {"address": redis_address}})
    return load_config_dict(_merge(data, overrides), role="server")


def small_model(value=0.0):
    """A two-feature model (w1: 6, b1: 3), every weight aggregated, all set to `value`."""
    return Model(OrderedDict((name, np.full(size, value, np.float32)) for name, size in SIZES.items()))


def small_spec():
    from mindspore_federated.startup.feature_map import FeatureMap

    fm = FeatureMap()
    for name, size in SIZES.items():
        fm.add_feature(name, np.zeros(size, np.float32))
    return ModelSpec.from_feature_map(fm)


class RecordingHooks:
    """The process side of the engine (server.app.ServerApp) reduced to what a test observes."""

    def __init__(self):
        self.finished = []

    async def iteration_finished(self, ctx, iteration, stats, success, reason):
        self.finished.append((iteration, success, reason))

    def record_traffic(self, received, sent):
        pass


@contextlib.asynccontextmanager
async def redis_state(redis_address, fl_name, global_window_ms=60000):
    """The Redis backend of the cluster state on a real redis-server."""
    from mindspore_federated.state.clients import make_client
    from mindspore_federated.state.redis_state import RedisClusterState

    client = make_client(redis_address)
    try:
        yield RedisClusterState(client, fl_name, global_window_ms)
    finally:
        await client.aclose(close_connection_pool=True)


@contextlib.asynccontextmanager
async def memory_state(fl_name, global_window_ms=60000):
    """The in-memory backend of the cluster state."""
    from mindspore_federated.state.memory_state import MemoryClusterState

    yield MemoryClusterState(fl_name, global_window_ms)


@contextlib.asynccontextmanager
async def peers_for(spec):
    """Real peers (a communicator on an ephemeral loopback port)."""
    peers = Peers("127.0.0.1", 16, max_frame_bytes(spec))
    try:
        yield peers
    finally:
        await peers.close()
