"""Aggregation as a pipeline of named stages (collect → all-reduce → [unmask] → average → finish)."""
import time
from dataclasses import dataclass, field

from mindspore_federated.metrics.server import STAGE_SECONDS


@dataclass
class AggregationRun:
    """What the stages of one iteration's aggregation pass on to each other."""

    iteration: int
    group: list = field(default_factory=list)   # node ids of the servers that accepted updates, sorted
    rank: int = 0                               # this server's place in `group`
    total_data_size: float = None               # Σn over the group after the all-reduce (None: local Σn)
    weight_sizes: object = None                 # Σn per aggregated weight after the all-reduce (None: local)
    model: object = None                        # the averaged Model
    unmasked: bool = False                      # secure aggregation removed the masks (PW_ENCRYPT)


@dataclass(frozen=True)
class Stage:
    """One named step; `run` is `async (AggregationRun) -> bool`, False ends the aggregation there."""

    name: str
    run: object


class AggregationPipeline:
    """Runs its stages in order; a stage (e.g. secure aggregation's unmask) can join anywhere."""

    def __init__(self, stages):
        self.stages = list(stages)

    @property
    def names(self):
        return [stage.name for stage in self.stages]

    def insert_after(self, name, stage):
        self.stages.insert(self.names.index(name) + 1, stage)

    def insert_before(self, name, stage):
        self.stages.insert(self.names.index(name), stage)

    async def run(self, iteration):
        """Runs every stage until one returns False; returns the run (its fields say how far it got)."""
        run = AggregationRun(iteration)
        for stage in self.stages:
            started = time.perf_counter()
            go_on = await stage.run(run)
            STAGE_SECONDS.labels(stage.name).observe(time.perf_counter() - started)
            if not go_on:
                break
        return run
