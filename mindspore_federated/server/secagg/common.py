"""What every cipher round handler shares: the clock of its replies, window bookkeeping, verb outcomes."""
from mindspore_federated.clock import now_ms
from mindspore_federated.schema.tables import blob, text  # noqa: F401 - re-exported for the round modules

KEY_BYTES, IV_BYTES, SALT_BYTES = 32, 16, 32


def next_req_time():
    """Cipher rounds tell devices to retry at once: the current time (ms)."""
    return str(now_ms())


def counted(host, name, result):
    """Window bookkeeping after round `name` counted a request: open its window on its first request, close
    it at its threshold."""
    if result.count == 1:
        host.windows.started(name, None)
    if result.count >= host.ctx.cipher.thresholds[name]:
        host.windows.complete(name)


class Incoming:
    """One cipher request: its table (`module`'s root), fl_id, the iteration it is answered in and, with
    `build` ((retcode, reason, iteration) -> bytes), its reply."""

    def __init__(self, host, module, body, build=None):
        self.ctx = host.ctx
        self.req = getattr(module, module.__name__.rsplit(".", 1)[1]).GetRootAs(body, 0)
        self.iteration = host.ctx.iteration
        self.fl_id = text(self.req, "FlId")
        self.build = build

    @property
    def late(self):
        """The request is for another iteration than the current one."""
        return self.req.Iteration() != self.iteration

    def reply(self, retcode, reason):
        return self.build(retcode, reason, self.iteration)


def answer(host, name, result, reply, rejections, success):
    """The reply to a cipher_submit of round `name`: `rejections` maps an outcome to (retcode, reason);
    an accepted request is counted and gets `success` (retcode, reason)."""
    outcome = host.gate.check_state_result(result)
    if outcome in rejections:
        return reply(*rejections[outcome])
    counted(host, name, result)
    return reply(*success)


async def cached_reply(ctx, key, build):
    """The reply cached under `key`, else `await build()` (cached; one build for concurrent requests): for
    replies final for the iteration."""
    return await ctx.replies.async_get(key, build)
