"""The autoscaler loop: once per finished iteration, sample the signals, decide, act through a launcher,
and keep a table of its decisions."""
import asyncio
import dataclasses
import time

from mindspore_federated.autoscale.policy import decide
from mindspore_federated.log import get_logger

LOG = get_logger(__name__)


@dataclasses.dataclass(frozen=True)
class DecisionRow:
    iteration: int
    servers: int
    devices: object
    desired: int
    reason: str


@dataclasses.dataclass
class Autoscaler:
    """cfg: a PolicyConfig; source: a SignalSource; launcher: a Launcher; decisions: every DecisionRow."""

    cfg: object
    source: object
    launcher: object
    clock: object = time.monotonic
    last_change: object = None
    last_iteration: object = None
    decisions: list = dataclasses.field(default_factory=list)

    async def step(self):
        """One look at the cluster: a DecisionRow when a new iteration finished since the last look."""
        sample = await self.source.sample()
        if sample.iteration == self.last_iteration:
            return None
        self.last_iteration = sample.iteration
        s = sample.signals
        decision = decide(self.cfg, s, self.clock(), self.last_change)
        row = DecisionRow(sample.iteration, s.servers, s.devices_per_iteration, decision.desired, decision.reason)
        self.decisions.append(row)
        if decision.changes(s.servers):
            LOG.info("autoscale after iteration %d: %d -> %d servers (%s)", sample.iteration, s.servers,
                     decision.desired, decision.reason)
            self.last_change = self.clock()
            await self.launcher.scale(s.servers, decision.desired)
        return row

    def close(self):
        """Stops what the launcher started, when it started processes itself."""
        close = getattr(self.launcher, "close", None)
        if close is not None:
            close()

    async def run(self, interval_s):
        while True:
            try:
                await self.step()
            except Exception as exc:  # noqa: BLE001 - one bad look must not stop the loop
                LOG.warning("autoscale step failed: %s", exc)
            await asyncio.sleep(interval_s)


def table(rows):
    """The decisions as a small Markdown table."""
    out = ["| iteration | servers | devices | desired | reason |", "|---|---|---|---|---|"]
    out += [f"| {r.iteration} | {r.servers} | {r.devices} | {r.desired} | {r.reason} |" for r in rows]
    return "\n".join(out)
