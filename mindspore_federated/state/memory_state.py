"""ClusterState in one process (unit tests, single-host runs): the Redis semantics over a MemoryStore."""
import asyncio
import json
import time

from mindspore_federated import errors
from mindspore_federated.clock import time_string
from mindspore_federated.state.base import (
    ClusterState,
    CountResult,
    NodeInfo,
    Outcome,
    Snapshot,
    StartResult,
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
from mindspore_federated.state.memory_cipher import MemoryCipherVerbs
from mindspore_federated.state.memory_store import MemoryStore


class MemoryClusterState(MemoryCipherVerbs, ClusterState):
    """The cluster state of one fl_name in a MemoryStore (pass one store to several states to share it)."""

    def __init__(self, fl_name, global_window_ms, store=None, clock=None):
        self.store = store if store is not None else MemoryStore(clock or time.monotonic)
        self.fl_name = fl_name
        self.keys = Keys(fl_name)
        self.global_window_ms = int(global_window_ms)
        self.cfg_ttl = int(global_window_ms // 1000 + WEEK_S)
        self.iter_ttl = int(global_window_ms // 1000 + ITER_EXTRA_S)

    # ---- connection ---------------------------------------------------------------------------
    async def ping(self):
        pass

    async def reset_idle_connections(self):
        pass

    async def aclose(self):
        pass

    # ---- instance, hyper-params, model declaration --------------------------------------------
    async def ensure_instance(self):
        self.store.put(self.keys.instance_name, "i_" + time_string(), self.cfg_ttl, only_new=True)
        inst = self.store.get(self.keys.instance_name)
        await self.ensure_status(inst, 1)
        return inst

    async def instance(self):
        return self.store.get(self.keys.instance_name) or None

    async def adopt_instance(self, name):
        self.store.put(self.keys.instance_name, name, self.cfg_ttl, only_new=True)
        return self.store.get(self.keys.instance_name)

    def _create_status(self, inst, iteration, state, ttl):
        key = self.keys.status(inst)
        if self.store.exists(key):
            return False
        self.store.put(key, {"iterationNum": str(iteration), "lastIterationSuccess": "1",
                             "lastIterationResult": "", "runningState": str(int(state))}, ttl)
        return True

    async def ensure_status(self, inst, iteration, state=InstanceState.RUNNING):
        return self._create_status(inst, iteration, state, self.cfg_ttl)

    async def create_status_after_loss(self, inst, iteration, reason):
        created = self._create_status(inst, iteration, InstanceState.RUNNING, self.cfg_ttl)
        if created:
            status = self.store.hash(self.keys.status(inst))
            status.update(lastIterationSuccess="0", lastIterationResult=reason)
        return created

    async def status(self, inst):
        return dict(self.store.get(self.keys.status(inst)) or {})

    async def running_state(self, inst):
        try:
            return int((self.store.get(self.keys.status(inst)) or {}).get("runningState"))
        except (TypeError, ValueError):
            return None

    async def set_running_state(self, inst, state):
        self.store.hash(self.keys.status(inst))["runningState"] = str(state)

    async def switch_running_state(self, inst, from_state, to_state):
        status = self.store.get(self.keys.status(inst)) or {}
        prev = status.get("runningState")
        if prev == str(from_state):
            status["runningState"] = str(to_state)
        return None if prev is None else int(prev)

    async def sync_hyper_params(self, inst, local):
        key = self.keys.hyper_params(inst)
        self.store.put(key, json.dumps(local), self.cfg_ttl, only_new=True)
        cached = json.loads(self.store.get(key))
        for must_match in ("enable_ssl", "pki_verify"):
            if bool(cached.get(must_match, False)) != bool(local.get(must_match, False)):
                raise errors.FederatedError(errors.START_HYPER_PARAMS)
        return cached

    async def hyper_params(self, inst):
        raw = self.store.get(self.keys.hyper_params(inst))
        if raw is None:
            return None
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise TypeError("hyperParams is not a JSON object")
        return value

    async def start_new_instance(self, updates, make_name):
        k = self.keys
        current = self.store.get(k.instance_name)
        raw = self.store.get(k.hyper_params(current)) if current else None
        if raw is None:
            return None
        params = {**json.loads(raw), **updates}
        name = make_name(current)
        ttl = config_ttl(params, self.global_window_ms)
        self.store.put(k.hyper_params(name), json.dumps(params), ttl)
        self.store.delete(k.status(name))
        self._create_status(name, 1, InstanceState.RUNNING, ttl)
        self.store.put(k.instance_name, name, ttl)
        return name

    async def declared_model(self):
        return self.store.get(self.keys.model_info)

    async def declare_model(self, spec):
        key = self.keys.model_info
        self.store.put(key, spec.to_info(), self.cfg_ttl, only_new=True)
        problem = spec.check_against(self.store.get(key))
        if problem:
            raise errors.FederatedError(problem)

    # ---- registry -------------------------------------------------------------------------------
    async def acquire_reg_lock(self, inst, node_id, deadline_s):
        end = time.monotonic() + deadline_s
        while not self.store.put(self.keys.reg_lock(inst), node_id, REG_LOCK_TTL_S, only_new=True):
            if time.monotonic() >= end:
                return False
            await asyncio.sleep(0.05)
        return True

    async def release_reg_lock(self, inst, node_id):
        if self.store.get(self.keys.reg_lock(inst)) == node_id:
            self.store.delete(self.keys.reg_lock(inst))

    async def heartbeat(self, inst, node_id, tcp_address, info):
        k, s = self.keys, self.store
        s.hash(k.servers(inst))[node_id] = tcp_address
        s.expire(k.servers(inst), self.cfg_ttl)
        s.hash(k.server_info(inst))[node_id] = info
        s.expire(k.server_info(inst), self.cfg_ttl)
        s.put(k.server_heartbeat(inst, node_id), tcp_address, HEARTBEAT_TTL_S)
        s.expire(k.instance_name, self.cfg_ttl)

    async def assign_rank(self, inst, node_id):
        ranks = self.store.hash(self.keys.ranks)
        if node_id in ranks:
            return int(ranks[node_id])
        live = await self.live_servers(inst)
        taken = {int(ranks[n]) for n in live if n in ranks}
        rank = next(i for i in range(len(taken) + 1) if i not in taken)
        for stale in [n for n, r in ranks.items() if int(r) == rank]:
            del ranks[stale]
        ranks[node_id] = str(rank)
        return rank

    async def live_servers(self, inst):
        k, s = self.keys, self.store
        entries = dict(s.get(k.servers(inst)) or {})
        dead = [n for n in entries if not s.exists(k.server_heartbeat(inst, n))]
        for node in dead:
            for key in (k.servers(inst), k.server_info(inst)):
                (s.get(key) or {}).pop(node, None)
                s.drop_if_empty(key)
        return {n: a for n, a in entries.items() if n not in dead}

    async def server_nodes(self, inst):
        k, s = self.keys, self.store
        entries, infos = s.get(k.servers(inst)) or {}, s.get(k.server_info(inst)) or {}
        nodes = [NodeInfo(i, "SERVER", s.exists(k.server_heartbeat(inst, i)), entries[i],
                          rank_of(infos.get(i)), http_of(infos.get(i))) for i in sorted(entries)]
        return sorted(nodes, key=lambda n: (n.rank, n.node_id))

    async def worker_nodes(self, inst):
        k, s = self.keys, self.store
        return [NodeInfo(i, "WORKER", s.exists(k.worker_heartbeat(inst, i)))
                for i in sorted(s.get(k.workers(inst)) or {})]

    async def claim(self, inst, iteration, name, node_id):
        key = self.keys.claims(inst, iteration)
        claims = self.store.hash(key)
        claims.setdefault(name, node_id)
        self.store.expire(key, self.iter_ttl)
        return claims[name]

    async def worker_heartbeat(self, inst, fl_id):
        k, s = self.keys, self.store
        workers = s.hash(k.workers(inst))
        workers[fl_id] = fl_id
        s.expire(k.workers(inst), self.cfg_ttl)
        s.put(k.worker_heartbeat(inst, fl_id), fl_id, HEARTBEAT_TTL_S)
        for dead in [w for w in workers if not s.exists(k.worker_heartbeat(inst, w))]:
            workers.pop(dead, None)

    async def drop_worker(self, inst, fl_id):
        k, s = self.keys, self.store
        for key in (k.workers(inst), k.processes):
            (s.get(key) or {}).pop(fl_id, None)
            s.drop_if_empty(key)
        s.delete(k.worker_heartbeat(inst, fl_id))

    async def drop_server(self, inst, node_id, forget_process=False):
        k, s = self.keys, self.store
        keys = [k.servers(inst), k.server_info(inst)] + ([k.processes] if forget_process else [])
        for key in keys:
            (s.get(key) or {}).pop(node_id, None)
            s.drop_if_empty(key)
        s.delete(k.server_heartbeat(inst, node_id))

    async def register_process(self, node_id, info):
        self.store.hash(self.keys.processes)[node_id] = info if isinstance(info, str) else json.dumps(info)

    async def processes(self):
        return dict(self.store.get(self.keys.processes) or {})

    async def forget_process(self, node_id):
        (self.store.get(self.keys.processes) or {}).pop(node_id, None)
        self.store.drop_if_empty(self.keys.processes)

    # ---- rounds (each mirrors its Lua script in state/scripts.py) --------------------------------
    def _gate(self, inst, iteration, running=True):
        status = self.store.get(self.keys.status(inst))
        if not status:
            return Outcome.STATUS_LOST
        if int(status["iterationNum"]) != int(iteration):
            return Outcome.ITERATION_CHANGED
        if running and status.get("runningState") != "0":
            return Outcome.NOT_RUNNING
        return None

    def _expire(self, keys, ttl):
        for key in keys:
            self.store.expire(key, ttl)

    async def start_fl_job(self, inst, iteration, threshold, fl_id, meta, now_ms, local_error=0):
        k, s = self.keys, self.store
        refused = self._gate(inst, iteration)
        if refused:
            return StartResult(refused)
        counts = s.get(k.count(inst, iteration)) or {}
        count = int(counts.get("startFLJob", 0))
        if count >= int(threshold):
            return StartResult(Outcome.THRESHOLD_REACHED, count)
        if str(local_error) != "0":
            return StartResult(Outcome.LOCAL_ERROR, count)
        metas = s.hash(k.device_metas(inst, iteration))
        if fl_id in metas:
            return StartResult(Outcome.DUPLICATE, count)
        metas[fl_id] = meta
        counts = s.hash(k.count(inst, iteration))
        count = counts["startFLJob"] = count + 1
        timer = s.hash(k.timer(inst, iteration))
        if count == 1:
            timer.setdefault("startFLJob", int(now_ms))
            timer.setdefault("global", int(now_ms))
            self._expire([k.count(inst, iteration), k.device_metas(inst, iteration),
                          k.timer(inst, iteration)], self.iter_ttl)
        return StartResult(Outcome.ACCEPTED, count, int(timer.get("startFLJob", now_ms)))

    async def update_model(self, inst, iteration, threshold, fl_id, node_id, req_iteration, local_error,
                           now_ms, count_now=False, need_secrets=False):
        k, s = self.keys, self.store
        refused = self._gate(inst, iteration)
        if refused:
            return UpdateResult(refused)
        done = s.members(k.fl_set(inst, iteration, "updateModel"))
        if fl_id in done:  # before the threshold, like the Lua: a retry of an accepted update
            return UpdateResult(Outcome.DUPLICATE)
        update_key = k.server_count(inst, iteration, "updateModel")
        total = sum((s.get(update_key) or {}).values())
        if total >= int(threshold):
            return UpdateResult(Outcome.THRESHOLD_REACHED)
        meta = (s.get(k.device_metas(inst, iteration)) or {}).get(fl_id)
        if meta is None:
            return UpdateResult(Outcome.NO_DEVICE_META)
        if int(req_iteration) != int(iteration):
            return UpdateResult(Outcome.WRONG_ITERATION)
        if str(local_error) != "0":
            return UpdateResult(Outcome.LOCAL_ERROR)
        if need_secrets and fl_id not in (s.get(k.cipher_data(inst, iteration, "getSecrets")) or {}):
            return UpdateResult(Outcome.NOT_MEMBER)
        done.add(fl_id)
        counts = s.hash(update_key)
        counts[node_id] = counts.get(node_id, 0) + 1
        total += 1
        if total == 1:
            s.hash(k.timer(inst, iteration)).setdefault("updateModel", int(now_ms))
            self._expire([update_key, k.fl_set(inst, iteration, "updateModel"), k.timer(inst, iteration)],
                         self.iter_ttl)
        aggregated = self._count(inst, iteration, node_id) if count_now else None
        return UpdateResult(Outcome.ACCEPTED, json.loads(meta), total, aggregated)

    def _count(self, inst, iteration, node_id):
        key = self.keys.server_count(inst, iteration, "countForAggregation")
        counts = self.store.hash(key)
        counts[node_id] = counts.get(node_id, 0) + 1
        if counts[node_id] == 1:
            self.store.expire(key, self.iter_ttl)
        return sum(counts.values())

    async def count_for_aggregation(self, inst, iteration, node_id):
        refused = self._gate(inst, iteration, running=False)
        if refused:
            return CountResult(refused)
        return CountResult(Outcome.ACCEPTED, self._count(inst, iteration, node_id))

    async def update_counts(self, inst, iteration):
        return dict(self.store.get(self.keys.server_count(inst, iteration, "updateModel")) or {})

    async def snapshot(self, inst, iteration):
        k, s = self.keys, self.store
        aggregated = s.get(k.server_count(inst, iteration, "countForAggregation")) or {}
        return Snapshot(s.get(k.instance_name), await self.status(inst),
                        await self.update_counts(inst, iteration), dict(s.get(k.timer(inst, iteration)) or {}),
                        sum(aggregated.values()))

    async def finish_iteration(self, inst, iteration, success, reason, fl_iteration_num, guard="none",
                               guard_threshold=0):
        k, s = self.keys, self.store
        status = s.get(k.status(inst))
        if not status or int(status["iterationNum"]) != int(iteration):
            return False
        if guard == "sum":
            counts = await self._values(k.server_count(inst, iteration, "updateModel"))
            if sum(counts) >= int(guard_threshold):
                return False
        elif guard.startswith("field:"):
            if int((s.get(k.count(inst, iteration)) or {}).get(guard[6:], 0)) >= int(guard_threshold):
                return False
        nxt = int(iteration) + 1
        status.update(iterationNum=str(nxt), lastIterationSuccess="1" if success else "0",
                      lastIterationResult=reason)
        if nxt > int(fl_iteration_num) and status.get("runningState") == "0":
            status["runningState"] = str(InstanceState.FINISH)
        self._expire([k.count(inst, iteration), k.server_count(inst, iteration, "updateModel"),
                      k.server_count(inst, iteration, "countForAggregation"), k.timer(inst, iteration),
                      k.device_metas(inst, iteration), k.fl_set(inst, iteration, "updateModel"),
                      *(k.cipher_data(inst, iteration, n) for n in CIPHER_ROUNDS),
                      *(k.cipher_items(inst, iteration, n) for n in CIPHER_ROUNDS)],
                     OLD_ITERATION_TTL_S)
        s.publish(k.events, {"event": "iteration", "instance": inst, "iteration": nxt})
        return True

    async def _values(self, key):
        return [int(v) for v in (self.store.get(key) or {}).values()]

    # ---- events ---------------------------------------------------------------------------------
    async def publish(self, event):
        self.store.publish(self.keys.events, event)

    async def subscribe(self):
        return self.store.subscribe(self.keys.events)

    # ---- summaries ------------------------------------------------------------------------------
    async def put_summary(self, inst, iteration, node_id, summary):
        key = self.keys.summary(inst, iteration)
        self.store.hash(key)[node_id] = json.dumps(summary)
        self.store.expire(key, SUMMARY_TTL_S)

    async def summaries(self, inst, iteration):
        raw = self.store.get(self.keys.summary(inst, iteration)) or {}
        return {n: json.loads(v) for n, v in raw.items()}

    async def take_summary_lock(self, inst, iteration, node_id):
        key = self.keys.summary_lock(inst, iteration)
        return self.store.put(key, node_id, SUMMARY_LOCK_TTL_S, only_new=True)

    async def release_summary_lock(self, inst, iteration):
        self.store.put(self.keys.summary_lock(inst, iteration), "Finish", SUMMARY_LOCK_TTL_S)

    # ---- scaling --------------------------------------------------------------------------------
    async def scaling(self):
        return dict(self.store.get(self.keys.scaling) or {})

    async def create_scaling(self, fields):
        if self.store.exists(self.keys.scaling):
            return False
        self.store.put(self.keys.scaling, {str(a): str(b) for a, b in fields.items()}, SCALING_TTL_S)
        return True

    async def mark_scale_in(self, node_ids):
        self.store.members(self.keys.scale_in).update(node_ids)
        self.store.expire(self.keys.scale_in, SCALING_TTL_S)
        self.store.publish(self.keys.events, {"event": "scale_in", "node_ids": list(node_ids)})

    async def scale_in_ids(self):
        return set(self.store.get(self.keys.scale_in) or ())

    async def clear_scaling(self):
        self.store.delete(self.keys.scaling, self.keys.scale_in)

    async def scale_in_requested(self, node_id):
        return node_id in (self.store.get(self.keys.scale_in) or ())

    async def leave_scale_in(self, node_id):
        (self.store.get(self.keys.scale_in) or set()).discard(node_id)
        self.store.drop_if_empty(self.keys.scale_in)

    # ---- device PKI -----------------------------------------------------------------------------
    async def put_key_attestation(self, inst, iteration, fl_id, pem):
        key = self.keys.key_attestations(inst, iteration)
        self.store.hash(key)[fl_id] = pem
        self.store.expire(key, self.iter_ttl)

    async def key_attestation(self, inst, iteration, fl_id):
        return (self.store.get(self.keys.key_attestations(inst, iteration)) or {}).get(fl_id)


__all__ = ["MemoryClusterState"]
