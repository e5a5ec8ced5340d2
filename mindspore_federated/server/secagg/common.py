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


def wrong_iteration(host, req):
    return req.Iteration() != host.ctx.iteration


async def cached_reply(ctx, key, build):
    """The reply cached under `key`, else `await build()` (cached): for replies final for the iteration."""
    reply = ctx.replies.peek(key)
    if reply is None:
        reply = await build()
        reply = ctx.replies.get(key, lambda: reply)
    return reply
