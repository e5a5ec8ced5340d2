"""Drain at a graceful stop: finish the aggregation this server holds updates for, hand its model over."""
import asyncio

from redis.exceptions import RedisError

from mindspore_federated.log import get_logger

logger = get_logger(__name__)
HANDOVER_TIMEOUT_S = 3.0   # a leaving server hands its aggregated model to the others within this
POLL_S = 0.01


class Drain:
    """The leaving side (drain) and the staying side (take_model) of a model handover between servers."""

    def __init__(self, ctx, lifecycle):
        self.ctx = ctx
        self.lifecycle = lifecycle

    async def drain(self, timeout):
        """Graceful stop, after in-flight requests and before deregistering.

        When this server holds updates of the current iteration and the cluster has accepted enough of
        them to aggregate (the last update may have just been accepted here or elsewhere), it takes part
        in the aggregation and waits for the iteration to end (at most `timeout` s), then hands the model
        to the live servers that did not aggregate, since they could otherwise only fetch it from here.
        Returns True when no update of this server was left un-aggregated.
        """
        ctx = self.ctx
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        iteration = ctx.iteration
        if not ctx.cache_ok:
            return False  # no group can be formed without the distributed cache
        try:
            counts = await asyncio.wait_for(ctx.state.update_counts(ctx.inst, iteration), 1.0)
        except (RedisError, asyncio.TimeoutError) as exc:
            logger.warning("stop: cannot read the update counts of iteration %s: %r", iteration, exc)
            return False
        if counts.get(ctx.node_id, 0) == 0 or ctx.iteration != iteration:
            return True
        if sum(counts.values()) < ctx.threshold_update:
            logger.warning("stop: leaving with %s un-aggregated updates of iteration %s",
                           counts[ctx.node_id], iteration)
            return False
        if not await self._aggregate_before_leaving(iteration, deadline, timeout):
            return False
        model = ctx.store.get(iteration)
        if ctx.last_switch == (iteration, True) and model is not None and not ctx.hybrid:
            await self._hand_over(iteration, model, counts, deadline)
        return True

    async def _aggregate_before_leaving(self, iteration, deadline, timeout):
        """Takes part in the aggregation of `iteration`; False when it did not end by `deadline`."""
        ctx = self.ctx
        loop = asyncio.get_running_loop()
        logger.info("stop: taking part in the aggregation of iteration %s before leaving", iteration)
        if iteration not in ctx.aggregating:
            ctx.spawn(self.lifecycle.aggregate(iteration))  # the group is fixed once the threshold is reached
        while ctx.iteration == iteration and loop.time() < deadline:
            await asyncio.sleep(POLL_S)
        if ctx.iteration == iteration:
            logger.warning("stop: iteration %s did not end within %.1f s", iteration, timeout)
            return False
        return True

    async def _hand_over(self, iteration, model, counts, deadline):
        """Offers the final model to the live servers that did not aggregate it."""
        ctx = self.ctx
        loop = asyncio.get_running_loop()
        try:
            live = await ctx.state.live_servers(ctx.inst)
        except RedisError as exc:
            logger.warning("stop: cannot list the live servers: %s", exc)
            return
        outside = [live[n] for n in sorted(live) if n != ctx.node_id and counts.get(n, 0) == 0]
        if outside:
            await ctx.peers.offer_model(outside, iteration, ctx.inst, model,
                                        min(HANDOVER_TIMEOUT_S, max(0.5, deadline - loop.time())))

    def take_model(self, instance, iteration, model):
        """A leaving peer hands over the final model of `iteration`; True when this server took it."""
        ctx = self.ctx
        if instance != ctx.inst or not ctx.spec.accepts(model.weights):
            return False
        if iteration == ctx.iteration and iteration not in ctx.aggregated:
            ctx.aggregated[iteration] = model   # the switch to the next iteration stores it
        elif iteration == ctx.iteration - 1 and ctx.store.get(iteration) is None:
            ctx.store.put(iteration, model)
            ctx.replies.clear()
        else:
            return False
        logger.info("took the model of iteration %s from a leaving server", iteration)
        return True
