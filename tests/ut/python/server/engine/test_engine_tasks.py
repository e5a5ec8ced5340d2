"""TaskGroup: hook tasks get their grace period at a stop, every other task is cancelled."""
import asyncio

from mindspore_federated.server.engine.tasks import TaskGroup


def test_stop_lets_hook_tasks_finish_and_cancels_the_rest():
    async def scenario():
        group, done = TaskGroup(), []

        async def hook():
            await asyncio.sleep(0.05)
            done.append("hook")

        loop_task = group.spawn(asyncio.sleep(3600))
        hook_task = group.spawn(hook(), hook=True)
        await group.stop(hook_timeout=10.0)
        assert done == ["hook"] and hook_task.done() and not hook_task.cancelled()
        assert loop_task.cancelled()

    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_stop_without_grace_cancels_hook_tasks_too():
    async def scenario():
        group = TaskGroup()
        hook_task = group.spawn(asyncio.sleep(3600), hook=True)
        await group.stop(hook_timeout=0.0)
        assert hook_task.cancelled()

    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_a_failed_task_does_not_stop_the_group():
    async def scenario():
        group = TaskGroup()

        async def boom():
            raise ValueError("boom")

        failed = group.spawn(boom())
        await asyncio.wait([failed])
        await asyncio.sleep(0)
        ok = group.spawn(asyncio.sleep(0, result="fine"))
        assert await ok == "fine"
        await group.stop()

    asyncio.run(asyncio.wait_for(scenario(), 10))
