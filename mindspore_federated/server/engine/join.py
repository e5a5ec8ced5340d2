"""Joining at start-up: adopt or create the instance, its hyper-parameters and the model declaration."""
from mindspore_federated import errors
from mindspore_federated.server.secagg.prime import load_prime
from mindspore_federated.state.keys import InstanceState


async def join(ctx, lifecycle, local_hp):
    """Creates/adopts the instance, hyper-params and model declaration (registration comes later)."""
    ctx.inst = await ctx.state.ensure_instance()
    status = await ctx.state.status(ctx.inst)
    if int(status.get("runningState", 0)) == InstanceState.STOP:
        raise errors.FederatedError(errors.START_STOPPING.format(fl_name=ctx.cfg.fl_name))
    ctx.apply_hyper_params(await ctx.state.sync_hyper_params(ctx.inst, local_hp))
    await load_prime(ctx)
    await ctx.state.declare_model(ctx.spec)
    if await _lost_own_updates(ctx, lifecycle, status):
        status = await ctx.state.status(ctx.inst)
    ctx.iteration = int(status["iterationNum"])
    ctx.running_state = int(status["runningState"])
    if ctx.initial_model is not None:  # else the model comes from a peer or a checkpoint (app.py)
        ctx.store.put(ctx.iteration - 1, ctx.initial_model)


async def _lost_own_updates(ctx, lifecycle, status):
    """A restart under the same node id within an iteration this node accepted updates for: those updates
    died with the old process, so the iteration fails now (before peers could aggregate without them)."""
    iteration = int(status["iterationNum"])
    if int(status.get("runningState", 0)) != InstanceState.RUNNING or \
            not (await ctx.state.update_counts(ctx.inst, iteration)).get(ctx.node_id):
        return False
    await lifecycle.fail_lost_updates(iteration)
    return True
