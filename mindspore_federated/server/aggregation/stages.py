"""The FedAvg aggregation stages of one server: collect, all-reduce over the group, average, finish."""
from mindspore_federated import errors
from mindspore_federated.server.aggregation.pipeline import AggregationPipeline, Stage
from mindspore_federated.server.peers import allreduce_tag


class FedAvgStages:
    """Every update of the iteration is accumulated somewhere: all-reduce over the servers that accepted
    updates (ordered by node id), average, and let the lowest of them end the iteration.

    `finish` is the lifecycle's `async (iteration, success, reason)`."""

    def __init__(self, ctx, finish):
        self.ctx = ctx
        self.finish_iteration = finish

    def pipeline(self):
        return AggregationPipeline([Stage("collect", self.collect), Stage("all-reduce", self.allreduce),
                                    Stage("average", self.average), Stage("finish", self.finish)])

    async def collect(self, run):
        """The group: servers that accepted updates; False when this server is not part of it (it gets the
        model from a group member at the switch)."""
        ctx = self.ctx
        await ctx.acc.drain()
        counts = await ctx.state.update_counts(ctx.inst, run.iteration)
        run.group = sorted(node for node, count in counts.items() if count > 0)
        if ctx.node_id not in run.group:
            return False
        run.rank = run.group.index(ctx.node_id)
        return True

    async def allreduce(self, run):
        """Sums the accumulators (and Σn) of the group in place; fails the iteration if a member is gone."""
        if len(run.group) < 2:
            return True
        ctx = self.ctx
        live = await ctx.state.live_servers(ctx.inst)
        if any(node not in live for node in run.group):
            await self.finish_iteration(run.iteration, False, errors.ITER_SERVER_EXITED)
            return False
        extras = ctx.acc.extras()
        await ctx.peers.allreduce([live[n] for n in run.group], run.rank, ctx.acc.flat, extras,
                                  allreduce_tag(ctx.inst, run.iteration))
        run.total_data_size, run.weight_sizes = float(extras[0]), extras[1:]
        return True

    async def average(self, run):
        run.model = self.ctx.acc.average(self.ctx.model_for(run.iteration - 1), run.total_data_size,
                                         run.weight_sizes)
        if run.model is None:
            reason = errors.ITER_AGG_FAILED.format(reason="weights are not finite")
            await self.finish_iteration(run.iteration, False, reason)
            return False
        return True

    async def finish(self, run):
        """Keeps the model for the switch; rank 0 of the group ends the iteration (hybrid: pushMetrics)."""
        ctx = self.ctx
        if ctx.hybrid:
            ctx.aggregated.setdefault(("devices", run.iteration), run.model)
            return True
        ctx.aggregated[run.iteration] = run.model
        if run.rank == 0:
            await self.finish_iteration(run.iteration, True,
                                        errors.ITER_UNMASKED if run.unmasked else errors.ITER_AGGREGATED)
        return True
