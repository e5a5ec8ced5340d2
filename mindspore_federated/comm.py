"""Inter-server communication: the C++ `Communicator` plus asyncio helpers (add_reader serving, executors)."""
import asyncio
import logging

from mindspore_federated._core import CommError, CommTimeoutError, Communicator

__all__ = [
    "CommError",
    "CommTimeoutError",
    "Communicator",
    "allreduce",
    "request",
    "serve_requests",
]

logger = logging.getLogger(__name__)
DEFAULT_MAX_FRAME_BYTES = (1 << 31) - 1  # the Communicator's default cap


async def serve_requests(comm, handler, *, batch=64):
    """Answer `comm`'s incoming requests on the running loop until cancelled.

    The communicator's eventfd is watched with ``loop.add_reader``; each polled request runs
    ``await handler(peer, msg_type, payload)`` as its own task. The returned bytes become the reply;
    an exception becomes an error reply carrying ``str(exc)`` (the requester raises ``CommError``).

    Parameters
    ----------
    comm : Communicator
        A started communicator.
    handler : async callable (str, int, bytes) -> bytes
    batch : int
        Requests dequeued per wakeup.
    """
    loop = asyncio.get_running_loop()
    tasks = set()

    async def answer(request_id, peer, msg_type, payload):
        try:
            body = await handler(peer, msg_type, payload)
        except asyncio.CancelledError:
            comm.reply(request_id, b"", "request cancelled: server shutting down")
            raise
        except Exception as exc:  # noqa: BLE001 - every handler failure goes back to the requester
            logger.debug("request %d from %s failed: %s", request_id, peer, exc)
            comm.reply(request_id, b"", str(exc) or type(exc).__name__)
            return
        comm.reply(request_id, body if body is not None else b"")

    def on_readable():
        for request_id, peer, msg_type, payload in comm.poll_requests(batch):
            task = loop.create_task(answer(request_id, peer, msg_type, payload))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    fd = comm.fileno()
    loop.add_reader(fd, on_readable)
    try:
        await asyncio.Event().wait()  # until cancelled
    finally:
        loop.remove_reader(fd)
        for task in list(tasks):
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


async def request(comm, peer, msg_type, payload, timeout):
    """``comm.request`` in the default executor (it releases the GIL while blocked)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, comm.request, peer, msg_type, payload, timeout)


async def allreduce(comm, group, rank, data, tag, timeout):
    """In-place all-reduce of a float32 or float64 array in the default executor."""
    loop = asyncio.get_running_loop()
    fn = comm.allreduce_f64 if data.dtype.itemsize == 8 else comm.allreduce
    await loop.run_in_executor(None, fn, group, rank, data, tag, timeout)
