"""The cloud worker's STABLE_PW_ENCRYPT masks (spec §5.1 last paragraph, §9.3): exchangeKeys and getKeys each
iteration, then w·n plus a pairwise mask with every other silo, signed so that the masks cancel in the sum.

The key agreement and mask kernels are the device SDK's (client/secure.PairwiseSession over armour)."""
import time

from mindspore_federated import errors
from mindspore_federated.client.messages import ResponseCode
from mindspore_federated.client.secure import PairwiseSession
from mindspore_federated.clock import monotonic

NOT_READY_RETRY_S = 0.5   # getKeys answers SucNotReady until every silo of the iteration has sent its keys


class StableMasks:
    """One iteration's masks of one silo. `link` is the worker's ServerLink."""

    def __init__(self, link, fl_id, iteration, plan, deadline_s):
        self.link, self.deadline_s = link, float(deadline_s)
        self.session = PairwiseSession(fl_id, iteration, plan, self._call, stable=True)

    async def _call(self, round_name, body):
        """The SUCCEED reply of `round_name` (SucNotReady is retried until the deadline)."""
        deadline = monotonic() + self.deadline_s
        while True:
            reply = self.link.request(round_name, body, deadline_s=self.deadline_s)
            if reply.retcode == ResponseCode.SUCCEED:
                return reply
            if reply.retcode != ResponseCode.SucNotReady or monotonic() >= deadline:
                raise RuntimeError(errors.WORKER_REPLY.format(round=round_name, reason=reply.reason))
            time.sleep(NOT_READY_RETRY_S)

    def exchange(self):
        """exchangeKeys then getKeys, blocking. The session's only awaits are `_call`, which never suspends, so
        its coroutine completes in one step: no event loop is needed (training may run inside one, e.g. Jupyter)."""
        steps = self.session.before_training()
        try:
            steps.send(None)
        except StopIteration:
            return self
        steps.close()
        raise RuntimeError(errors.WORKER_REPLY.format(round="exchangeKeys", reason="the key exchange suspended"))

    def mask(self, features):
        """name -> float32 w·n: the masked upload (the masks span the weights in name order)."""
        return self.session.mask(features)
