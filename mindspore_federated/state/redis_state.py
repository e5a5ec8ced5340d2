"""ClusterState on Redis: the verbs over keys.py and the Lua scripts, script replies decoded here only."""
import asyncio
import json
import time

from redis.exceptions import NoScriptError, WatchError

from mindspore_federated import errors
from mindspore_federated.clock import time_string
from mindspore_federated.state import scripts
from mindspore_federated.state.base import (
    ClusterState,
    CountResult,
    NodeInfo,
    Outcome,
    Snapshot,
    StartResult,
    Subscription,
    UpdateResult,
    config_ttl,
    http_of,
    rank_of,
)
from mindspore_federated.state.keys import (
    CIPHER_ROUNDS,
    HEARTBEAT_TTL_S,
    ITER_EXTRA_S,
    OLD_ITERATION_TTL_S,
    REG_LOCK_TTL_S,
    SCALING_TTL_S,
    SUMMARY_LOCK_TTL_S,
    SUMMARY_TTL_S,
    WEEK_S,
    InstanceState,
    Keys,
)
from mindspore_federated.state.redis_cipher import RedisCipherVerbs

# Lua reply codes (state/scripts.py) -> outcomes: the common ones, then each round's own.
_COMMON = {-1: Outcome.STATUS_LOST, -2: Outcome.ITERATION_CHANGED, -3: Outcome.NOT_RUNNING}
_START = {**_COMMON, 0: Outcome.ACCEPTED, 1: Outcome.THRESHOLD_REACHED, 2: Outcome.DUPLICATE,
          3: Outcome.LOCAL_ERROR}
_UPDATE = {**_COMMON, 0: Outcome.ACCEPTED, 1: Outcome.THRESHOLD_REACHED, 2: Outcome.NO_DEVICE_META,
           3: Outcome.WRONG_ITERATION, 4: Outcome.LOCAL_ERROR, 5: Outcome.DUPLICATE, 6: Outcome.NOT_MEMBER}
_COUNT = {**_COMMON, 0: Outcome.ACCEPTED}


def _s(value):
    return value.decode() if isinstance(value, bytes) else value


class RedisSubscription(Subscription):
    """A redis-py pub/sub subscription to the cluster's event channel."""

    def __init__(self, pubsub):
        self.pubsub = pubsub

    async def get(self, timeout):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:  # redis-py answers None for a (skipped) subscribe confirmation too: read on until the deadline
            msg = await self.pubsub.get_message(ignore_subscribe_messages=True,
                                                timeout=max(0.0, deadline - loop.time()))
            if msg is not None:
                break
            if loop.time() >= deadline:
                return None
        try:
            event = json.loads(msg.get("data"))
        except (TypeError, ValueError):
            return {}
        return event if isinstance(event, dict) else {}

    async def aclose(self):
        await self.pubsub.aclose()


class RedisClusterState(RedisCipherVerbs, ClusterState):
    """The cluster state in Redis for one fl_name. `client` is a redis.asyncio client (state/clients.py);
    `fast`, an optional PipelinedRedis, carries the round scripts (the hot path)."""

    def __init__(self, client, fl_name, global_window_ms, fast=None):
        self.r = client
        self.fast = fast
        self.fl_name = fl_name
        self.keys = Keys(fl_name)
        self.global_window_ms = int(global_window_ms)
        self.cfg_ttl = int(global_window_ms // 1000 + WEEK_S)
        self.iter_ttl = int(global_window_ms // 1000 + ITER_EXTRA_S)
        self._start = client.register_script(scripts.START_FL_JOB)
        self._update = client.register_script(scripts.UPDATE_MODEL)
        self._count_aggr = client.register_script(scripts.COUNT_FOR_AGGREGATION)
        self._finish = client.register_script(scripts.FINISH_ITERATION)
        self._create_status = client.register_script(scripts.CREATE_STATUS)
        self._switch_state = client.register_script(scripts.SWITCH_RUNNING_STATE)
        self._create_scaling = client.register_script(scripts.CREATE_SCALING)
        self.register_cipher_scripts(client)

    async def _eval(self, script, keys, args):
        """EVALSHA (the hot path) through the pipelined connection when there is one, else straight through
        execute_command. On NOSCRIPT (first use, or after a Redis restart) the script is loaded over the same
        connection as an EVAL (which caches it, and which a Redis Cluster routes by its keys): a herd of first
        calls never needs a pooled connection each."""
        execute = self.fast.execute if self.fast is not None else self.r.execute_command
        try:
            return await execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await execute("EVAL", script.script, len(keys), *keys, *args)

    # ---- connection ---------------------------------------------------------------------------
    async def ping(self):
        await self.r.ping()

    async def reset_idle_connections(self):
        pool = getattr(self.r, "connection_pool", None)  # a RedisCluster client has one pool per node
        if pool is not None:
            await pool.disconnect(inuse_connections=False)

    async def aclose(self):
        if getattr(self.r, "connection_pool", None) is None:  # a RedisCluster client closes its node pools
            await self.r.aclose()
        else:
            await self.r.aclose(close_connection_pool=True)
        if self.fast is not None:
            await self.fast.aclose()

    # ---- instance, hyper-params, model declaration --------------------------------------------
    async def ensure_instance(self):
        k = self.keys
        await self.r.set(k.instance_name, "i_" + time_string(), nx=True, ex=self.cfg_ttl)
        inst = _s(await self.r.get(k.instance_name))
        await self.ensure_status(inst, 1)
        return inst

    async def instance(self):
        return _s(await self.r.get(self.keys.instance_name)) or None

    async def adopt_instance(self, name):
        await self.r.set(self.keys.instance_name, name, nx=True, ex=self.cfg_ttl)
        return _s(await self.r.get(self.keys.instance_name))

    async def ensure_status(self, inst, iteration, state=InstanceState.RUNNING):
        created = await self._create_status(keys=[self.keys.status(inst)], args=[iteration, state, self.cfg_ttl])
        return bool(created)

    async def create_status_after_loss(self, inst, iteration, reason):
        created = await self._create_status(keys=[self.keys.status(inst)],
                                            args=[iteration, InstanceState.RUNNING, self.cfg_ttl])
        if created:
            await self.r.hset(self.keys.status(inst), mapping={"lastIterationSuccess": "0",
                                                               "lastIterationResult": reason})
        return bool(created)

    async def status(self, inst):
        raw = await self.r.hgetall(self.keys.status(inst))
        return {_s(k): _s(v) for k, v in raw.items()}

    async def running_state(self, inst):
        raw = await self.r.hget(self.keys.status(inst), "runningState")
        try:
            return int(raw)
        except (TypeError, ValueError):
            return None

    async def set_running_state(self, inst, state):
        await self.r.hset(self.keys.status(inst), "runningState", str(state))

    async def switch_running_state(self, inst, from_state, to_state):
        prev = await self._switch_state(keys=[self.keys.status(inst)], args=[str(from_state), str(to_state)])
        return None if prev is None else int(prev)

    async def sync_hyper_params(self, inst, local):
        key = self.keys.hyper_params(inst)
        await self.r.set(key, json.dumps(local), nx=True, ex=self.cfg_ttl)
        cached = json.loads(_s(await self.r.get(key)))
        for must_match in ("enable_ssl", "pki_verify"):
            if bool(cached.get(must_match, False)) != bool(local.get(must_match, False)):
                raise errors.FederatedError(errors.START_HYPER_PARAMS)
        return cached

    async def hyper_params(self, inst):
        raw = await self.r.get(self.keys.hyper_params(inst))
        if raw is None:
            return None
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise TypeError("hyperParams is not a JSON object")
        return value

    async def start_new_instance(self, updates, make_name):
        async with self.r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    return await self._new_instance_tx(pipe, updates, make_name)
                except WatchError:
                    continue

    async def _new_instance_tx(self, pipe, updates, make_name):
        k = self.keys
        await pipe.watch(k.instance_name)
        current = _s(await pipe.get(k.instance_name))
        if not current:
            return None
        raw = await pipe.get(k.hyper_params(current))
        if raw is None:
            return None
        params = {**json.loads(raw), **updates}
        name = make_name(current)
        ttl = config_ttl(params, self.global_window_ms)
        status = {"iterationNum": "1", "runningState": str(InstanceState.RUNNING),
                  "lastIterationSuccess": "1", "lastIterationResult": ""}
        pipe.multi()
        pipe.set(k.hyper_params(name), json.dumps(params), ex=ttl)
        pipe.delete(k.status(name))
        pipe.hset(k.status(name), mapping=status)
        pipe.expire(k.status(name), ttl)
        pipe.set(k.instance_name, name, ex=ttl)
        await pipe.execute()
        return name

    async def declared_model(self):
        return _s(await self.r.get(self.keys.model_info))

    async def declare_model(self, spec):
        key = self.keys.model_info
        await self.r.set(key, spec.to_info(), nx=True, ex=self.cfg_ttl)
        problem = spec.check_against(_s(await self.r.get(key)))
        if problem:
            raise errors.FederatedError(problem)

    # ---- registry -------------------------------------------------------------------------------
    async def acquire_reg_lock(self, inst, node_id, deadline_s):
        key = self.keys.reg_lock(inst)
        end = time.monotonic() + deadline_s
        while True:
            if await self.r.set(key, node_id, nx=True, ex=REG_LOCK_TTL_S):
                return True
            if time.monotonic() >= end:
                return False
            await asyncio.sleep(0.05)

    async def release_reg_lock(self, inst, node_id):
        key = self.keys.reg_lock(inst)
        if _s(await self.r.get(key)) == node_id:
            await self.r.delete(key)

    async def heartbeat(self, inst, node_id, tcp_address, info):
        k = self.keys
        pipe = self.r.pipeline(transaction=False)
        pipe.hset(k.servers(inst), node_id, tcp_address)
        pipe.expire(k.servers(inst), self.cfg_ttl)
        pipe.hset(k.server_info(inst), node_id, info)
        pipe.expire(k.server_info(inst), self.cfg_ttl)
        pipe.set(k.server_heartbeat(inst, node_id), tcp_address, ex=HEARTBEAT_TTL_S)
        pipe.expire(k.instance_name, self.cfg_ttl)
        await pipe.execute()

    async def assign_rank(self, inst, node_id):
        k = self.keys
        known = await self.r.hget(k.ranks, node_id)
        if known is not None:
            return int(known)
        live = await self.live_servers(inst)
        ranks = {_s(n): int(r) for n, r in (await self.r.hgetall(k.ranks)).items()}
        taken = {ranks[n] for n in live if n in ranks}
        rank = next(i for i in range(len(taken) + 1) if i not in taken)
        stale = [n for n, r in ranks.items() if r == rank]
        if stale:
            await self.r.hdel(k.ranks, *stale)
        await self.r.hset(k.ranks, node_id, rank)
        return rank

    async def live_servers(self, inst):
        k = self.keys
        entries = {_s(n): _s(a) for n, a in (await self.r.hgetall(k.servers(inst))).items()}
        if not entries:
            return {}
        alive = await self._exist_each([k.server_heartbeat(inst, node) for node in entries])
        dead = [n for n, ok in zip(entries, alive) if not ok]
        if dead:
            await self.r.hdel(k.servers(inst), *dead)
            await self.r.hdel(k.server_info(inst), *dead)
        return {n: a for n, a in entries.items() if n not in dead}

    async def server_nodes(self, inst):
        k = self.keys
        async with self.r.pipeline(transaction=False) as pipe:
            pipe.hgetall(k.servers(inst))
            pipe.hgetall(k.server_info(inst))
            entries, infos = await pipe.execute()
        entries = {_s(n): _s(a) for n, a in entries.items()}
        infos = {_s(n): _s(i) for n, i in infos.items()}
        ids = sorted(entries)
        alive = await self._exist_each([k.server_heartbeat(inst, i) for i in ids])
        nodes = [NodeInfo(i, "SERVER", a, entries[i], rank_of(infos.get(i)), http_of(infos.get(i)))
                 for i, a in zip(ids, alive)]
        return sorted(nodes, key=lambda n: (n.rank, n.node_id))

    async def worker_nodes(self, inst):
        ids = sorted(_s(i) for i in await self.r.hkeys(self.keys.workers(inst)))
        alive = await self._exist_each([self.keys.worker_heartbeat(inst, i) for i in ids])
        return [NodeInfo(i, "WORKER", a) for i, a in zip(ids, alive)]

    async def claim(self, inst, iteration, name, node_id):
        key = self.keys.claims(inst, iteration)
        pipe = self.r.pipeline(transaction=True)
        pipe.hsetnx(key, name, node_id)
        pipe.expire(key, self.iter_ttl)
        pipe.hget(key, name)
        return _s((await pipe.execute())[2])

    async def worker_heartbeat(self, inst, fl_id):
        k = self.keys
        pipe = self.r.pipeline(transaction=False)
        pipe.hset(k.workers(inst), fl_id, fl_id)
        pipe.expire(k.workers(inst), self.cfg_ttl)
        pipe.set(k.worker_heartbeat(inst, fl_id), fl_id, ex=HEARTBEAT_TTL_S)
        await pipe.execute()
        dead = [w.node_id for w in await self.worker_nodes(inst) if not w.alive]
        if dead:
            await self.r.hdel(k.workers(inst), *dead)

    async def drop_worker(self, inst, fl_id):
        k = self.keys
        pipe = self.r.pipeline(transaction=False)
        pipe.hdel(k.workers(inst), fl_id)
        pipe.delete(k.worker_heartbeat(inst, fl_id))
        pipe.hdel(k.processes, fl_id)
        await pipe.execute()

    async def _exist_each(self, keys):
        if not keys:
            return []
        async with self.r.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.exists(key)
            return [bool(n) for n in await pipe.execute()]

    async def drop_server(self, inst, node_id, forget_process=False):
        k = self.keys
        pipe = self.r.pipeline(transaction=False)
        pipe.hdel(k.servers(inst), node_id)
        pipe.hdel(k.server_info(inst), node_id)
        pipe.delete(k.server_heartbeat(inst, node_id))
        if forget_process:
            pipe.hdel(k.processes, node_id)
        await pipe.execute()

    async def register_process(self, node_id, info):
        await self.r.hset(self.keys.processes, node_id, info if isinstance(info, str) else json.dumps(info))

    async def processes(self):
        return {_s(n): _s(v) for n, v in (await self.r.hgetall(self.keys.processes)).items()}

    async def forget_process(self, node_id):
        await self.r.hdel(self.keys.processes, node_id)

    # ---- rounds ---------------------------------------------------------------------------------
    async def start_fl_job(self, inst, iteration, threshold, fl_id, meta, now_ms, local_error=0):
        k = self.keys
        reply = await self._eval(
            self._start,
            [k.status(inst), k.count(inst, iteration), k.device_metas(inst, iteration), k.timer(inst, iteration)],
            [iteration, threshold, fl_id, meta, now_ms, self.iter_ttl, local_error])
        code = int(reply[0])
        if code < 0:
            return StartResult(_START[code])
        if code:
            return StartResult(_START[code], int(reply[1]))
        return StartResult(Outcome.ACCEPTED, int(reply[1]), int(reply[2]))

    async def update_model(self, inst, iteration, threshold, fl_id, node_id, req_iteration, local_error, now_ms,
                           count_now=False, need_secrets=False):
        k = self.keys
        reply = await self._eval(
            self._update,
            [k.status(inst), k.server_count(inst, iteration, "updateModel"), k.device_metas(inst, iteration),
             k.fl_set(inst, iteration, "updateModel"), k.timer(inst, iteration),
             k.server_count(inst, iteration, "countForAggregation"), k.cipher_data(inst, iteration, "getSecrets")],
            [iteration, threshold, fl_id, node_id, req_iteration, local_error, now_ms, self.iter_ttl,
             "1" if count_now else "0", "1" if need_secrets else "0"])
        code = int(reply[0])
        if code:
            return UpdateResult(_UPDATE[code])
        aggregated = int(reply[3])
        return UpdateResult(Outcome.ACCEPTED, json.loads(reply[1]), int(reply[2]),
                            aggregated if aggregated >= 0 else None)

    async def count_for_aggregation(self, inst, iteration, node_id):
        k = self.keys
        reply = await self._eval(self._count_aggr,
                                 [k.status(inst), k.server_count(inst, iteration, "countForAggregation")],
                                 [iteration, node_id, self.iter_ttl])
        code = int(reply[0])
        return CountResult(_COUNT[code], int(reply[1]) if code == 0 else 0)

    async def update_counts(self, inst, iteration):
        raw = await self.r.hgetall(self.keys.server_count(inst, iteration, "updateModel"))
        return {_s(a): int(b) for a, b in raw.items()}

    async def snapshot(self, inst, iteration):
        k = self.keys
        pipe = self.r.pipeline(transaction=False)
        pipe.get(k.instance_name)
        pipe.hgetall(k.status(inst))
        pipe.hgetall(k.server_count(inst, iteration, "updateModel"))
        pipe.hgetall(k.timer(inst, iteration))
        pipe.hvals(k.server_count(inst, iteration, "countForAggregation"))
        name, status, counts, timers, aggregated = await pipe.execute()
        return Snapshot(_s(name), {_s(a): _s(b) for a, b in status.items()},
                        {_s(a): int(b) for a, b in counts.items()}, {_s(a): int(b) for a, b in timers.items()},
                        sum(int(v) for v in aggregated))

    def iteration_keys(self, inst, iteration):
        k = self.keys
        return [k.count(inst, iteration), k.server_count(inst, iteration, "updateModel"),
                k.server_count(inst, iteration, "countForAggregation"), k.timer(inst, iteration),
                k.device_metas(inst, iteration), k.fl_set(inst, iteration, "updateModel"),
                *(k.cipher_data(inst, iteration, n) for n in CIPHER_ROUNDS),
                *(k.cipher_items(inst, iteration, n) for n in CIPHER_ROUNDS)]

    async def finish_iteration(self, inst, iteration, success, reason, fl_iteration_num, guard="none",
                               guard_threshold=0):
        k = self.keys
        guard_key = (k.count(inst, iteration) if guard.startswith("field:")
                     else k.server_count(inst, iteration, "updateModel"))
        won = await self._finish(
            keys=[k.status(inst), guard_key, *self.iteration_keys(inst, iteration)],
            args=[iteration, "1" if success else "0", reason, fl_iteration_num, OLD_ITERATION_TTL_S, k.events,
                  inst, guard, guard_threshold])
        return bool(won)

    # ---- events ---------------------------------------------------------------------------------
    async def publish(self, event):
        await self.r.publish(self.keys.events, json.dumps(event))

    async def subscribe(self):
        pubsub = self.r.pubsub()
        try:
            await pubsub.subscribe(self.keys.events)
        except BaseException:
            await pubsub.aclose()
            raise
        return RedisSubscription(pubsub)

    # ---- summaries ------------------------------------------------------------------------------
    async def put_summary(self, inst, iteration, node_id, summary):
        key = self.keys.summary(inst, iteration)
        pipe = self.r.pipeline(transaction=False)
        pipe.hset(key, node_id, json.dumps(summary))
        pipe.expire(key, SUMMARY_TTL_S)
        await pipe.execute()

    async def summaries(self, inst, iteration):
        raw = await self.r.hgetall(self.keys.summary(inst, iteration))
        return {_s(n): json.loads(_s(v)) for n, v in raw.items()}

    async def take_summary_lock(self, inst, iteration, node_id):
        return bool(await self.r.set(self.keys.summary_lock(inst, iteration), node_id, nx=True,
                                     ex=SUMMARY_LOCK_TTL_S))

    async def release_summary_lock(self, inst, iteration):
        await self.r.set(self.keys.summary_lock(inst, iteration), "Finish", ex=SUMMARY_LOCK_TTL_S)

    # ---- scaling --------------------------------------------------------------------------------
    async def scaling(self):
        return {_s(a): _s(b) for a, b in (await self.r.hgetall(self.keys.scaling)).items()}

    async def create_scaling(self, fields):
        flat = [str(x) for kv in fields.items() for x in kv]
        return bool(await self._create_scaling(keys=[self.keys.scaling], args=[SCALING_TTL_S, *flat]))

    async def mark_scale_in(self, node_ids):
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.sadd(self.keys.scale_in, *node_ids)
            pipe.expire(self.keys.scale_in, SCALING_TTL_S)
            pipe.publish(self.keys.events, json.dumps({"event": "scale_in", "node_ids": list(node_ids)}))
            await pipe.execute()

    async def scale_in_ids(self):
        return {_s(n) for n in await self.r.smembers(self.keys.scale_in)}

    async def clear_scaling(self):
        await self.r.delete(self.keys.scaling, self.keys.scale_in)

    async def scale_in_requested(self, node_id):
        return bool(await self.r.sismember(self.keys.scale_in, node_id))

    async def leave_scale_in(self, node_id):
        await self.r.srem(self.keys.scale_in, node_id)

    # ---- device PKI -----------------------------------------------------------------------------
    async def put_key_attestation(self, inst, iteration, fl_id, pem):
        key = self.keys.key_attestations(inst, iteration)
        pipe = self.r.pipeline(transaction=False)
        pipe.hset(key, fl_id, pem)
        pipe.expire(key, self.iter_ttl)
        await pipe.execute()

    async def key_attestation(self, inst, iteration, fl_id):
        return _s(await self.r.hget(self.keys.key_attestations(inst, iteration), fl_id))


__all__ = ["RedisClusterState", "RedisSubscription"]
