"""Background tasks of one server: spawned, tracked, and ended together at a stop."""
import asyncio

from mindspore_federated.log import get_logger

logger = get_logger(__name__)


class TaskGroup:
    """Tasks of one server; `hook` tasks (summaries, checkpoints, callbacks) get time to finish at a stop."""

    def __init__(self):
        self._tasks = set()
        self._hooks = set()

    def spawn(self, coro, hook=False):
        """Runs `coro` as a task of this group on the running loop."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        if hook:
            self._hooks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task):
        self._tasks.discard(task)
        self._hooks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("background task failed: %r", task.exception())

    async def stop(self, hook_timeout=0.0):
        """Waits up to `hook_timeout` s for hook tasks, then cancels every task and waits for it to end."""
        if self._hooks and hook_timeout > 0:
            await asyncio.wait(list(self._hooks), timeout=hook_timeout)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
