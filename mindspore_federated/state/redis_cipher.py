"""The secure-aggregation verbs of RedisClusterState (spec §5.1): cipher rounds, their data and the prime."""
from mindspore_federated.state import scripts
from mindspore_federated.state.base import CipherResult, Outcome

_CIPHER = {-1: Outcome.STATUS_LOST, -2: Outcome.ITERATION_CHANGED, -3: Outcome.NOT_RUNNING,
           0: Outcome.ACCEPTED, 1: Outcome.THRESHOLD_REACHED, 2: Outcome.NOT_MEMBER, 3: Outcome.DUPLICATE,
           4: Outcome.NOT_READY}


def _s(value):
    return value.decode() if isinstance(value, bytes) else value


def _pairs(reply):
    """An HGETALL reply as a dict: redis-py gives one, the pipelined connection the flat field/value list."""
    if isinstance(reply, dict):
        return reply
    return dict(zip(reply[::2], reply[1::2]))


class RedisCipherVerbs:
    """Mixed into RedisClusterState (uses its `r`, `fast`, `keys`, `iter_ttl` and `_eval`)."""

    async def _read(self, *command):
        """A read of the cipher rounds' request path, through the pipelined connection when there is one."""
        execute = self.fast.execute if self.fast is not None else self.r.execute_command
        return await execute(*command)

    def register_cipher_scripts(self, client):
        self._cipher_submit = client.register_script(scripts.CIPHER_SUBMIT)
        self._cipher_join = client.register_script(scripts.CIPHER_JOIN)

    def _need_key(self, inst, iteration, need):
        k = self.keys
        if need.name == "startFLJob":
            return k.device_metas(inst, iteration)
        if need.name == "updateModel":
            return k.fl_set(inst, iteration, "updateModel")
        return k.cipher_data(inst, iteration, need.name)

    async def cipher_submit(self, inst, iteration, name, threshold, fl_id, value, need, items, now_ms):
        k = self.keys
        flat = [x for pair in (items or {}).items() for x in pair]
        reply = await self._eval(
            self._cipher_submit,
            [k.status(inst), k.count(inst, iteration), k.cipher_data(inst, iteration, name),
             self._need_key(inst, iteration, need), k.cipher_items(inst, iteration, name), k.timer(inst, iteration)],
            [iteration, name, threshold, fl_id, value, need.kind, self.iter_ttl, now_ms, len(flat) // 2, *flat])
        code = int(reply[0])
        return CipherResult(_CIPHER[code], int(reply[1]) if len(reply) > 1 and code >= 0 else 0)

    async def cipher_join(self, inst, iteration, name, fl_id, need, ready, ready_threshold, now_ms):
        k = self.keys
        if ready == "updateModel":
            ready_key, ready_field = k.server_count(inst, iteration, "updateModel"), ""
        else:
            ready_key, ready_field = k.count(inst, iteration), ready
        reply = await self._eval(
            self._cipher_join,
            [k.status(inst), k.count(inst, iteration), k.cipher_data(inst, iteration, name),
             self._need_key(inst, iteration, need), ready_key, k.timer(inst, iteration)],
            [iteration, name, fl_id, need.kind, ready_field, ready_threshold, self.iter_ttl, now_ms])
        code = int(reply[0])
        return CipherResult(_CIPHER[code], int(reply[1]) if code == 0 else 0)

    async def cipher_values(self, inst, iteration, name):
        raw = _pairs(await self._read("HGETALL", self.keys.cipher_data(inst, iteration, name)))
        return {_s(a): bytes(b) for a, b in raw.items()}

    async def cipher_items(self, inst, iteration, name, fields):
        if not fields:
            return []
        return list(await self._read("HMGET", self.keys.cipher_items(inst, iteration, name), *fields))

    async def cipher_count(self, inst, iteration, name):
        return int(await self.r.hget(self.keys.count(inst, iteration), name) or 0)

    async def update_set(self, inst, iteration):
        return {_s(m) for m in await self._read("SMEMBERS", self.keys.fl_set(inst, iteration, "updateModel"))}

    async def cluster_prime(self, candidate):
        key = self.keys.cipher_prime
        if candidate is not None:
            await self.r.set(key, candidate, nx=True)
        stored = await self.r.get(key)
        return bytes(stored) if stored is not None else None

