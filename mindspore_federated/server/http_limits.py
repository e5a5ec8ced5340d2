"""Limits of the device HTTP engines against hostile or broken clients (issue 14): a cap on connections, time
limits on request heads and bodies (with a minimum body rate), the keep-alive idle timeout, and the
open-files limit they rest on. The same values drive both engines."""
import dataclasses
import resource

from mindspore_federated.log import get_logger

logger = get_logger(__name__)

LISTEN_BACKLOG = 65535     # the kernel caps it at net.core.somaxconn: a herd queues there, not in errors
FD_RESERVE = 256           # descriptors kept for Redis, peers, logs and files when capping connections
DRAIN_S = 5.0              # a refused or answered-then-closed connection is read and dropped this long at most


def raise_nofile_limit():
    """Soft RLIMIT_NOFILE up to the hard limit: every device is a socket (15,000 at once are expected)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            logger.warning("cannot raise the open-files limit from %d to %d: %s", soft, target, exc)
            return soft
        logger.info("open-files limit raised from %d to %d", soft, target)
        return target
    return soft


@dataclasses.dataclass(frozen=True)
class HttpLimits:
    """`client.http_*` and `client.max_connections` of the config (defaults: the schema's)."""

    max_connections: int = 32768
    header_timeout: float = 20.0     # s from the first byte of a request head to its blank line
    body_timeout: float = 20.0       # s: the window over which a body must keep `body_min_rate`
    body_min_rate: int = 512         # bytes/s a body must average over every window (0: one byte per window)
    idle_timeout: float = 75.0       # s a keep-alive connection may wait for its next request

    @classmethod
    def from_config(cls, cfg):
        client = cfg.client
        return cls(client.max_connections, client.http_header_timeout, client.http_body_timeout,
                   client.http_body_min_rate, client.http_idle_timeout)

    def body_too_slow(self, received, seconds):
        """True when `received` bytes over the last `seconds` (≥ body_timeout) are below the minimum rate."""
        return received < max(1, self.body_min_rate * seconds)

    def sweep_every(self):
        """How often the engines look at their connections' clocks (a quarter of the shortest limit)."""
        return min(5.0, max(0.1, min(self.header_timeout, self.body_timeout, self.idle_timeout) / 4))

    def connection_cap(self, nofile):
        """max_connections, lowered to what the open-files limit `nofile` allows (with a reserve)."""
        cap = min(self.max_connections, max(1, nofile - FD_RESERVE))
        if cap < self.max_connections:
            logger.info("client.max_connections %d lowered to %d by the open-files limit %d",
                           self.max_connections, cap, nofile)
        return cap
