"""The server's view of the cluster state in Redis: domain verbs over keys.py and the Lua scripts."""
import asyncio
import json
import time

import redis.asyncio as aioredis
from redis.asyncio.connection import UnixDomainSocketConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from mindspore_federated import errors
from mindspore_federated.clock import time_string
from mindspore_federated.state import scripts
from mindspore_federated.state.keys import (HEARTBEAT_TTL_S, ITER_EXTRA_S, OLD_ITERATION_TTL_S, REG_LOCK_TTL_S,
                                            WEEK_S, InstanceState, Keys)


def make_client(address, timeout=2.0, max_connections=64):
    """redis.asyncio client for `ip:port` or `unix:<path>`: bounded timeouts, no hidden retries (a failure
    must surface at once so the server can answer "safe mode"), and a blocking pool so that a burst of
    requests waits for a connection instead of failing."""
    kwargs = dict(socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=0,
                  max_connections=max_connections, timeout=timeout, retry=Retry(NoBackoff(), 0))
    if address.startswith("unix:"):
        pool = aioredis.BlockingConnectionPool(connection_class=UnixDomainSocketConnection, path=address[5:],
                                               **kwargs)
    else:
        host, _, port = address.rpartition(":")
        pool = aioredis.BlockingConnectionPool(host=host, port=int(port), **kwargs)
    return aioredis.Redis(connection_pool=pool)


def _s(value):
    return value.decode() if isinstance(value, bytes) else value


class ServerState:
    """Async cluster-state operations of one server for one fl_name."""

    def __init__(self, client, fl_name, global_window_ms, fast=None):
        self.r = client
        self.fast = fast  # an optional PipelinedRedis (state/pipelined.py) used by _eval only
        self.keys = Keys(fl_name)
        self.cfg_ttl = int(global_window_ms // 1000 + WEEK_S)
        self.iter_ttl = int(global_window_ms // 1000 + ITER_EXTRA_S)
        self._start = client.register_script(scripts.START_FL_JOB)
        self._update = client.register_script(scripts.UPDATE_MODEL)
        self._count_aggr = client.register_script(scripts.COUNT_FOR_AGGREGATION)
        self._finish = client.register_script(scripts.FINISH_ITERATION)
        self._create_status = client.register_script(scripts.CREATE_STATUS)

    async def _eval(self, script, keys, args):
        """EVALSHA (the hot path) through the pipelined connection when there is one, else straight through
        execute_command; loads the script through redis-py on NOSCRIPT (e.g. after a Redis restart)."""
        try:
            if self.fast is not None:
                return await self.fast.execute("EVALSHA", script.sha, len(keys), *keys, *args)
            return await self.r.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await script(keys=keys, args=args)

    # ---- instance, hyper-params, model declaration --------------------------------------------
    async def ensure_instance(self):
        """The current instance name, creating the instance (iteration 1, Running) if none exists."""
        k = self.keys
        await self.r.set(k.instance_name, "i_" + time_string(), nx=True, ex=self.cfg_ttl)
        inst = _s(await self.r.get(k.instance_name))
        await self.ensure_status(inst, 1)
        return inst

    async def ensure_status(self, inst, iteration, state=InstanceState.RUNNING):
        """Creates the status hash if missing; True when this call created it."""
        created = await self._create_status(keys=[self.keys.status(inst)],
                                            args=[iteration, state, self.cfg_ttl])
        return bool(created)

    async def create_status_after_loss(self, inst, iteration, reason):
        """Re-creates a lost status hash at `iteration` with the previous iteration marked failed."""
        created = await self._create_status(keys=[self.keys.status(inst)],
                                            args=[iteration, InstanceState.RUNNING, self.cfg_ttl])
        if created:
            await self.r.hset(self.keys.status(inst), mapping={"lastIterationSuccess": "0",
                                                               "lastIterationResult": reason})
        return bool(created)

    async def status(self, inst):
        raw = await self.r.hgetall(self.keys.status(inst))
        return {_s(k): _s(v) for k, v in raw.items()}

    async def sync_hyper_params(self, inst, local):
        """Declares `local` if the instance has none yet; returns the cluster's hyper-params."""
        key = self.keys.hyper_params(inst)
        await self.r.set(key, json.dumps(local), nx=True, ex=self.cfg_ttl)
        cached = json.loads(_s(await self.r.get(key)))
        for must_match in ("enable_ssl", "pki_verify"):
            if bool(cached.get(must_match, False)) != bool(local.get(must_match, False)):
                raise errors.FederatedError(errors.START_HYPER_PARAMS)
        return cached

    async def hyper_params(self, inst):
        raw = await self.r.get(self.keys.hyper_params(inst))
        return json.loads(_s(raw)) if raw else None

    async def declared_model(self):
        """The ModelInfo JSON text declared by the first server of this fl_name, or None."""
        return _s(await self.r.get(self.keys.model_info))

    async def declare_model(self, spec):
        """Declares the model features once per fl_name; raises with the reference's text on mismatch."""
        key = self.keys.model_info
        await self.r.set(key, spec.to_info(), nx=True, ex=self.cfg_ttl)
        problem = spec.check_against(_s(await self.r.get(key)))
        if problem:
            raise errors.FederatedError(problem)

    # ---- registration -------------------------------------------------------------------------
    async def acquire_reg_lock(self, inst, node_id, deadline_s):
        key = self.keys.reg_lock(inst)
        end = time.monotonic() + deadline_s
        while True:
            if await self.r.set(key, node_id, nx=True, ex=REG_LOCK_TTL_S):
                return True
            if time.monotonic() >= end:
                return False
            await _sleep(0.05)

    async def release_reg_lock(self, inst, node_id):
        key = self.keys.reg_lock(inst)
        if _s(await self.r.get(key)) == node_id:
            await self.r.delete(key)

    async def heartbeat(self, inst, node_id, tcp_address, info):
        """Registers/refreshes this server (hash entry, info, 10 s heartbeat)."""
        k = self.keys
        pipe = self.r.pipeline(transaction=False)
        pipe.hset(k.servers(inst), node_id, tcp_address)
        pipe.expire(k.servers(inst), self.cfg_ttl)
        pipe.hset(k.server_info(inst), node_id, info)
        pipe.expire(k.server_info(inst), self.cfg_ttl)
        pipe.set(k.server_heartbeat(inst, node_id), tcp_address, ex=HEARTBEAT_TTL_S)
        pipe.expire(k.instance_name, self.cfg_ttl)
        await pipe.execute()

    async def deregister(self, inst, node_id):
        """Graceful stop: leaves the registry and the process table."""
        await self.drop_server(inst, node_id, forget_process=True)

    async def assign_rank(self, inst, node_id):
        """This node's rank: the one it had before (same node id), else the lowest one no live server holds.
        Called under the registration lock."""
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

    async def register_process(self, node_id, info):
        await self.r.hset(self.keys.processes, node_id, json.dumps(info))

    async def live_servers(self, inst):
        """node id -> TCP address of servers whose heartbeat exists; dead entries are removed."""
        k = self.keys
        entries = {_s(n): _s(a) for n, a in (await self.r.hgetall(k.servers(inst))).items()}
        if not entries:
            return {}
        pipe = self.r.pipeline(transaction=False)
        for node in entries:
            pipe.exists(k.server_heartbeat(inst, node))
        alive = await pipe.execute()
        dead = [n for n, ok in zip(entries, alive) if not ok]
        if dead:
            await self.r.hdel(k.servers(inst), *dead)
            await self.r.hdel(k.server_info(inst), *dead)
        return {n: a for n, a in entries.items() if n not in dead}

    async def snapshot(self, inst, iteration):
        """One round trip: instance name, status hash, and this iteration's per-server update counts."""
        k = self.keys
        pipe = self.r.pipeline(transaction=False)
        pipe.get(k.instance_name)
        pipe.hgetall(k.status(inst))
        pipe.hgetall(k.server_count(inst, iteration, "updateModel"))
        pipe.hgetall(k.timer(inst, iteration))
        pipe.hvals(k.server_count(inst, iteration, "countForAggregation"))
        name, status, counts, timers, aggregated = await pipe.execute()
        return (_s(name), {_s(a): _s(b) for a, b in status.items()},
                {_s(a): int(b) for a, b in counts.items()}, {_s(a): int(b) for a, b in timers.items()},
                sum(int(v) for v in aggregated))

    async def reset_idle_connections(self):
        """Drops every idle pooled connection (after a connection error: Redis may have restarted, and each
        stale connection would otherwise fail once, on its next use)."""
        await self.r.connection_pool.disconnect(inuse_connections=False)

    async def update_counts(self, inst, iteration):
        """node id -> number of updates it accepted this iteration."""
        raw = await self.r.hgetall(self.keys.server_count(inst, iteration, "updateModel"))
        return {_s(a): int(b) for a, b in raw.items()}

    async def drop_server(self, inst, node_id, forget_process=False):
        """Removes a server (a dead one, or this one stopping) from the registry."""
        k = self.keys
        pipe = self.r.pipeline(transaction=False)
        pipe.hdel(k.servers(inst), node_id)
        pipe.hdel(k.server_info(inst), node_id)
        pipe.delete(k.server_heartbeat(inst, node_id))
        if forget_process:
            pipe.hdel(k.processes, node_id)
        await pipe.execute()

    # ---- rounds -------------------------------------------------------------------------------
    async def start_fl_job(self, inst, iteration, threshold, fl_id, meta, now_ms, local_error=0):
        k = self.keys
        return await self._eval(
            self._start,
            [k.status(inst), k.count(inst, iteration), k.device_metas(inst, iteration), k.timer(inst, iteration)],
            [iteration, threshold, fl_id, meta, now_ms, self.iter_ttl, local_error])

    async def update_model(self, inst, iteration, threshold, fl_id, node_id, req_iteration, local_error, now_ms,
                           count_now=False):
        k = self.keys
        return await self._eval(
            self._update,
            [k.status(inst), k.server_count(inst, iteration, "updateModel"), k.device_metas(inst, iteration),
             k.fl_set(inst, iteration, "updateModel"), k.timer(inst, iteration),
             k.server_count(inst, iteration, "countForAggregation")],
            [iteration, threshold, fl_id, node_id, req_iteration, local_error, now_ms, self.iter_ttl,
             "1" if count_now else "0"])

    async def count_for_aggregation(self, inst, iteration, node_id):
        k = self.keys
        return await self._eval(self._count_aggr,
                                [k.status(inst), k.server_count(inst, iteration, "countForAggregation")],
                                [iteration, node_id, self.iter_ttl])

    def iteration_keys(self, inst, iteration):
        k = self.keys
        return [k.count(inst, iteration), k.server_count(inst, iteration, "updateModel"),
                k.server_count(inst, iteration, "countForAggregation"), k.timer(inst, iteration),
                k.device_metas(inst, iteration), k.fl_set(inst, iteration, "updateModel")]

    async def finish_iteration(self, inst, iteration, success, reason, fl_iteration_num, guard="none",
                               guard_threshold=0):
        """CAS iteration -> iteration+1 (only if Redis still holds `iteration`); True when this call won."""
        k = self.keys
        guard_key = (k.count(inst, iteration) if guard.startswith("field:")
                     else k.server_count(inst, iteration, "updateModel"))
        won = await self._finish(
            keys=[k.status(inst), guard_key, *self.iteration_keys(inst, iteration)],
            args=[iteration, "1" if success else "0", reason, fl_iteration_num, OLD_ITERATION_TTL_S, k.events,
                  inst, guard, guard_threshold])
        return bool(won)

    async def set_running_state(self, inst, state):
        await self.r.hset(self.keys.status(inst), "runningState", str(state))

    async def publish(self, event):
        await self.r.publish(self.keys.events, json.dumps(event))

    # ---- summaries ----------------------------------------------------------------------------
    async def put_summary(self, inst, iteration, node_id, summary):
        key = self.keys.summary(inst, iteration)
        pipe = self.r.pipeline(transaction=False)
        pipe.hset(key, node_id, json.dumps(summary))
        pipe.expire(key, 60)
        await pipe.execute()

    async def take_summary_lock(self, inst, iteration, node_id):
        return bool(await self.r.set(self.keys.summary_lock(inst, iteration), node_id, nx=True, ex=30))

    async def summaries(self, inst, iteration):
        raw = await self.r.hgetall(self.keys.summary(inst, iteration))
        return {_s(n): json.loads(_s(v)) for n, v in raw.items()}

    async def release_summary_lock(self, inst, iteration):
        await self.r.set(self.keys.summary_lock(inst, iteration), "Finish", ex=30)

    async def scale_in_requested(self, node_id):
        return bool(await self.r.sismember(self.keys.scale_in, node_id))

    async def leave_scale_in(self, node_id):
        await self.r.srem(self.keys.scale_in, node_id)


async def _sleep(seconds):
    await asyncio.sleep(seconds)


__all__ = ["ServerState", "make_client", "time_string", "RedisError"]
