"""The one Redis client factory of every role: address, AUTH, database and TLS settings from config."""
from dataclasses import dataclass
from typing import Optional

import redis.asyncio as aioredis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from mindspore_federated.errors import ConfigError
from mindspore_federated.state.pipelined import HAVE_HIREDIS, HOT_PATH_TIMEOUT_S, PipelinedRedis

PIPELINED_TLS = ("the configuration asks for TLS to Redis (enable_ssl), which the pipelined Redis client of "
                 "the server's hot path does not implement yet: refusing to start rather than use plain TCP")
PIPELINED_AUTH = ("the configuration asks for Redis {what}, which the pipelined Redis client of the server's "
                  "hot path does not implement yet: refusing to start rather than ignore it")


@dataclass(frozen=True)
class RedisSettings:
    """Where and how to reach Redis: `ip:port` or `unix:<path>`, optional AUTH (ACL user), database, TLS."""

    address: str
    username: Optional[str] = None
    password: Optional[str] = None
    db: int = 0
    tls: bool = False
    ca_file: Optional[str] = None
    ca_path: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None
    server_name: Optional[str] = None

    @classmethod
    def from_config(cls, cfg):
        """The distributed_cache section of a loaded config (TLS when enable_ssl, as every role reads it)."""
        return cls(address=cfg.redis_address, username=_opt(cfg, "distributed_cache.username"),
                   password=_opt(cfg, "distributed_cache.password"),
                   db=int(_opt(cfg, "distributed_cache.db") or 0), tls=bool(_opt(cfg, "enable_ssl")),
                   ca_file=_opt(cfg, "distributed_cache.cacert_filename"),
                   ca_path=_opt(cfg, "distributed_cache.capath"),
                   cert_file=_opt(cfg, "distributed_cache.cert_filename"),
                   key_file=_opt(cfg, "distributed_cache.private_key_filename"),
                   server_name=_opt(cfg, "distributed_cache.server_name"))


def _opt(cfg, key):
    """cfg[key], None when the config lacks the key or leaves it empty."""
    try:
        value = cfg[key]
    except (KeyError, LookupError, AttributeError, TypeError):
        return None
    return value if value not in ("", None) else None


def settings_of(target) -> RedisSettings:
    """RedisSettings from RedisSettings, an address string, or a loaded config."""
    if isinstance(target, RedisSettings):
        return target
    if isinstance(target, str):
        return RedisSettings(target)
    return RedisSettings.from_config(target)


POOL_WAIT_S = 60.0  # a burst waits this long for a pooled connection (well inside any round window)


def make_client(target, timeout=2.0, max_connections=64, connect_timeout=None, retries=0,
                pool_wait=POOL_WAIT_S):
    """redis.asyncio client (raw bytes replies) for `target` (settings, address or config): bounded timeouts,
    `retries` hidden retries (0 for servers: a failure must surface at once so the server can answer "safe
    mode"), and a blocking pool whose callers wait up to `pool_wait` s for a connection: a burst of requests
    is backpressure, never an error."""
    s = settings_of(target)
    connect_timeout = timeout if connect_timeout is None else connect_timeout
    kwargs = dict(socket_timeout=timeout, socket_connect_timeout=connect_timeout, health_check_interval=0,
                  max_connections=max_connections, timeout=pool_wait, retry=Retry(NoBackoff(), retries),
                  username=s.username, password=s.password, db=s.db)
    if s.address.startswith("unix:"):
        pool = aioredis.BlockingConnectionPool(connection_class=UnixDomainSocketConnection,
                                               path=s.address[5:], **kwargs)
    else:
        host, _, port = s.address.rpartition(":")
        if s.tls:
            kwargs.update(connection_class=SSLConnection, ssl_ca_certs=s.ca_file, ssl_ca_path=s.ca_path,
                          ssl_certfile=s.cert_file, ssl_keyfile=s.key_file, ssl_check_hostname=False)
        pool = aioredis.BlockingConnectionPool(host=host, port=int(port), **kwargs)
    return aioredis.Redis.from_pool(pool)  # the client owns its pool: aclose() closes both


def make_pipelined(target, timeout=HOT_PATH_TIMEOUT_S):
    """The auto-pipelining hot-path client (None without hiredis: redis-py then carries the hot path).
    Raises ConfigError for settings it cannot honour (TLS, AUTH, a database other than 0)."""
    s = settings_of(target)
    if s.tls:
        raise ConfigError(PIPELINED_TLS)
    if s.username or s.password:
        raise ConfigError(PIPELINED_AUTH.format(what="AUTH"))
    if s.db:
        raise ConfigError(PIPELINED_AUTH.format(what=f"database {s.db}"))
    return PipelinedRedis(s.address, timeout) if HAVE_HIREDIS else None


__all__ = ["RedisSettings", "make_client", "make_pipelined", "settings_of"]
