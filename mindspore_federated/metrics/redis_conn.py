"""redis-py connection classes that count their round trips and failures (connection, timeout, protocol; not
error replies) in the process's metrics."""
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.asyncio.sentinel import SentinelManagedConnection
from redis.exceptions import ResponseError

from mindspore_federated.metrics.registry import PY_ERRORS, PY_TRIPS


async def _counted(call):
    """Awaits `call`; a failure that is not an error reply counts as a Redis error."""
    try:
        return await call
    except ResponseError:
        raise  # an error reply is an answer (e.g. CLIENT SETINFO on Redis < 7.2, NOSCRIPT): not a failure
    except Exception:
        PY_ERRORS.inc()
        raise


class _Counting:
    """Mixin: every packed write (one command or a whole pipeline) is one round trip."""

    async def send_packed_command(self, command, check_health=True):
        PY_TRIPS.inc()
        return await _counted(super().send_packed_command(command, check_health))

    async def connect(self, *args, **kwargs):
        return await _counted(super().connect(*args, **kwargs))

    async def read_response(self, *args, **kwargs):
        return await _counted(super().read_response(*args, **kwargs))


class CountingConnection(_Counting, Connection):
    """TCP."""


class CountingUnixConnection(_Counting, UnixDomainSocketConnection):
    """Unix socket."""


class CountingSentinelConnection(_Counting, SentinelManagedConnection):
    """TCP to the primary a Sentinel group names (redis-py discovers it before each connect)."""
