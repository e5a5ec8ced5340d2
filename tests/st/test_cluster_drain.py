"""Graceful stop (SIGTERM) of a server that takes part in the aggregation that is about to run: the
server drains (joins the all-reduce, waits for the iteration to end), deregisters and exits 0, and the
iteration succeeds with the exact FedAvg model."""
import signal

import numpy as np

from tests.utils.cluster import start_job, start_server, update, wait_model, write_yaml
from tests.utils.multi import ENTRY, Registry, iteration_results, node_id_of

SUCCEED = 200


def test_sigterm_while_aggregation_is_due_drains_and_keeps_the_iteration(tmp_path, redis_server, fl_name,
                                                                          procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 3},
                           fl_iteration_num=5)
    dirs = [tmp_path / "srv_a", tmp_path / "srv_b"]
    pa, a = start_server(procs, yaml_path, dirs[0], name="server_a", entry=ENTRY)
    pb, b = start_server(procs, yaml_path, dirs[1], name="server_b", entry=ENTRY)
    id_a = node_id_of(pa)
    rng = np.random.default_rng(7)
    sizes = [2, 5, 9]
    uploads = [{"w1": rng.standard_normal(6).astype(np.float32) * n,
                "b1": rng.standard_normal(3).astype(np.float32) * n} for n in sizes]
    for d, target in enumerate([a, b, a]):
        assert start_job(target, fl_name, f"d{d}", 1, sizes[d]).retcode == SUCCEED
    assert update(a, fl_name, "d0", 1, uploads[0]).retcode == SUCCEED   # A holds an update
    assert update(b, fl_name, "d1", 1, uploads[1]).retcode == SUCCEED
    # A is frozen before the last update: B accepts it and starts the all-reduce, which needs A. A gets
    # SIGTERM before it could see the aggregation event: it must still take part, then leave.
    pa.send(signal.SIGSTOP)
    try:
        assert update(b, fl_name, "d2", 1, uploads[2]).retcode == SUCCEED
        pa.send(signal.SIGTERM)
    finally:
        pa.send(signal.SIGCONT)
    assert pa.wait_exit(20) == 0
    pa.wait_line("stop: taking part in the aggregation of iteration 1", timeout=1)
    assert "CALLBACK before_stopped" in pa.output()

    r = wait_model(b, fl_name, 1)
    assert r.iteration == 2
    for name in ("w1", "b1"):
        expect = sum(u[name] for u in uploads) / np.float32(sum(sizes))
        np.testing.assert_allclose(r.features[name], expect, rtol=1e-6, atol=1e-7)

    registry = Registry(redis_server, fl_name)
    try:
        status = registry.status()
        assert (status["iterationNum"], status["lastIterationSuccess"]) == ("2", "1"), status
        assert id_a not in registry.servers()                   # deregistered
        assert registry.heartbeat_ttl(id_a) == -2               # heartbeat key gone
    finally:
        registry.close()
    assert iteration_results(dirs, {1}) == {1: "success"}

    # the cluster goes on with B alone
    ones = {"w1": np.ones(6, np.float32), "b1": np.ones(3, np.float32)}
    for d in range(3):
        assert start_job(b, fl_name, f"n{d}", 2, 1).retcode == SUCCEED
    for d in range(3):
        assert update(b, fl_name, f"n{d}", 2, ones).retcode == SUCCEED
    np.testing.assert_array_equal(wait_model(b, fl_name, 2).features["w1"], np.ones(6, np.float32))


def test_model_handover_message_to_a_server_that_did_not_aggregate(tmp_path, redis_server, fl_name):
    """The model a leaving server hands over (MSG_PUT_MODEL over the real communicator) is taken only for
    this instance, for the iteration that is ending (or the just-ended one still missing), and only when it
    matches the declared features."""
    import asyncio
    from collections import OrderedDict

    from mindspore_federated.config import load_config
    from mindspore_federated.server.model import Model, ModelSpec
    from mindspore_federated.server.node import ServerNode
    from mindspore_federated.server.peers import Peers, max_frame_bytes
    from mindspore_federated.state.clients import make_client
    from mindspore_federated.state.redis_state import RedisClusterState
    from tests.utils.server_entry import small_feature_map

    cfg = load_config(write_yaml(tmp_path, redis_server.address, fl_name), role="server")
    fm = small_feature_map()
    spec = ModelSpec.from_feature_map(fm)

    def model(value, names=spec.order):
        return Model(OrderedDict((n, np.full(spec.sizes[n], value, np.float32)) for n in names))

    async def scenario():
        client = make_client(redis_server.address)
        receiver = Peers("127.0.0.1", 16, max_frame_bytes(spec))
        sender = Peers("127.0.0.1", 16, max_frame_bytes(spec))
        try:
            state = RedisClusterState(client, fl_name, 60000)
            node = ServerNode(cfg, state, spec, Model.from_feature_map(fm), "127.0.0.1:1", receiver, hooks=None)
            receiver.serve(node)
            await node.join(cfg.hyper_params())
            it, to = node.iteration, [receiver.address]
            assert await sender.offer_model(to, it, "another_instance", model(1.0)) == 0
            assert await sender.offer_model(to, it, node.inst, model(1.0, spec.order[:2])) == 0
            assert await sender.offer_model(to, it + 1, node.inst, model(1.0)) == 0
            assert await sender.offer_model(to, it, node.inst, model(2.0)) == 1
            np.testing.assert_array_equal(node.model_of(it).weights["w1"], np.full(6, 2.0, np.float32))
            assert await sender.offer_model(to, it, node.inst, model(3.0)) == 0    # it has one already
            assert await sender.offer_model(to, it - 1, node.inst, model(3.0)) == 0  # stored at start
            np.testing.assert_array_equal(node.model_of(it - 1).weights["w1"], fm["w1"].data)
            await node.close()
        finally:
            await receiver.close()
            await sender.close()
            await client.aclose(close_connection_pool=True)

    asyncio.run(asyncio.wait_for(scenario(), 30))
