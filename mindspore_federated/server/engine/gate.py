"""The availability gate: whether a round may be served now, and the plain-text reply when it may not."""
from mindspore_federated import errors
from mindspore_federated.errors import Unavailable
from mindspore_federated.state.base import Outcome
from mindspore_federated.state.keys import InstanceState


class Gate:
    """Reads the engine's flags; `read_only` rounds (getModel) stay open in safe mode and while stopping."""

    def __init__(self, ctx):
        self.ctx = ctx

    def check(self, read_only):
        """None when a round may be served now, else the plain-text reply."""
        ctx = self.ctx
        if ctx.stopping or ctx.leaving:
            return None if read_only else errors.SAFEMODE
        if ctx.running_state == InstanceState.DISABLE:
            return errors.JOB_DISABLED
        if ctx.running_state != InstanceState.RUNNING and not read_only:
            return errors.JOB_DISABLED
        if (ctx.safemode or not ctx.cache_ok) and not read_only:
            return errors.SAFEMODE
        return None

    def check_state_result(self, result):
        """The outcome of a round verb; when this server's view of the instance is stale it syncs now and the
        request is answered safe mode (status lost, iteration changed) or disabled (not running)."""
        outcome = result.outcome
        if outcome.stale:
            self.ctx.request_sync()
            raise Unavailable(errors.JOB_DISABLED if outcome is Outcome.NOT_RUNNING else errors.SAFEMODE)
        return outcome
