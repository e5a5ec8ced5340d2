"""The one Redis client factory of every role: address, AUTH (ACL user), database and TLS settings from config."""
import os
import ssl
from dataclasses import dataclass, field
from typing import Optional

import redis
import redis.asyncio as aioredis
import redis.cluster
import redis.sentinel
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.connection import Connection as SyncConnection
from redis.exceptions import AuthenticationError, ResponseError

from mindspore_federated import errors
from mindspore_federated.errors import ConfigError
from mindspore_federated.metrics.redis_conn import (
    CountingConnection,
    CountingSentinelConnection,
    CountingUnixConnection,
)
from mindspore_federated.state.pipelined import HAVE_HIREDIS, HOT_PATH_TIMEOUT_S, PipelinedRedis
from mindspore_federated.state.topology import parse_topology

PASSWORD_ENV = "MSF_REDIS_PASSWORD"
USERNAME_ENV = "MSF_REDIS_USERNAME"
MIN_TLS_VERSION = ssl.TLSVersion.TLSv1_2


@dataclass(frozen=True)
class RedisSettings:
    """Where and how to reach Redis: `ip:port` or `unix:<path>`, optional AUTH (ACL user), database, TLS."""

    address: str
    username: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)  # never in a repr, a log line or a message
    db: int = 0
    tls: bool = False
    ca_file: Optional[str] = None
    ca_path: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None
    server_name: Optional[str] = None

    @classmethod
    def from_config(cls, cfg, environ=None):
        """The distributed_cache section of a loaded config (TLS when enable_ssl, as every role reads it);
        username / password fall back to MSF_REDIS_USERNAME / MSF_REDIS_PASSWORD of `environ`."""
        environ = os.environ if environ is None else environ
        return cls(address=cfg.redis_address,
                   username=_opt(cfg, "distributed_cache.username") or environ.get(USERNAME_ENV) or None,
                   password=_opt(cfg, "distributed_cache.password") or environ.get(PASSWORD_ENV) or None,
                   db=int(_opt(cfg, "distributed_cache.db") or 0), tls=bool(_opt(cfg, "enable_ssl")),
                   ca_file=_opt(cfg, "distributed_cache.cacert_filename"),
                   ca_path=_opt(cfg, "distributed_cache.capath"),
                   cert_file=_opt(cfg, "distributed_cache.cert_filename"),
                   key_file=_opt(cfg, "distributed_cache.private_key_filename"),
                   server_name=_opt(cfg, "distributed_cache.server_name"))

    @classmethod
    def from_address(cls, address, environ=None):
        """`address` with AUTH from MSF_REDIS_USERNAME / MSF_REDIS_PASSWORD (tools given only an address)."""
        environ = os.environ if environ is None else environ
        return cls(address, username=environ.get(USERNAME_ENV) or None,
                   password=environ.get(PASSWORD_ENV) or None)

    @property
    def topology(self):
        """One Redis, a Sentinel group or a Cluster (state/topology.py)."""
        return parse_topology(self.address)

    @property
    def who(self):
        """The AUTH identity for messages (never the password)."""
        if self.password is None:
            return "an anonymous client (no password configured)"
        return f"user '{self.username}'" if self.username else "the default user"


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


def tls_context(s: RedisSettings) -> ssl.SSLContext:
    """The client TLS context of a Redis connection: TLS >= 1.2, the server's certificate always verified
    (against cacert_filename / capath, else the system's CAs), its name checked when server_name is set,
    and a client certificate when cert_filename / private_key_filename are set. ConfigError naming the key
    of a file that cannot be loaded."""
    if bool(s.cert_file) != bool(s.key_file):
        given = "cert_filename" if s.cert_file else "private_key_filename"
        raise ConfigError(errors.REDIS_TLS_KEY_PAIR.format(given=given))
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = MIN_TLS_VERSION
    context.check_hostname = bool(s.server_name)
    for key, path, load in (("cacert_filename", s.ca_file, lambda p: context.load_verify_locations(cafile=p)),
                            ("capath", s.ca_path, lambda p: context.load_verify_locations(capath=p)),
                            ("cert_filename", s.cert_file, lambda p: context.load_cert_chain(p, s.key_file))):
        if path:
            try:
                load(path)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(errors.REDIS_TLS_FILE.format(key=key, path=path, reason=exc)) from None
    return context


def _check_tls_address(s):
    if s.tls and s.address.startswith("unix:"):
        raise ConfigError(errors.REDIS_TLS.format(address=s.address, reason="TLS needs an ip:port address"))
    kind = s.topology.kind
    if s.tls and kind != "single":
        raise ConfigError(errors.REDIS_HA_NO_TLS.format(kind=kind))
    if kind == "cluster" and s.db:
        raise ConfigError(errors.REDIS_CLUSTER_DB.format(db=s.db))


class _WithTls:
    """Connection-class mixin: the TLS context and the expected server name (SNI, name check) to use."""

    def __init__(self, *, tls_context, server_name=None, **kwargs):
        super().__init__(**kwargs)
        self._tls_context = tls_context
        self._server_name = server_name


class TlsConnection(_WithTls, CountingConnection):
    """redis-py's TCP connection over our TLS context, with SNI / name check on `server_name`."""

    def _connection_arguments(self):
        kwargs = super()._connection_arguments()
        kwargs["ssl"] = self._tls_context
        if self._server_name:
            kwargs["server_hostname"] = self._server_name
        return kwargs

    async def disconnect(self, nowait=False, **kwargs):
        """redis-py closes a failed connection without waiting (nowait), which leaves a TLS socket to a
        shutdown handshake nobody awaits: such a connection is aborted here, its socket closed at once."""
        writer = self._writer
        await super().disconnect(nowait=nowait, **kwargs)
        if nowait and writer is not None:
            writer.transport.abort()


POOL_WAIT_S = 60.0  # a burst waits this long for a pooled connection (well inside any round window)


def make_client(target, timeout=2.0, max_connections=64, connect_timeout=None, retries=0,
                pool_wait=POOL_WAIT_S):
    """redis.asyncio client (raw bytes replies) for `target` (settings, address or config): bounded timeouts,
    `retries` hidden retries (0 for servers: a failure must surface at once so the server can answer "safe
    mode"), and a blocking pool whose callers wait up to `pool_wait` s for a connection: a burst of requests
    is backpressure, never an error. AUTH and SELECT run on every new connection (so after a reconnect)."""
    s = settings_of(target)
    connect_timeout = timeout if connect_timeout is None else connect_timeout
    kwargs = dict(socket_timeout=timeout, socket_connect_timeout=connect_timeout, health_check_interval=0,
                  max_connections=max_connections, timeout=pool_wait, retry=Retry(NoBackoff(), retries),
                  username=s.username, password=s.password, db=s.db)
    _check_tls_address(s)
    topology = s.topology
    if topology.kind == "cluster":
        return _cluster_client(topology, kwargs, retries)
    if topology.kind == "sentinel":
        return _sentinel(topology, timeout, connect_timeout).master_for(
            topology.master_name, redis_class=aioredis.Redis, connection_pool_class=_SentinelBlockingPool,
            connection_class=CountingSentinelConnection, **kwargs)
    if s.address.startswith("unix:"):
        pool = aioredis.BlockingConnectionPool(connection_class=CountingUnixConnection,
                                               path=s.address[5:], **kwargs)
    else:
        host, _, port = s.address.rpartition(":")
        if s.tls:
            kwargs.update(connection_class=TlsConnection, tls_context=tls_context(s), server_name=s.server_name)
        else:
            kwargs["connection_class"] = CountingConnection
        pool = aioredis.BlockingConnectionPool(host=host, port=int(port), **kwargs)
    return aioredis.Redis.from_pool(pool)  # the client owns its pool: aclose() closes both


class _SentinelBlockingPool(SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """redis-py's Sentinel pool (the primary discovered before every new connection, so after a failover),
    blocking like make_client's other pools: a burst waits for a connection instead of failing."""


def _sentinel(topology, timeout, connect_timeout):
    """A redis-py Sentinel manager over the group's sentinels (short timeouts: a dead sentinel is skipped)."""
    own = dict(socket_timeout=timeout, socket_connect_timeout=connect_timeout)
    return Sentinel(list(topology.nodes), sentinel_kwargs=own, **own)


def _cluster_client(topology, kwargs, retries):
    """A redis-py RedisCluster over the seed nodes (every FL job's keys share one hash tag: state/keys.py)."""
    kwargs = {k: v for k, v in kwargs.items() if k not in ("timeout", "retry", "db")}
    nodes = [ClusterNode(host, port) for host, port in topology.nodes]
    return RedisCluster(startup_nodes=nodes, retry=Retry(NoBackoff(), max(retries, 1)), **kwargs)


def make_pipelined(target, timeout=HOT_PATH_TIMEOUT_S):
    """The auto-pipelining hot-path client (None without hiredis: redis-py then carries the hot path), with
    the same TLS, AUTH and database as make_client; on a Sentinel group it re-discovers the primary before
    every (re)connect. ConfigError on a Cluster (it speaks to one node): use pipelined_or_none there."""
    s = settings_of(target)
    if not HAVE_HIREDIS:
        return None
    _check_tls_address(s)
    topology = s.topology
    if topology.kind == "cluster":
        raise ConfigError(errors.REDIS_CLUSTER_PIPELINED.format(address=s.address))
    resolve = None
    if topology.kind == "sentinel":
        sentinel = _sentinel(topology, min(timeout, 2.0), min(timeout, 2.0))
        resolve = lambda: sentinel.discover_master(topology.master_name)  # noqa: E731
    context = tls_context(s) if s.tls else None
    return PipelinedRedis(s.address, timeout, ssl_context=context, server_name=s.server_name,
                          username=s.username, password=s.password, db=s.db, resolve=resolve)


class _SyncTlsConnection(_WithTls, SyncConnection):
    """redis-py's blocking TCP connection wrapped in our TLS context (tools such as finish_cloud)."""

    def _connect(self):
        sock = super()._connect()
        return self._tls_context.wrap_socket(sock, server_hostname=self._server_name or self.host)


def make_sync_client(target, **kwargs):
    """A blocking redis.Redis with the same address, AUTH, database and TLS as make_client (for tools);
    `kwargs` go to redis.Redis (timeouts, decode_responses, retry)."""
    s = settings_of(target)
    auth = dict(username=s.username, password=s.password, db=s.db)
    _check_tls_address(s)
    topology = s.topology
    if topology.kind == "cluster":
        del auth["db"]
        nodes = [redis.cluster.ClusterNode(host, port) for host, port in topology.nodes]
        return redis.cluster.RedisCluster(startup_nodes=nodes, **auth, **kwargs)
    if topology.kind == "sentinel":
        own = {k: kwargs[k] for k in ("socket_timeout", "socket_connect_timeout") if k in kwargs}
        sentinel = redis.sentinel.Sentinel(list(topology.nodes), sentinel_kwargs=own, **own)
        return sentinel.master_for(topology.master_name, **auth, **kwargs)
    if s.address.startswith("unix:"):
        return redis.Redis(unix_socket_path=s.address[5:], **auth, **kwargs)
    host, _, port = s.address.rpartition(":")
    if not s.tls:
        return redis.Redis(host=host, port=int(port), **auth, **kwargs)
    pool_kwargs = {k: kwargs.pop(k) for k in ("socket_timeout", "socket_connect_timeout", "retry",
                                              "decode_responses") if k in kwargs}
    pool = redis.ConnectionPool(connection_class=_SyncTlsConnection, host=host, port=int(port),
                                tls_context=tls_context(s), server_name=s.server_name, **auth, **pool_kwargs)
    return redis.Redis(connection_pool=pool, **kwargs)


def is_auth_failure(exc):
    """True when Redis refused the credentials (wrong password, unknown ACL user, AUTH required)."""
    if isinstance(exc, AuthenticationError):
        return True
    text = str(exc)
    return isinstance(exc, ResponseError) and text.startswith(("NOAUTH", "WRONGPASS", "AUTH", "invalid password",
                                                               "invalid username-password"))


def startup_failure(target, exc):
    """(fatal, text) for a failed first contact with Redis: a refused AUTH is fatal at once (waiting does not
    help) and named as such; with TLS, a failure names TLS; else (False, str(exc)) and the caller retries."""
    s = settings_of(target)
    if is_auth_failure(exc):
        return True, errors.REDIS_AUTH.format(address=s.address, who=s.who, reason=exc)
    if s.tls:
        return False, errors.REDIS_TLS.format(address=s.address, reason=exc)
    return False, str(exc)


__all__ = ["RedisSettings", "make_client", "make_pipelined", "make_sync_client", "settings_of", "tls_context",
           "startup_failure", "is_auth_failure", "PASSWORD_ENV", "USERNAME_ENV"]
