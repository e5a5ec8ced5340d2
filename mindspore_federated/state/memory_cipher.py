"""The secure-aggregation verbs of MemoryClusterState: the semantics of CIPHER_SUBMIT / CIPHER_JOIN in one process."""
from mindspore_federated.state.base import CipherResult, Outcome


class MemoryCipherVerbs:
    """Mixed into MemoryClusterState (uses its `store`, `keys`, `iter_ttl` and `_gate`)."""

    def _is_member(self, inst, iteration, need, fl_id):
        k, s = self.keys, self.store
        if need.name == "startFLJob":
            return fl_id in (s.get(k.device_metas(inst, iteration)) or {})
        if need.name == "updateModel":
            return fl_id in (s.get(k.fl_set(inst, iteration, "updateModel")) or set())
        return fl_id in (s.get(k.cipher_data(inst, iteration, need.name)) or {})

    def _first_count(self, inst, iteration, name, now_ms):
        k, s = self.keys, self.store
        counts = s.hash(k.count(inst, iteration))
        counts[name] = int(counts.get(name, 0)) + 1
        if counts[name] == 1:
            s.hash(k.timer(inst, iteration)).setdefault(name, int(now_ms))
            for key in (k.count(inst, iteration), k.timer(inst, iteration)):
                s.expire(key, self.iter_ttl)
        return counts[name]

    async def cipher_submit(self, inst, iteration, name, threshold, fl_id, value, need, items, now_ms):
        k, s = self.keys, self.store
        refused = self._gate(inst, iteration)
        if refused:
            return CipherResult(refused)
        if fl_id in (s.get(k.cipher_data(inst, iteration, name)) or {}):
            return CipherResult(Outcome.DUPLICATE)
        count = int((s.get(k.count(inst, iteration)) or {}).get(name, 0))
        if count >= int(threshold):
            return CipherResult(Outcome.THRESHOLD_REACHED, count)
        if not self._is_member(inst, iteration, need, fl_id):
            return CipherResult(Outcome.NOT_MEMBER, count)
        s.hash(k.cipher_data(inst, iteration, name))[fl_id] = bytes(value)
        s.expire(k.cipher_data(inst, iteration, name), self.iter_ttl)
        if items:
            s.hash(k.cipher_items(inst, iteration, name)).update({f: bytes(v) for f, v in items.items()})
            s.expire(k.cipher_items(inst, iteration, name), self.iter_ttl)
        return CipherResult(Outcome.ACCEPTED, self._first_count(inst, iteration, name, now_ms))

    async def cipher_join(self, inst, iteration, name, fl_id, need, ready, ready_threshold, now_ms):
        k, s = self.keys, self.store
        refused = self._gate(inst, iteration)
        if refused:
            return CipherResult(refused)
        if ready == "updateModel":
            done = sum((s.get(k.server_count(inst, iteration, "updateModel")) or {}).values())
        else:
            done = int((s.get(k.count(inst, iteration)) or {}).get(ready, 0))
        if done < int(ready_threshold):
            return CipherResult(Outcome.NOT_READY)
        if not self._is_member(inst, iteration, need, fl_id):
            return CipherResult(Outcome.NOT_MEMBER)
        data = s.hash(k.cipher_data(inst, iteration, name))
        if fl_id in data:
            return CipherResult(Outcome.ACCEPTED, int(s.hash(k.count(inst, iteration)).get(name, 0)))
        data[fl_id] = b""
        s.expire(k.cipher_data(inst, iteration, name), self.iter_ttl)
        return CipherResult(Outcome.ACCEPTED, self._first_count(inst, iteration, name, now_ms))

    async def cipher_values(self, inst, iteration, name):
        return dict(self.store.get(self.keys.cipher_data(inst, iteration, name)) or {})

    async def cipher_items(self, inst, iteration, name, fields):
        items = self.store.get(self.keys.cipher_items(inst, iteration, name)) or {}
        return [items.get(f) for f in fields]

    async def cipher_count(self, inst, iteration, name):
        return int((self.store.get(self.keys.count(inst, iteration)) or {}).get(name, 0))

    async def update_set(self, inst, iteration):
        return set(self.store.get(self.keys.fl_set(inst, iteration, "updateModel")) or ())

    async def cluster_prime(self, candidate):
        if candidate is not None:
            self.store.put(self.keys.cipher_prime, bytes(candidate), only_new=True)
        return self.store.get(self.keys.cipher_prime)
