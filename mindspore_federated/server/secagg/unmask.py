"""The unmask stage (PW_ENCRYPT): between the all-reduce and the average, wait for the survivors' shares,
reconstruct the masks that do not cancel and remove them from the aggregate."""
import asyncio
import time

from mindspore_federated import _core, errors
from mindspore_federated.log import get_logger
from mindspore_federated.server.secagg.reconstruct import ReconstructionError, noise, read_record

logger = get_logger(__name__)
POLL_S = 0.1
# read by bench/secagg.py: "unmasked iteration <i>: <n> sharers, <k> dropped, <s> s"
UNMASKED_LOG = "unmasked iteration %s: %d sharers, %d dropped, %.3f s"


class UnmaskStage:
    """`finish` is the lifecycle's `async (iteration, success, reason)`; a no-op unless the mode is PW."""

    def __init__(self, ctx, finish):
        self.ctx = ctx
        self.finish = finish

    async def run(self, run):
        ctx = self.ctx
        if not ctx.cipher.pw:
            return True
        if not await self._shares_arrived(run.iteration):
            return False  # the iteration ended without them (round timeout, global timeout, disable)
        started = time.perf_counter()
        try:
            record = await read_record(ctx.state, ctx.inst, run.iteration)
            length = sum(ctx.spec.sizes.values())
            vector = await asyncio.get_running_loop().run_in_executor(
                None, noise, record, ctx.cipher.t, ctx.cipher.prime, length)
        except ReconstructionError as exc:
            logger.warning("iteration %s: %s", run.iteration, exc)
            await self.finish(run.iteration, False,
                              errors.ITER_AGG_FAILED.format(reason=errors.UNMASK_FAILED.format(reason=exc)))
            return False
        self._apply(vector)
        run.unmasked = True
        dropped = len(set(record.sharers) - record.online)
        logger.info(UNMASKED_LOG, run.iteration, len(record.sharers), dropped, time.perf_counter() - started)
        return True

    async def _shares_arrived(self, iteration):
        """Waits until reconstructSecrets reached its threshold; False when the iteration ends first."""
        ctx, needed = self.ctx, self.ctx.cipher.thresholds["reconstructSecrets"]
        while not ctx.stopping:
            if await ctx.state.cipher_count(ctx.inst, iteration, "reconstructSecrets") >= needed:
                return True
            status = await ctx.state.status(ctx.inst)
            if status.get("iterationNum") != str(iteration):
                return False
            await asyncio.sleep(POLL_S)
        return False

    def _apply(self, vector):
        """Adds the noise of each aggregated weight (offsets: all weights in name order) to its sum."""
        spec, offset = self.ctx.spec, 0
        for name in sorted(spec.order):
            size = spec.sizes[name]
            acc = self.ctx.acc.sums.get(name)
            if acc is not None:
                _core.accumulate(acc, vector[offset:offset + size])
            offset += size
