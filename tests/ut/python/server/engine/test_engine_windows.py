"""RoundWindows: start times, the iteration's global window, next request time and timeouts."""
import asyncio

from mindspore_federated import errors
from mindspore_federated.clock import now_ms
from mindspore_federated.server.engine.context import EngineContext
from mindspore_federated.server.engine.windows import GLOBAL, RoundWindows, Window
from mindspore_federated.server.round_table import WINDOWS
from tests.utils.engine import RecordingHooks, engine_config, peers_for, small_spec

START = Window("startFLJob", "start_fl_job_time_window", "field:startFLJob", "threshold_start",
               opens_iteration=True)
UPDATE = Window("updateModel", "update_model_time_window", "sum", "threshold_update")


async def _windows(peers, **round_cfg):
    cfg = engine_config("windows", round=round_cfg)
    ctx = EngineContext(cfg, None, small_spec(), None, "127.0.0.1:1", peers, RecordingHooks())
    ctx.apply_hyper_params(cfg.hyper_params())
    ctx.iteration = 7
    windows = RoundWindows(ctx, (START, UPDATE))
    expired, opened = [], []

    async def on_expired(*args):
        expired.append(args)

    windows.on_expired, windows.on_opened = on_expired, opened.append
    return ctx, windows, expired, opened


def run(scenario):
    async def with_peers():
        async with peers_for(small_spec()) as peers:
            await scenario(peers)

    asyncio.run(asyncio.wait_for(with_peers(), 20))


def test_the_round_table_declares_the_fedavg_windows():
    assert WINDOWS[:2] == (START, UPDATE)
    # then one window per cipher round (secure aggregation), each on cipher_time_window
    assert all(w.hp_key == "cipher_time_window" and w.guard == f"field:{w.name}" for w in WINDOWS[2:])


def test_the_opening_round_starts_the_global_window_and_sets_the_next_request_time():
    async def scenario(peers):
        ctx, windows, _, opened = await _windows(peers, start_fl_job_time_window=30000,
                                                 update_model_time_window=20000)
        ctx.replies.get("stale", lambda: b"x")
        windows.started("startFLJob", 1000)
        windows.started("startFLJob", 5000)   # known already: neither recorded again nor announced
        assert windows.starts == {"startFLJob": 1000, GLOBAL.name: 1000}
        assert opened == ["startFLJob"]
        assert ctx.stats.start_ms == 1000 and len(ctx.replies) == 0
        assert windows.next_req_time() == 1000 + 30000 + 20000
        windows.cancel()

    run(scenario)


def test_before_any_round_opens_the_next_request_time_counts_from_the_iteration_start():
    async def scenario(peers):
        before = now_ms()
        ctx, windows, _, _ = await _windows(peers)
        windows.reset()
        assert windows.next_req_time() >= before + ctx.iteration_window_ms

    run(scenario)


def test_an_expired_window_ends_the_iteration_with_its_guard_and_threshold():
    async def scenario(peers):
        ctx, windows, expired, _ = await _windows(peers, start_fl_job_threshold=4, update_model_ratio=0.5)
        windows.open("updateModel", now_ms() - 60000)   # opened long ago: due at once
        deadline = asyncio.get_running_loop().time() + 10
        while not expired and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        assert expired == [(7, False, errors.ITER_ROUND_TIMEOUT.format(name="updateModel"), "sum", 2)]
        await ctx.tasks.stop()

    run(scenario)


def test_the_global_window_fails_the_iteration_without_a_guard():
    async def scenario(peers):
        ctx, windows, expired, _ = await _windows(peers)
        windows.open("startFLJob", now_ms() - 10 ** 7)   # every window of the iteration is over
        deadline = asyncio.get_running_loop().time() + 10
        while len(expired) < 2 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        assert sorted(expired, key=lambda e: e[2]) == sorted([
            (7, False, errors.ITER_ROUND_TIMEOUT.format(name="startFLJob"), "field:startFLJob", 2),
            (7, False, errors.ITER_GLOBAL_TIMEOUT, "none", 0)], key=lambda e: e[2])
        await ctx.tasks.stop()

    run(scenario)


def test_a_completed_round_and_a_reset_cancel_the_timers():
    async def scenario(peers):
        ctx, windows, expired, _ = await _windows(peers)
        windows.open("updateModel", now_ms() - 60000)
        windows.complete("updateModel")          # before the loop could run the due timer
        windows.open("startFLJob", now_ms() - 10 ** 7)
        windows.reset()
        await asyncio.sleep(0.05)
        assert expired == [] and windows.starts == {}

    run(scenario)
