"""The round table: one row per device round; the device API routes and the engine's windows come from it."""
import asyncio

from mindspore_federated.server import round_table
from mindspore_federated.server.device_api import UPLOAD_ROUNDS, DeviceApi
from mindspore_federated.server.engine.windows import GLOBAL
from mindspore_federated.server.node import ServerNode
from tests.utils.engine import RecordingHooks, engine_config, peers_for, small_model, small_spec

NAMES = ["startFLJob", "updateModel", "getModel", "pullWeight", "pushWeight", "pushMetrics"]
CIPHER = ["exchangeKeys", "getKeys", "shareSecrets", "getSecrets", "getClientList", "reconstructSecrets",
          "pushListSign", "getListSign"]


def test_one_row_per_round():
    assert [r.name for r in round_table.ROUNDS] == NAMES + CIPHER
    assert set(round_table.BY_NAME) == set(NAMES + CIPHER)


def test_uploads_and_async_handlers_are_declared_by_the_rows():
    assert UPLOAD_ROUNDS == {"updateModel", "pushWeight"}
    sync = {r.name for r in round_table.ROUNDS if not r.is_async}
    assert sync == {"getModel", "pullWeight"}


def test_only_the_table_s_windows_reach_the_engine():
    rows = {r.name: r.window for r in round_table.ROUNDS if r.window is not None}
    assert list(rows) == ["startFLJob", "updateModel"] + CIPHER
    assert all(w.name == name for name, w in rows.items())
    assert [w.name for w in round_table.WINDOWS if w.opens_iteration] == ["startFLJob"]
    assert GLOBAL not in round_table.WINDOWS


def test_the_device_api_routes_every_row_under_the_url_prefix():
    async def scenario():
        spec = small_spec()
        async with peers_for(spec) as peers:
            node = ServerNode(engine_config("routes"), None, spec, small_model(), "127.0.0.1:1", peers,
                              RecordingHooks())
            api = DeviceApi(node, "/fl/", 1 << 20, 2)
            routed = {path: api.route(path) for path in api.routes}
            assert {p: n for p, n in routed.items() if n} == {f"/fl/{n}": n for n in NAMES}
            # the cipher rounds are routed only when the cluster's encrypt type runs them
            node.ctx.apply_hyper_params(engine_config("routes", encrypt={
                "encrypt_type": "STABLE_PW_ENCRYPT", "pw_encrypt": {"share_secrets_ratio": 1.0,
                                                                    "cipher_time_window": 3000,
                                                                    "reconstruct_secrets_threshold": 1}}
            ).hyper_params())
            assert {n for n in (api.route(p) for p in api.routes) if n} == set(NAMES) | {"exchangeKeys", "getKeys"}
            assert api.route("/startFLJob") is None
            await node.close()

    asyncio.run(asyncio.wait_for(scenario(), 20))


def test_a_body_that_fails_verification_gets_the_row_s_reply_and_counts_in_its_total():
    async def scenario():
        spec = small_spec()
        async with peers_for(spec) as peers:
            cfg = engine_config("verify")
            node = ServerNode(cfg, None, spec, small_model(), "127.0.0.1:1", peers, RecordingHooks())
            node.ctx.apply_hyper_params(cfg.hyper_params())
            api = DeviceApi(node, "", 1 << 20, 2)
            garbage = b"\x01\x02\x03"
            for name, counter in (("startFLJob", "start_total"), ("getModel", "get_total")):
                row = round_table.BY_NAME[name]
                assert api.handle(name, garbage) == row.bad_body(node.host)
                assert getattr(node.ctx.stats, counter) == 1
            metrics = round_table.BY_NAME["pushMetrics"]
            assert api.handle("pushMetrics", garbage) == metrics.bad_body(node.host)
            await node.close()

    asyncio.run(asyncio.wait_for(scenario(), 20))
