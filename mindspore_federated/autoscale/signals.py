"""Where the autoscaler's load signals come from: an interface, and the scheduler's own view of the cluster
state (live servers, devices accepted per finished iteration) until Prometheus metrics feed it."""
import abc
import dataclasses

from mindspore_federated.autoscale.policy import Signals


@dataclasses.dataclass(frozen=True)
class Sample:
    """Signals measured over the finished iteration `iteration` (0: none finished yet)."""

    iteration: int
    signals: Signals


class SignalSource(abc.ABC):
    @abc.abstractmethod
    async def sample(self) -> Sample:
        """The latest signals (iteration 0 and no servers before the first server created the instance)."""


class ClusterStateSignals(SignalSource):
    """Reads the cluster state: live servers, and the devices that asked to take part in the last finished
    iteration (startFLJob requests, accepted or not, summed over the servers' iteration summaries; without
    summaries, the updates the servers accepted)."""

    def __init__(self, state):
        self.state = state

    async def sample(self):
        inst = await self.state.instance()
        if inst is None:
            return Sample(0, Signals(servers=0))
        servers = sum(1 for s in await self.state.server_nodes(inst) if s.alive)
        finished = int((await self.state.status(inst)).get("iterationNum", 1)) - 1
        devices = None
        if finished >= 1:
            summaries = await self.state.summaries(inst, finished)
            if summaries:
                devices = sum(int(s.get("start_total", 0)) for s in summaries.values())
            else:
                devices = sum((await self.state.update_counts(inst, finished)).values())
        return Sample(finished, Signals(servers=servers, devices_per_iteration=devices))
