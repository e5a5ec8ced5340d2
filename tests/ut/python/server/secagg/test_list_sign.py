"""pushListSign / getListSign (used with PKI; the signature checks come with client verification): the
signatures are stored once per device that got the client list and handed out once enough are in."""
import asyncio
import json

from mindspore_federated import errors
from mindspore_federated.client.messages import cipher as c
from mindspore_federated.clock import now_ms
from mindspore_federated.server.node import ServerNode
from mindspore_federated.server.secagg import list_rounds
from mindspore_federated.state.base import Need
from tests.utils.engine import RecordingHooks, engine_config, memory_state, peers_for, small_model, small_spec
from tests.utils.secagg import pw_section


async def _through_the_client_list(state, ctx, fl_id):
    """A device's rounds up to getClientList, through the state verbs."""
    it, inst, th = ctx.iteration, ctx.inst, ctx.cipher.thresholds
    meta = json.dumps({"data_size": 1, "now_time": now_ms(), "eval_data_size": 0})
    await state.start_fl_job(inst, it, ctx.threshold_start, fl_id, meta, now_ms())
    await state.cipher_submit(inst, it, "exchangeKeys", th["exchangeKeys"], fl_id, b"k", Need("startFLJob"),
                              None, now_ms())
    await state.cipher_join(inst, it, "getKeys", fl_id, Need("exchangeKeys"), "exchangeKeys", 1, now_ms())
    await state.cipher_submit(inst, it, "shareSecrets", th["shareSecrets"], fl_id, b"", Need("getKeys"), None,
                              now_ms())
    await state.cipher_join(inst, it, "getSecrets", fl_id, Need("shareSecrets"), "shareSecrets", 1, now_ms())
    await state.update_model(inst, it, ctx.threshold_update, fl_id, ctx.node_id, it, 0, now_ms(),
                             need_secrets=True)


def test_list_signatures_are_collected_then_handed_out(fl_name):
    async def main():
        spec = small_spec()
        cfg = engine_config(fl_name, encrypt=pw_section(t=1), round={"start_fl_job_threshold": 3,
                                                                      "update_model_ratio": 0.6})
        async with memory_state(fl_name) as state, peers_for(spec) as peers:
            node = ServerNode(cfg, state, spec, small_model(), "127.0.0.1:1", peers, RecordingHooks())
            await node.join(cfg.hyper_params())
            ctx, host = node.ctx, node.host
            assert ctx.cipher.thresholds["pushListSign"] == 2
            for fl_id in ("a", "b"):
                await _through_the_client_list(state, ctx, fl_id)
            for fl_id in ("a", "b"):
                await state.cipher_join(ctx.inst, 1, "getClientList", fl_id, Need("updateModel", "s"),
                                        "updateModel", ctx.threshold_update, now_ms())
            get = c.CIPHER_PARSERS["getListSign"]
            push = c.CIPHER_PARSERS["pushListSign"]
            assert push(await list_rounds.push_list_sign(host, c.build_push_list_sign("a", 1, b"sig-a"))).ok
            early = get(await list_rounds.get_list_sign(host, c.build_get_list_sign("a", 1)))
            assert (early.retcode, early.reason) == (201, errors.GLS_NOT_READY)
            again = push(await list_rounds.push_list_sign(host, c.build_push_list_sign("a", 1, b"other")))
            assert (again.retcode, again.reason) == (200, errors.EK_DUPLICATE)
            stranger = push(await list_rounds.push_list_sign(host, c.build_push_list_sign("z", 1, b"sig-z")))
            assert (stranger.retcode, stranger.reason) == (300, errors.PLS_NOT_LISTED)
            late = push(await list_rounds.push_list_sign(host, c.build_push_list_sign("a", 7, b"sig-a")))
            assert (late.retcode, late.reason) == (300, errors.PLS_ITERATION)
            assert push(await list_rounds.push_list_sign(host, c.build_push_list_sign("b", 1, b"sig-b"))).ok
            done = get(await list_rounds.get_list_sign(host, c.build_get_list_sign("b", 1)))
            assert done.ok and done.signs == [("a", b"sig-a"), ("b", b"sig-b")]
            await node.close()

    asyncio.run(asyncio.wait_for(main(), 30))
