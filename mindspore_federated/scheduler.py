"""Scheduler role: the REST management plane of a cluster; every bit of state lives in Redis."""
import argparse
import asyncio
import datetime
import json
import math
import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from aiohttp import web
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, WatchError

from mindspore_federated import log
from mindspore_federated.errors import (
    SCHED_ALREADY_DISABLED,
    SCHED_ALREADY_ENABLED,
    SCHED_BAD_ADDRESS,
    SCHED_BAD_JSON,
    SCHED_CACHE,
    SCHED_DISABLE_FINISHED,
    SCHED_DISABLE_OK,
    SCHED_ENABLE_FINISHED,
    SCHED_ENABLE_OK,
    SCHED_FIELD_NUMBER,
    SCHED_FIELD_POSITIVE,
    SCHED_FIELD_RATIO,
    SCHED_FIELD_UINT,
    SCHED_MANAGE_TYPE,
    SCHED_NEW_INSTANCE_FAILED,
    SCHED_NEW_INSTANCE_OK,
    SCHED_NO_CLUSTER,
    SCHED_POST_SIZE,
    SCHED_QUERY_OK,
    SCHED_STATE_INNER,
    SCHED_STATE_OK,
    SSL_CLIENT_PASSWORD_EMPTY,
    SSL_PKCS12,
    ConfigError,
    StateError,
)
from mindspore_federated.exit_codes import ExitCode
from mindspore_federated.state.keys import CLUSTER_STATE_NAMES, WEEK_S, InstanceState, Keys
from mindspore_federated.tools.proc_registry import registration_json

LOG = log.get_logger(__name__)

# ---- texts of the older /nodes, /scaleout, /scalein API (MindSpore 1.x scheduler) --------------------
NODES_OK = "Get nodes info successful."
SCALE_OUT_OK = "Cluster begin to scale out."
SCALE_IN_OK = "Cluster begin to scale in."
NOT_READY = "The cluster is not ready."
MISSING_KEY = "The json is not contain the key:{key}"
NEGATIVE = "The value should not be less than 0."
WORKER_SCALE_OUT = "The Worker does not currently support scale out."
NODE_IDS_EMPTY = "The node ids should not be empty."
NODE_ILLEGAL = "The node id:{node_id} is illegal."
NODE_WORKER = "The node id:{node_id} is the role of worker, should not be scale in."
# ---- our own texts (no reference equivalent) --------------------------------------------------------
SCALE_INT = "The value of the key:{key} should be an integer."
NODE_IDS_TYPE = "The value of the key:node_ids should be a list of strings."
SCALE_IN_ALL = "The scale in would remove every server of the cluster."
NOT_OBJECT = "the post message should be a JSON object"
# the reference's text for a body over its 100 MiB limit (kMaxMessageSize = 100 * 2^20 bytes)
POST_TOO_BIG = "The post message is bigger than 100mb."
BIND_FAILED = "Failed to start scheduler http server on {address}: {reason}"
CACHE_START = "Failed to access the cache server {address} at start-up: {reason}"
SSL_NEEDS_JOB = ("enable_ssl is true: start the scheduler through FlSchedulerJob(..., ssl_config=SSLConfig(...)) "
                 "so the certificate password is not passed on the command line")

DEFAULT_MANAGE_ADDRESS = "127.0.0.1:11202"
MAX_BODY = 100 * 1024 * 1024  # bytes; a body of exactly MAX_BODY is accepted, one byte more is refused
UINT32_MAX = 2 ** 32 - 1
SCALING_TTL_S = 3600
REGISTRATION_REFRESH_S = 1.0
DEFAULT_GLOBAL_WINDOW_MS = 3600000
UINT_PARAMS = ("global_iteration_time_window", "start_fl_job_threshold", "start_fl_job_time_window",
               "update_model_time_window", "client_epoch_num", "client_batch_size", "fl_iteration_num")
ROUTES = {"/state": "state", "/enableFLS": "enable", "/disableFLS": "disable", "/newInstance": "new_instance",
          "/queryInstance": "query_instance", "/nodes": "nodes", "/scaleout": "scale_out", "/scalein": "scale_in"}

_IPV4 = re.compile(r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$")
_PORT = re.compile(r"^[0-9]{1,5}$")

# Sets runningState to ARGV[2] only if it currently is ARGV[1]; returns the previous value (nil if absent).
_CAS_STATE = """
local cur = redis.call('HGET', KEYS[1], 'runningState')
if cur == ARGV[1] then redis.call('HSET', KEYS[1], 'runningState', ARGV[2]) end
return cur
"""
# Creates the scaling hash (ARGV[2..] = field, value, ...) with TTL ARGV[1] unless one is pending.
_CREATE_SCALING = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""


class ApiError(Exception):
    """A request failed with a reference error text (HTTP 400, code "1")."""

    def __init__(self, text):
        super().__init__(text)
        self.text = text


def validate_manage_address(addr):
    """Checks `ip:port` (IPv4, port 1-65535) and returns (ip, port); RuntimeError otherwise."""
    if not isinstance(addr, str):
        raise ConfigError(f"{SCHED_MANAGE_TYPE}, but got {type(addr).__name__}")
    ip, sep, port = addr.rpartition(":")
    if not sep or not _IPV4.match(ip) or not _PORT.match(port) or not 1 <= int(port) <= 65535:
        raise ConfigError(SCHED_BAD_ADDRESS.format(address=addr))
    return ip, int(port)


# ---- request parsing and validation (pure) ----------------------------------------------------------
def parse_json_object(data) -> dict:
    """Parses a request body that must be a JSON object (NaN/Infinity literals are rejected)."""
    def _reject(name):
        raise ValueError(f"invalid literal {name}")
    try:
        value = json.loads(data.decode("utf-8"), parse_constant=_reject)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(SCHED_BAD_JSON.format(detail=str(exc))) from None
    if not isinstance(value, dict):
        raise ApiError(SCHED_BAD_JSON.format(detail=NOT_OBJECT))
    return value


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_uint(key, value):
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= UINT32_MAX:
        raise ApiError(SCHED_FIELD_UINT.format(key=key))
    if value == 0:
        raise ApiError(SCHED_FIELD_POSITIVE.format(key=key))
    return value


def validate_hyper_params(body: dict) -> dict:
    """The recognised /newInstance keys of `body`, type- and range-checked (texts without the prefix)."""
    updates = {key: _check_uint(key, body[key]) for key in UINT_PARAMS if key in body}
    if "update_model_ratio" in body:
        ratio = body["update_model_ratio"]
        if not _is_number(ratio):
            raise ApiError(SCHED_FIELD_NUMBER.format(key="update_model_ratio"))
        if not 0 < ratio <= 1:
            raise ApiError(SCHED_FIELD_RATIO)
        updates["update_model_ratio"] = float(ratio)
    if "client_learning_rate" in body:
        rate = body["client_learning_rate"]
        if not _is_number(rate):
            raise ApiError(SCHED_FIELD_NUMBER.format(key="client_learning_rate"))
        if rate <= 0:
            raise ApiError(SCHED_FIELD_POSITIVE.format(key="client_learning_rate"))
        updates["client_learning_rate"] = float(rate)
    return updates


def parse_scale_num(body: dict, key: str) -> int:
    """server_num / worker_num of a /scaleout body (older API texts)."""
    if key not in body:
        raise ApiError(MISSING_KEY.format(key=key))
    value = body[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiError(SCALE_INT.format(key=key))
    if value < 0:
        raise ApiError(NEGATIVE)
    if value > 0 and key == "worker_num":
        raise ApiError(WORKER_SCALE_OUT)
    return value


def parse_node_ids(body: dict) -> list:
    """node_ids of a /scalein body: a non-empty list of strings, de-duplicated in order."""
    if "node_ids" not in body:
        raise ApiError(MISSING_KEY.format(key="node_ids"))
    ids = body["node_ids"]
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ApiError(NODE_IDS_TYPE)
    if not ids:
        raise ApiError(NODE_IDS_EMPTY)
    return list(dict.fromkeys(ids))


_last_name_us = 0


def new_instance_name(current: str = "") -> str:
    """`i_<YYYY-MM-DD-HH:MM:SS.mmm.uuu>` (local time), strictly later than any name made before."""
    global _last_name_us
    now_us = max(time.time_ns() // 1000, _last_name_us + 1)
    while True:
        _last_name_us = now_us
        stamp = datetime.datetime.fromtimestamp(now_us / 1e6)
        name = f"i_{stamp:%Y-%m-%d-%H:%M:%S}.{stamp.microsecond // 1000:03d}.{stamp.microsecond % 1000:03d}"
        if name != current:
            return name
        now_us += 1


# ---- cluster view over Redis ----------------------------------------------------------------------
@dataclass
class Node:
    """A server or worker as registered in Redis."""

    node_id: str
    role: str
    alive: bool
    tcp: str = ""
    rank: int = 0


class ClusterStore:
    """Every Redis read/write of the scheduler for one fl_name."""

    def __init__(self, client, keys: Keys, default_global_window_ms=DEFAULT_GLOBAL_WINDOW_MS):
        self.r = client
        self.keys = keys
        self.default_global_window_ms = default_global_window_ms
        self._cas_state = client.register_script(_CAS_STATE)
        self._create_scaling = client.register_script(_CREATE_SCALING)

    async def instance(self, required=True):
        """The current instance name; `Cannot find cluster info` (or None) when no server ever started."""
        name = await self.r.get(self.keys.instance_name)
        if not name and required:
            raise ApiError(SCHED_NO_CLUSTER.format(fl_name=self.keys.fl_name))
        return name or None

    async def running_state(self, inst) -> int:
        raw = await self.r.hget(self.keys.status(inst), "runningState")
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise ApiError(SCHED_STATE_INNER) from None

    async def servers(self, inst) -> list:
        """Every entry of server:Hash with its liveness (heartbeat key present) and rank."""
        async with self.r.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.servers(inst))
            pipe.hgetall(self.keys.server_info(inst))
            entries, infos = await pipe.execute()
        ids = sorted(entries)
        alive = await self._exist_each([self.keys.server_heartbeat(inst, i) for i in ids])
        nodes = [Node(i, "SERVER", a, entries[i], _rank(infos.get(i))) for i, a in zip(ids, alive)]
        return sorted(nodes, key=lambda n: (n.rank, n.node_id))

    async def workers(self, inst) -> list:
        ids = sorted(await self.r.hkeys(self.keys.workers(inst)))
        alive = await self._exist_each([self.keys.worker_heartbeat(inst, i) for i in ids])
        return [Node(i, "WORKER", a) for i, a in zip(ids, alive)]

    async def _exist_each(self, keys) -> list:
        if not keys:
            return []
        async with self.r.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.exists(key)
            return [bool(n) for n in await pipe.execute()]

    async def hyper_params(self, inst) -> dict:
        raw = await self.r.get(self.keys.hyper_params(inst))
        if raw is None:
            raise ApiError(SCHED_NO_CLUSTER.format(fl_name=self.keys.fl_name))
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise TypeError("hyperParams is not a JSON object")
        return value

    async def switch_state(self, inst, from_state: int, to_state: int):
        """CAS runningState from -> to; returns the previous state (None if the status hash is empty)."""
        prev = await self._cas_state(keys=[self.keys.status(inst)], args=[str(from_state), str(to_state)])
        return None if prev is None else int(prev)

    async def publish(self, event: dict):
        await self.r.publish(self.keys.events, json.dumps(event))

    async def start_new_instance(self, updates: dict) -> str:
        """Writes the new instance's hyperParams and status, then switches InstanceName (CAS on it)."""
        async with self.r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    return await self._new_instance_tx(pipe, updates)
                except WatchError:
                    continue

    async def _new_instance_tx(self, pipe, updates) -> str:
        await pipe.watch(self.keys.instance_name)
        current = await pipe.get(self.keys.instance_name)
        if not current:
            raise ApiError(SCHED_NO_CLUSTER.format(fl_name=self.keys.fl_name))
        raw = await pipe.get(self.keys.hyper_params(current))
        if raw is None:
            raise ApiError(SCHED_NO_CLUSTER.format(fl_name=self.keys.fl_name))
        params = {**json.loads(raw), **updates}
        name = new_instance_name(current)
        ttl = self._config_ttl(params)
        status = {"iterationNum": "1", "runningState": str(InstanceState.RUNNING),
                  "lastIterationSuccess": "1", "lastIterationResult": ""}
        pipe.multi()
        pipe.set(self.keys.hyper_params(name), json.dumps(params), ex=ttl)
        pipe.delete(self.keys.status(name))
        pipe.hset(self.keys.status(name), mapping=status)
        pipe.expire(self.keys.status(name), ttl)
        pipe.set(self.keys.instance_name, name, ex=ttl)
        await pipe.execute()
        return name

    def _config_ttl(self, params) -> int:
        window = params.get("global_iteration_time_window")
        if not isinstance(window, int) or isinstance(window, bool) or window <= 0:
            window = self.default_global_window_ms
        return window // 1000 + WEEK_S

    # ---- scaling ---------------------------------------------------------------------------------
    async def scaling(self) -> dict:
        return await self.r.hgetall(self.keys.scaling)

    async def create_scaling(self, fields: dict) -> bool:
        """Records a scale request unless one is pending; False if one is."""
        flat = [str(x) for kv in fields.items() for x in kv]
        return bool(await self._create_scaling(keys=[self.keys.scaling], args=[SCALING_TTL_S, *flat]))

    async def mark_scale_in(self, node_ids):
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.sadd(self.keys.scale_in, *node_ids)
            pipe.expire(self.keys.scale_in, SCALING_TTL_S)
            pipe.publish(self.keys.events, json.dumps({"event": "scale_in", "node_ids": node_ids}))
            await pipe.execute()

    async def clear_scaling(self):
        await self.r.delete(self.keys.scaling, self.keys.scale_in)

    async def scaling_state(self, live_ids: set):
        """CLUSTER_SCALE_OUT/IN while a scale request is pending; clears it (returns None) once done."""
        pending = await self.scaling()
        if not pending:
            return None
        if pending.get("state") == "SCALE_OUT":
            done = len(live_ids) >= _int_or(pending.get("expected_servers"), 0)
        else:
            leaving = set(_json_list(pending.get("node_ids"))) | set(await self.r.smembers(self.keys.scale_in))
            done = not leaving & live_ids
        if done:
            await self.clear_scaling()
            return None
        return "CLUSTER_SCALE_OUT" if pending.get("state") == "SCALE_OUT" else "CLUSTER_SCALE_IN"


def _rank(info_json) -> int:
    try:
        return int(json.loads(info_json).get("rank", 0))
    except (TypeError, ValueError, AttributeError):
        return 0


def _int_or(value, default) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _json_list(raw) -> list:
    try:
        value = json.loads(raw) if raw else []
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def state_nodes(servers, workers) -> list:
    """The `nodes` list of /state and /queryInstance: live servers and workers."""
    nodes = [{"node_id": s.node_id, "tcp_address": s.tcp, "role": "SERVER"} for s in servers if s.alive]
    return nodes + [{"node_id": w.node_id, "tcp_address": "", "role": "WORKER"} for w in workers if w.alive]


# ---- HTTP envelope --------------------------------------------------------------------------------
def _json_response(status, body) -> web.Response:
    return web.Response(status=status, body=json.dumps(body, sort_keys=True).encode(),
                        headers={"Content-Type": "application/json"})


def ok(body: dict) -> web.Response:
    """HTTP 200, application/json, `"code": "0"`."""
    return _json_response(200, {**body, "code": "0"})


def fail(text: str) -> web.Response:
    """HTTP 400 `{"error_message": text, "code": "1"}`."""
    return _json_response(400, {"error_message": text, "code": "1"})


@web.middleware
async def error_middleware(request, handler):
    """Maps ApiError to its text, Redis failures to the cache text, anything else to the inner-error text."""
    try:
        return await handler(request)
    except ApiError as exc:
        return fail(exc.text)
    except web.HTTPException:
        raise
    except (TimeoutError, RedisError, OSError) as exc:
        LOG.warning("Redis access failed for %s: %r", request.path, exc)
        return fail(SCHED_CACHE)
    except Exception:
        LOG.exception("request %s failed", request.path)
        return fail(SCHED_STATE_INNER)


async def read_body(request, limit=MAX_BODY) -> bytearray:
    """The whole request body: empty -> `The post message size is invalid.`, larger than `limit` (by its
    Content-Length or, when streamed, as soon as more than `limit` bytes arrived) -> `The post message is
    bigger than 100mb.`"""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(POST_TOO_BIG)
    data = bytearray()
    async for chunk in request.content.iter_any():
        data += chunk
        if len(data) > limit:
            raise ApiError(POST_TOO_BIG)
    if not data:
        raise ApiError(SCHED_POST_SIZE)
    return data


# ---- configuration --------------------------------------------------------------------------------
def _opt(cfg, key):
    try:
        value = cfg[key]
    except (KeyError, LookupError, AttributeError):
        return None
    return value if value not in ("", None) else None


def redis_client(cfg):
    """A redis.asyncio client for the config's distributed_cache (TCP or unix:, TLS when enable_ssl)."""
    address = cfg.redis_address
    kwargs = {"socket_timeout": 3, "socket_connect_timeout": 2, "decode_responses": True,
              "retry": Retry(NoBackoff(), 1)}
    if address.startswith("unix:"):
        kwargs["unix_socket_path"] = address[len("unix:"):]
    else:
        host, _, port = address.rpartition(":")
        kwargs.update(host=host, port=int(port))
    if cfg.enable_ssl:
        kwargs.update(ssl=True, ssl_ca_certs=_opt(cfg, "distributed_cache.cacert_filename"),
                      ssl_ca_path=_opt(cfg, "distributed_cache.capath"),
                      ssl_certfile=_opt(cfg, "distributed_cache.cert_filename"),
                      ssl_keyfile=_opt(cfg, "distributed_cache.private_key_filename"), ssl_check_hostname=False)
    return aioredis.Redis(**kwargs)


def load_scheduler_config(path):
    """The scheduler's FlConfig from the YAML file."""
    from mindspore_federated.config import load_config
    return load_config(path, role="scheduler")


def server_ssl_context(cfg, ssl_config):
    """HTTPS context from `ssl.server_cert_path` (PKCS#12) and SSLConfig.server_password."""
    import ssl
    import tempfile

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12
    if ssl_config is None or not ssl_config.client_password:
        raise ConfigError(SSL_CLIENT_PASSWORD_EMPTY)
    try:
        with open(cfg["ssl.server_cert_path"], "rb") as f:
            key, cert, chain = pkcs12.load_key_and_certificates(f.read(), (ssl_config.server_password or "").encode())
    except (OSError, ValueError, TypeError):
        raise ConfigError(SSL_PKCS12) from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if _opt(cfg, "ssl.cipher_list"):
        context.set_ciphers(cfg["ssl.cipher_list"])
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pem += b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [cert, *(chain or [])])
    with tempfile.NamedTemporaryFile(suffix=".pem") as f:  # ssl loads key material from files only
        f.write(pem)
        f.flush()
        context.load_cert_chain(f.name)
    return context


def run_scheduler(yaml_config, manage_address=DEFAULT_MANAGE_ADDRESS, ssl_config=None):
    """FlSchedulerJob.run(): validates, builds HTTPS when enable_ssl, serves until SIGTERM/SIGINT."""
    validate_manage_address(manage_address)
    config = load_scheduler_config(yaml_config) if isinstance(yaml_config, (str, os.PathLike)) else yaml_config
    ssl_context = server_ssl_context(config, ssl_config) if config.enable_ssl else None
    Scheduler(config, manage_address, ssl_context).run()


# ---- the role ---------------------------------------------------------------------------------------
class Scheduler:
    """REST management plane: thin aiohttp handlers over a ClusterStore; registers itself in Redis."""

    def __init__(self, config, manage_address=DEFAULT_MANAGE_ADDRESS, ssl_context=None, scheduler_port=None):
        self.ip, self.port = validate_manage_address(manage_address)
        # the seed-001 `--scheduler_port` (the cluster's name for finish_cloud.py --scheduler_port); without
        # one, the manage port stands for it
        self.scheduler_port = int(scheduler_port) if scheduler_port is not None else self.port
        self.address = f"{self.ip}:{self.port}"
        self.config = load_scheduler_config(config) if isinstance(config, (str, os.PathLike)) else config
        self.keys = Keys(self.config.fl_name)
        self.node_id = f"scheduler:{self.address}"
        self.ssl_context = ssl_context
        self.max_body = MAX_BODY
        self.startup_timeout = 10.0
        self.redis = None
        self.store = None
        self._runner = None
        self._refresh = None

    # ---- app ------------------------------------------------------------------------------------
    def build_app(self) -> web.Application:
        """The aiohttp app: every route for GET and POST (the method is not checked)."""
        app = web.Application(middlewares=[error_middleware])
        for path, name in ROUTES.items():
            handler = getattr(self, f"handle_{name}")
            app.router.add_route("GET", path, handler)
            app.router.add_route("POST", path, handler)
        return app

    def attach_redis(self, client):
        """Uses `client` (a redis.asyncio.Redis) for every request."""
        self.redis = client
        self.store = ClusterStore(client, self.keys, self._global_window_ms())

    def _global_window_ms(self):
        value = _opt(self.config, "round.global_iteration_time_window")
        return value if isinstance(value, int) and value > 0 else DEFAULT_GLOBAL_WINDOW_MS

    async def handle_state(self, request):
        return ok(await self.cluster_state())

    async def handle_enable(self, request):
        return ok(await self.set_enabled(True))

    async def handle_disable(self, request):
        return ok(await self.set_enabled(False))

    async def handle_new_instance(self, request):
        body = parse_json_object(await read_body(request, self.max_body))
        return ok(await self.new_instance(body))

    async def handle_query_instance(self, request):
        return ok(await self.query_instance())

    async def handle_nodes(self, request):
        return ok(await self.nodes())

    async def handle_scale_out(self, request):
        body = parse_json_object(await read_body(request, self.max_body))
        return ok(await self.scale_out(body))

    async def handle_scale_in(self, request):
        body = parse_json_object(await read_body(request, self.max_body))
        return ok(await self.scale_in(body))

    # ---- operations (return the success body, raise ApiError) ----------------------------------------
    async def cluster_state(self) -> dict:
        inst = await self.store.instance()
        state = await self.store.running_state(inst)
        if state not in CLUSTER_STATE_NAMES and state != InstanceState.STOP:
            raise ApiError(SCHED_STATE_INNER)
        servers, workers = await self.store.servers(inst), await self.store.workers(inst)
        body = {"message": SCHED_STATE_OK}
        name = await self.store.scaling_state({s.node_id for s in servers if s.alive})
        name = name or CLUSTER_STATE_NAMES.get(state)
        if name:
            body["cluster_state"] = name
        nodes = state_nodes(servers, workers)
        if nodes:
            body["nodes"] = nodes
        return body

    async def set_enabled(self, enable: bool) -> dict:
        inst = await self.store.instance()
        src, dst = (InstanceState.DISABLE, InstanceState.RUNNING) if enable else \
            (InstanceState.RUNNING, InstanceState.DISABLE)
        prev = await self.store.switch_state(inst, src, dst)
        if prev == src:
            await self.store.publish({"event": "state", "state": dst, "instance": inst})
            return {"message": SCHED_ENABLE_OK if enable else SCHED_DISABLE_OK}
        if prev == dst:
            raise ApiError(SCHED_ALREADY_ENABLED if enable else SCHED_ALREADY_DISABLED)
        if prev in (InstanceState.FINISH, InstanceState.STOP):
            raise ApiError(SCHED_ENABLE_FINISHED if enable else SCHED_DISABLE_FINISHED)
        raise ApiError(SCHED_STATE_INNER)

    async def new_instance(self, body: dict) -> dict:
        try:
            await self.store.instance()
            updates = validate_hyper_params(body)
            name = await self.store.start_new_instance(updates)
        except ApiError as exc:
            raise ApiError(SCHED_NEW_INSTANCE_FAILED.format(reason=exc.text)) from None
        LOG.info("new instance %s with %s", name, updates)
        await self.store.publish({"event": "new_instance", "instance": name})
        return {"message": SCHED_NEW_INSTANCE_OK}

    async def query_instance(self) -> dict:
        inst = await self.store.instance()
        body = {"message": SCHED_QUERY_OK, "result": await self.store.hyper_params(inst)}
        nodes = state_nodes(await self.store.servers(inst), await self.store.workers(inst))
        if nodes:
            body["nodes"] = nodes
        return body

    async def nodes(self) -> dict:
        inst = await self.store.instance(required=False)
        servers = await self.store.servers(inst) if inst else []
        workers = await self.store.workers(inst) if inst else []
        entries = [{"alive": "true" if n.alive else "false", "nodeId": n.node_id, "rankId": str(n.rank),
                    "role": n.role} for n in servers]
        entries += [{"alive": "true" if w.alive else "false", "nodeId": w.node_id, "rankId": str(i),
                     "role": "WORKER"} for i, w in enumerate(workers)]
        entries.append({"alive": "true", "nodeId": self.node_id, "rankId": "0", "role": "SCHEDULER"})
        return {"message": NODES_OK, "nodeIds": entries}

    async def _live_for_scaling(self):
        inst = await self.store.instance()
        if await self.store.scaling():
            raise ApiError(NOT_READY)
        return await self.store.servers(inst), await self.store.workers(inst)

    async def scale_out(self, body: dict) -> dict:
        parse_scale_num(body, "worker_num")
        count = parse_scale_num(body, "server_num")
        servers, _ = await self._live_for_scaling()
        live = sum(1 for s in servers if s.alive)
        fields = {"state": "SCALE_OUT", "expected_servers": live + count, "requested_ms": _now_ms()}
        if not await self.store.create_scaling(fields):
            raise ApiError(NOT_READY)
        LOG.info("scale out by %d servers (expecting %d)", count, live + count)
        return {"message": SCALE_OUT_OK}

    async def scale_in(self, body: dict) -> dict:
        servers, workers = await self._live_for_scaling()
        node_ids = parse_node_ids(body)
        live = {s.node_id for s in servers if s.alive}
        live_workers = {w.node_id for w in workers if w.alive}
        for node_id in node_ids:
            if node_id in live_workers:
                raise ApiError(NODE_WORKER.format(node_id=node_id))
            if node_id not in live:
                raise ApiError(NODE_ILLEGAL.format(node_id=node_id))
        if live <= set(node_ids):
            raise ApiError(SCALE_IN_ALL)
        fields = {"state": "SCALE_IN", "expected_servers": len(live) - len(node_ids),
                  "requested_ms": _now_ms(), "node_ids": json.dumps(node_ids)}
        if not await self.store.create_scaling(fields):
            raise ApiError(NOT_READY)
        await self.store.mark_scale_in(node_ids)
        LOG.info("scale in %s", node_ids)
        return {"message": SCALE_IN_OK}

    # ---- lifecycle --------------------------------------------------------------------------------
    async def start(self):
        """Connects Redis (bounded), listens, registers in `processes`, prints `READY scheduler <addr>`."""
        client = redis_client(self.config)
        try:
            await self._wait_for_redis(client)
            self.attach_redis(client)
            await self._listen()
        except BaseException:
            await client.aclose()
            raise
        await self._register()
        self._refresh = asyncio.create_task(self._refresh_registration())
        LOG.info("scheduler of %s listening on %s", self.keys.fl_name, self.address)
        print(f"READY scheduler {self.address}", flush=True)

    async def _wait_for_redis(self, client):
        deadline = time.monotonic() + self.startup_timeout
        while True:
            try:
                await client.ping()
                return
            except (RedisError, OSError) as exc:
                if time.monotonic() >= deadline:
                    raise StateError(CACHE_START.format(address=self.config.redis_address, reason=exc)) from None
                await asyncio.sleep(0.2)

    async def _listen(self):
        self._runner = web.AppRunner(self.build_app(), shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.ip, self.port, ssl_context=self.ssl_context)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise ConfigError(BIND_FAILED.format(address=self.address, reason=exc.strerror or exc)) from None

    def _registration(self) -> str:
        return registration_json("SCHEDULER", address=self.address, fl_name=self.keys.fl_name,
                                 scheduler_port=self.scheduler_port)

    async def _register(self):
        await self.redis.hset(self.keys.processes, self.node_id, self._registration())

    async def _refresh_registration(self):
        """Re-asserts the registration (it survives a Redis restart); errors are retried silently."""
        while True:
            await asyncio.sleep(REGISTRATION_REFRESH_S)
            try:
                await self._register()
            except (RedisError, OSError):
                pass

    async def stop(self):
        """Stops serving, deregisters (best effort, bounded) and closes Redis."""
        if self._refresh:
            self._refresh.cancel()
            await asyncio.gather(self._refresh, return_exceptions=True)
            self._refresh = None
        if self._runner:
            await self._runner.cleanup()
            self._runner = None
        if self.redis is not None:
            try:
                await asyncio.wait_for(self.redis.hdel(self.keys.processes, self.node_id), 2.0)
            except (TimeoutError, RedisError, OSError):
                LOG.warning("could not deregister %s from Redis", self.node_id)
            await self.redis.aclose()
            self.redis = None

    async def serve(self, stop_event=None, install_signals=True):
        """Serves until `stop_event` is set or SIGTERM/SIGINT arrives."""
        stop_event = stop_event or asyncio.Event()
        loop = asyncio.get_running_loop()
        main_thread = threading.current_thread() is threading.main_thread()
        signals = (signal.SIGTERM, signal.SIGINT) if install_signals and main_thread else ()
        for sig in signals:
            loop.add_signal_handler(sig, stop_event.set)
        try:
            await self.start()
            await stop_event.wait()
            LOG.info("scheduler stopping")
        finally:
            await self.stop()
            for sig in signals:
                loop.remove_signal_handler(sig)

    def run(self):
        """Blocks until SIGTERM/SIGINT (uvloop when available)."""
        log.apply_config(self.config)  # the YAML's log_level, when set, wins over the environment
        try:
            import uvloop
            factory = uvloop.new_event_loop
        except ImportError:
            factory = None
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(self.serve())


def _now_ms() -> int:
    return int(time.time() * 1000)


# ---- command line -----------------------------------------------------------------------------------
# seed-001 flags that describe the servers or the older TCP networking: accepted, not used by the scheduler
IGNORED_FLAGS = ("--fl_server_port", "--server_num", "--worker_num", "--ms_role", "--server_mode",
                 "--start_fl_job_threshold", "--local_server_num", "--node_id", "--enable_ssl",
                 "--http_server_address", "--tcp_server_ip", "--checkpoint_dir")


def _port(text):
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: expected 1..65535")
    return value


def parse_args(argv=None):
    """Flags of run_sched.py (seed 000) and of the seed-001 launch line; unknown flags are errors."""
    parser = argparse.ArgumentParser(prog="python -m mindspore_federated.scheduler",
                                     description="MindSpore Federated scheduler (REST management plane)")
    parser.add_argument("--yaml_config", default="default_yaml_config.yaml")
    parser.add_argument("--scheduler_manage_address", default=None,
                        help=f"ip:port of the REST API (default {DEFAULT_MANAGE_ADDRESS})")
    parser.add_argument("--scheduler_ip", default=None, help="seed 001: IP of the REST API")
    parser.add_argument("--scheduler_manage_port", default=None, help="seed 001: port of the REST API")
    parser.add_argument("--scheduler_port", type=_port, default=None,
                        help="seed 001: the cluster's scheduler port; recorded in the process registry so that "
                             "`finish_cloud.py --scheduler_port P` finds this cluster (default: the manage port)")
    parser.add_argument("--fl_name", default=None, help="overrides fl_name of the YAML")
    parser.add_argument("--redis_address", default=None, help="overrides distributed_cache.address of the YAML")
    parser.add_argument("--config_file_path", default="",
                        help="seed 001: JSON config; its ssl keys (server_cert_path, ...) override the YAML")
    for flag in IGNORED_FLAGS:
        parser.add_argument(flag, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    notes = [f"{flag} is not used by this scheduler and is ignored" for flag in IGNORED_FLAGS
             if getattr(args, flag[2:]) is not None]
    if args.scheduler_manage_address is None:
        default_ip, _, default_port = DEFAULT_MANAGE_ADDRESS.rpartition(":")
        args.scheduler_manage_address = f"{args.scheduler_ip or default_ip}:{args.scheduler_manage_port or default_port}"
    elif args.scheduler_ip or args.scheduler_manage_port:
        notes.append("--scheduler_manage_address given: --scheduler_ip/--scheduler_manage_port are ignored")
    return args, notes


def load_cli_config(args):
    """The YAML config with the command line's --fl_name/--redis_address and --config_file_path applied."""
    from mindspore_federated.recovery import load_json_config
    from mindspore_federated.startup.federated_local import config_file_overrides

    config = load_scheduler_config(args.yaml_config)
    overrides = config_file_overrides(load_json_config(args.config_file_path), role="scheduler")
    overrides.update({k: v for k, v in (("fl_name", args.fl_name), ("distributed_cache.address",
                                                                     args.redis_address)) if v is not None})
    return config.with_overrides(overrides) if overrides else config


def main(argv=None) -> int:
    """Entry point of `python -m mindspore_federated.scheduler`; returns the process exit code."""
    args, notes = parse_args(argv)
    log.setup(role="scheduler")
    for note in notes:
        LOG.warning(note)
    try:
        config = load_cli_config(args)
        if config.enable_ssl:
            raise ConfigError(SSL_NEEDS_JOB)
    except RuntimeError as exc:
        return _fatal(exc, ExitCode.CONFIG_ERROR)
    try:
        scheduler = Scheduler(config, args.scheduler_manage_address, scheduler_port=args.scheduler_port)
    except RuntimeError as exc:
        return _fatal(exc, ExitCode.SCHEDULER_START_FAILED)
    log.set_node(scheduler.node_id)
    try:
        scheduler.run()
    except StateError as exc:
        return _fatal(exc, ExitCode.REDIS_UNREACHABLE)
    except RuntimeError as exc:
        return _fatal(exc, ExitCode.SCHEDULER_START_FAILED)
    return ExitCode.SUCCESS


def _fatal(exc, code) -> int:
    print(f"ERROR: {exc}", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
