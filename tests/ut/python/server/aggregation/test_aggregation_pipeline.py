"""AggregationPipeline: named stages run in order, a stage can join between two others or end the run."""
import asyncio

from mindspore_federated.server.aggregation.pipeline import AggregationPipeline, Stage

NAMES = ("collect", "all-reduce", "average", "finish")


def _recording(trace, name, result=True):
    async def stage(run):
        trace.append((name, run.iteration))
        return result

    return Stage(name, stage)


def test_stages_run_in_order_on_one_run():
    trace = []
    pipeline = AggregationPipeline([_recording(trace, n) for n in NAMES])
    asyncio.run(pipeline.run(3))
    assert trace == [("collect", 3), ("all-reduce", 3), ("average", 3), ("finish", 3)]


def test_an_unmask_stage_joins_between_all_reduce_and_average():
    trace = []
    pipeline = AggregationPipeline([_recording(trace, n) for n in NAMES])
    pipeline.insert_after("all-reduce", _recording(trace, "unmask"))
    pipeline.insert_before("collect", _recording(trace, "check"))
    assert pipeline.names == ["check", "collect", "all-reduce", "unmask", "average", "finish"]
    asyncio.run(pipeline.run(1))
    assert [name for name, _ in trace] == pipeline.names


def test_a_stage_that_returns_false_ends_the_run():
    trace = []
    pipeline = AggregationPipeline([_recording(trace, "collect", result=False), _recording(trace, "average")])
    run = asyncio.run(pipeline.run(5))
    assert trace == [("collect", 5)] and run.model is None
