"""The ClusterState contract of the secure-aggregation verbs, on the in-memory backend and a real redis-server."""
from mindspore_federated.state.base import Need, Outcome
from tests.ut.python.state.test_contract import backend, meta, run, started  # noqa: F401 - the fixture


def test_cipher_submit_order_and_items(backend, fl_name):  # noqa: F811
    async def scenario():
        state, inst = await started(backend, fl_name)
        for dev in ("a", "b"):
            await state.start_fl_job(inst, 1, 5, dev, meta(1), 1000)
        meta_need = Need("startFLJob")
        sub = state.cipher_submit
        assert (await sub(inst, 1, "exchangeKeys", 2, "x", b"k", meta_need, None, 10)).outcome is Outcome.NOT_MEMBER
        first = await sub(inst, 1, "exchangeKeys", 2, "a", b"\x00ka", meta_need, None, 1234)
        assert (first.outcome, first.count) == (Outcome.ACCEPTED, 1)
        assert (await sub(inst, 1, "exchangeKeys", 2, "a", b"k2", meta_need, None, 1)).outcome is Outcome.DUPLICATE
        assert (await sub(inst, 1, "exchangeKeys", 2, "b", b"kb", meta_need, None, 1)).count == 2
        await state.start_fl_job(inst, 1, 5, "c", meta(1), 1000)
        full = await sub(inst, 1, "exchangeKeys", 2, "c", b"kc", meta_need, None, 1)
        assert (full.outcome, full.count) == (Outcome.THRESHOLD_REACHED, 2)
        assert await state.cipher_values(inst, 1, "exchangeKeys") == {"a": b"\x00ka", "b": b"kb"}
        assert await state.cipher_count(inst, 1, "exchangeKeys") == 2
        items = {"b|a": b"\x01\x02", "c|a": b"\xff"}
        shared = await sub(inst, 1, "shareSecrets", 5, "a", b"", Need("exchangeKeys"), items, 5)
        assert shared.outcome is Outcome.ACCEPTED
        assert await state.cipher_items(inst, 1, "shareSecrets", ["b|a", "a|b", "c|a"]) == [b"\x01\x02", None, b"\xff"]
        assert (await sub(inst, 2, "shareSecrets", 5, "a", b"", Need("exchangeKeys"), None, 5)).outcome is \
            Outcome.ITERATION_CHANGED
        snap = await state.snapshot(inst, 1)
        assert snap.timers["exchangeKeys"] == 1234 and snap.timers["shareSecrets"] == 5
    run(backend, scenario)


def test_cipher_join_waits_for_its_round_and_counts_once(backend, fl_name):  # noqa: F811
    async def scenario():
        state, inst = await started(backend, fl_name)
        for dev in ("a", "b"):
            await state.start_fl_job(inst, 1, 5, dev, meta(1), 1000)
            assert (await state.cipher_join(inst, 1, "getKeys", dev, Need("exchangeKeys"), "exchangeKeys", 2, 1)
                    ).outcome is Outcome.NOT_READY
            await state.cipher_submit(inst, 1, "exchangeKeys", 2, dev, b"k", Need("startFLJob"), None, 1)
        assert (await state.cipher_join(inst, 1, "getKeys", "z", Need("exchangeKeys"), "exchangeKeys", 2, 1)
                ).outcome is Outcome.NOT_MEMBER
        joined = await state.cipher_join(inst, 1, "getKeys", "a", Need("exchangeKeys"), "exchangeKeys", 2, 1)
        again = await state.cipher_join(inst, 1, "getKeys", "a", Need("exchangeKeys"), "exchangeKeys", 2, 1)
        assert (joined.outcome, joined.count, again.count) == (Outcome.ACCEPTED, 1, 1)
        # getClientList: ready when the accepted updates reach the threshold, for devices that uploaded
        need_up = Need("updateModel", "s")
        assert (await state.cipher_join(inst, 1, "getClientList", "a", need_up, "updateModel", 1, 1)
                ).outcome is Outcome.NOT_READY
        await state.cipher_join(inst, 1, "getSecrets", "a", Need("getKeys"), "exchangeKeys", 2, 1)
        assert (await state.update_model(inst, 1, 5, "b", "n1", 1, 0, 1, need_secrets=True)).outcome is \
            Outcome.NOT_MEMBER
        assert (await state.update_model(inst, 1, 5, "a", "n1", 1, 0, 1, need_secrets=True)).outcome is \
            Outcome.ACCEPTED
        assert await state.update_set(inst, 1) == {"a"}
        assert (await state.cipher_join(inst, 1, "getClientList", "b", need_up, "updateModel", 1, 1)
                ).outcome is Outcome.NOT_MEMBER
        assert (await state.cipher_join(inst, 1, "getClientList", "a", need_up, "updateModel", 1, 1)).count == 1
        assert await state.finish_iteration(inst, 1, True, "ok", 3)
        assert (await state.cipher_join(inst, 1, "getKeys", "b", Need("exchangeKeys"), "exchangeKeys", 2, 1)
                ).outcome is Outcome.ITERATION_CHANGED
    run(backend, scenario)


def test_cluster_prime_is_set_once(backend, fl_name):  # noqa: F811
    async def scenario():
        a, b = await backend.state(fl_name), await backend.state(fl_name)
        assert await a.cluster_prime(None) is None
        assert await a.cluster_prime(b"\x01" * 33) == b"\x01" * 33
        assert await b.cluster_prime(b"\x02" * 33) == b"\x01" * 33
    run(backend, scenario)
