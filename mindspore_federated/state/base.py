"""The cluster-state contract (ClusterState) and its typed results, shared by every backend."""
import abc
import enum
import json
from dataclasses import dataclass
from typing import NamedTuple, Optional

from mindspore_federated.state.keys import WEEK_S, InstanceState


def rank_of(info_json) -> int:
    """The rank recorded in a server's info JSON (0 when unreadable)."""
    try:
        return int(json.loads(info_json).get("rank", 0))
    except (TypeError, ValueError, AttributeError):
        return 0


def http_of(info_json) -> str:
    """The device API address in a server's registration JSON ("" when absent or unreadable)."""
    try:
        return str(json.loads(info_json).get("http") or "")
    except (TypeError, ValueError, AttributeError):
        return ""


def config_ttl(params, default_window_ms) -> int:
    """TTL (s) of an instance's configuration keys: a week past its global window."""
    window = params.get("global_iteration_time_window")
    if not isinstance(window, int) or isinstance(window, bool) or window <= 0:
        window = default_window_ms
    return window // 1000 + WEEK_S


class Outcome(enum.Enum):
    """What an atomic round verb (start_fl_job, update_model, count_for_aggregation) did."""

    ACCEPTED = "accepted"
    STATUS_LOST = "status lost"              # the instance's status is gone (the cache lost its data)
    ITERATION_CHANGED = "iteration changed"  # the cluster is past the caller's iteration
    NOT_RUNNING = "not running"              # the instance is disabled, finished or stopping
    THRESHOLD_REACHED = "threshold reached"  # the round has all the requests it takes
    DUPLICATE = "duplicate"                  # this device already did the round this iteration
    LOCAL_ERROR = "local error"              # the caller's own check of the request failed
    NO_DEVICE_META = "no device meta"        # updateModel from a device without a startFLJob
    WRONG_ITERATION = "wrong iteration"      # updateModel for another iteration than the current one
    NOT_MEMBER = "not member"                # the device skipped a round this one requires
    NOT_READY = "not ready"                  # the round this one waits for has not reached its threshold

    @property
    def stale(self) -> bool:
        """True when the caller's view of the instance is out of date (it should sync)."""
        return self in (Outcome.STATUS_LOST, Outcome.ITERATION_CHANGED, Outcome.NOT_RUNNING)


@dataclass(slots=True)
class StartResult:
    """start_fl_job: the round's global count and when its window opened (ms), when accepted."""

    outcome: Outcome
    count: int = 0
    window_start_ms: Optional[int] = None


@dataclass(slots=True)
class UpdateResult:
    """update_model: the device's meta and the accepted-update total; `aggregated` is the cluster's
    aggregation count when the verb counted it too (count_now), else None."""

    outcome: Outcome
    meta: Optional[dict] = None
    total: int = 0
    aggregated: Optional[int] = None


@dataclass(slots=True)
class CountResult:
    """count_for_aggregation: the cluster's aggregation count after this one."""

    outcome: Outcome
    total: int = 0


@dataclass(slots=True)
class CipherResult:
    """cipher_submit / cipher_join: the round's global count after this request."""

    outcome: Outcome
    count: int = 0


@dataclass(frozen=True)
class Need:
    """Where a cipher verb checks that a device did an earlier round: `kind` 'h' (hash field) or 's' (set
    member) at the key `name` names ('startFLJob': device metas, 'updateModel': its set, else a cipher round)."""

    name: str
    kind: str = "h"


class Snapshot(NamedTuple):
    """One sync's read: instance name, status hash, per-server update counts, round timers (ms), the
    cluster's aggregation count."""

    instance: Optional[str]
    status: dict
    update_counts: dict
    timers: dict
    aggregated: int


@dataclass
class NodeInfo:
    """A server or worker as registered in the cluster state."""

    node_id: str
    role: str
    alive: bool
    tcp: str = ""
    rank: int = 0
    http: str = ""   # a server's device API address (from its registration JSON)


class Subscription(abc.ABC):
    """The cluster's event channel, as seen by one subscriber."""

    @abc.abstractmethod
    async def get(self, timeout: float) -> Optional[dict]:
        """The next event (a dict; {} for an unreadable one), or None after `timeout` s."""

    @abc.abstractmethod
    async def aclose(self):
        """Unsubscribes."""


class ClusterState(abc.ABC):
    """Every read and write of the shared cluster state, for one fl_name.

    Backends: RedisClusterState (a real cluster) and MemoryClusterState (one process). A backend that
    cannot reach its store raises redis.exceptions.RedisError (ConnectionError, TimeoutError, ...)."""

    fl_name: str

    # ---- connection ---------------------------------------------------------------------------
    @abc.abstractmethod
    async def ping(self):
        """Raises when the store is unreachable."""

    @abc.abstractmethod
    async def reset_idle_connections(self):
        """Drops idle connections (after a connection error: the store may have restarted)."""

    @abc.abstractmethod
    async def aclose(self):
        """Releases the connections."""

    # ---- instance, hyper-parameters, model declaration -------------------------------------------
    @abc.abstractmethod
    async def ensure_instance(self) -> str:
        """The current instance name, creating the instance (iteration 1, Running) if none exists."""

    @abc.abstractmethod
    async def instance(self) -> Optional[str]:
        """The current instance name, or None when no server ever started."""

    @abc.abstractmethod
    async def adopt_instance(self, name: str) -> str:
        """Declares `name` the current instance unless one is set; returns the current one."""

    @abc.abstractmethod
    async def ensure_status(self, inst, iteration, state=InstanceState.RUNNING) -> bool:
        """Creates the status of `inst` if missing; True when this call created it."""

    @abc.abstractmethod
    async def create_status_after_loss(self, inst, iteration, reason) -> bool:
        """Re-creates a lost status at `iteration` with the previous iteration marked failed."""

    @abc.abstractmethod
    async def status(self, inst) -> dict:
        """The status fields (strings): iterationNum, lastIterationSuccess, lastIterationResult,
        runningState; {} when lost."""

    @abc.abstractmethod
    async def running_state(self, inst) -> Optional[int]:
        """runningState of `inst`; None when absent or unreadable."""

    @abc.abstractmethod
    async def set_running_state(self, inst, state):
        """Sets runningState unconditionally."""

    @abc.abstractmethod
    async def switch_running_state(self, inst, from_state, to_state) -> Optional[int]:
        """runningState from -> to if it is `from_state`; returns the previous state (None if absent)."""

    @abc.abstractmethod
    async def sync_hyper_params(self, inst, local: dict) -> dict:
        """Declares `local` if the instance has none yet; returns the cluster's hyper-parameters."""

    @abc.abstractmethod
    async def hyper_params(self, inst) -> Optional[dict]:
        """The instance's hyper-parameters, or None."""

    @abc.abstractmethod
    async def start_new_instance(self, updates: dict, make_name) -> Optional[str]:
        """Atomically: a new instance named make_name(current) with the current hyper-parameters updated by
        `updates`, iteration 1, Running, then made current. None when there is no current instance."""

    @abc.abstractmethod
    async def declared_model(self) -> Optional[str]:
        """The model declaration (JSON text) of this fl_name, or None."""

    @abc.abstractmethod
    async def declare_model(self, spec):
        """Declares spec.to_info() once per fl_name; raises FederatedError on a mismatch."""

    # ---- registry -------------------------------------------------------------------------------
    @abc.abstractmethod
    async def acquire_reg_lock(self, inst, node_id, deadline_s) -> bool:
        """Takes the registration lock, waiting up to `deadline_s`; False when it stayed taken."""

    @abc.abstractmethod
    async def release_reg_lock(self, inst, node_id):
        """Releases the lock if `node_id` holds it."""

    @abc.abstractmethod
    async def heartbeat(self, inst, node_id, tcp_address, info: str):
        """Registers/refreshes a server: its address, its info JSON and a heartbeat that expires."""

    @abc.abstractmethod
    async def assign_rank(self, inst, node_id) -> int:
        """The rank this node had before, else the lowest one no live server holds (under the lock)."""

    @abc.abstractmethod
    async def live_servers(self, inst) -> dict:
        """node id -> TCP address of servers whose heartbeat is alive; dead entries are removed."""

    @abc.abstractmethod
    async def server_nodes(self, inst) -> list:
        """Every registered server as NodeInfo (alive = heartbeat present), by rank then node id."""

    @abc.abstractmethod
    async def worker_nodes(self, inst) -> list:
        """Every registered worker as NodeInfo, by id."""

    @abc.abstractmethod
    async def claim(self, inst, iteration, name, node_id) -> str:
        """The first node id to claim `name` in `iteration` (this one if nobody did before)."""

    @abc.abstractmethod
    async def worker_heartbeat(self, inst, fl_id):
        """A worker's 1 s beat: its entry in the worker registry and its 10 s heartbeat key; entries of
        workers whose heartbeat is gone are removed."""

    @abc.abstractmethod
    async def drop_worker(self, inst, fl_id):
        """Removes a worker (this one leaving) from the registry and the process table."""

    @abc.abstractmethod
    async def drop_server(self, inst, node_id, forget_process=False):
        """Removes a server (dead, or this one stopping) from the registry."""

    async def deregister(self, inst, node_id):
        """Graceful stop: leaves the registry and the process table."""
        await self.drop_server(inst, node_id, forget_process=True)

    @abc.abstractmethod
    async def register_process(self, node_id, info):
        """Records a role process (info: a dict or its JSON text) for finish_cloud.py."""

    @abc.abstractmethod
    async def processes(self) -> dict:
        """node id -> registration JSON text of every recorded role process."""

    @abc.abstractmethod
    async def forget_process(self, node_id):
        """Removes a role process from the process table."""

    # ---- rounds ---------------------------------------------------------------------------------
    @abc.abstractmethod
    async def start_fl_job(self, inst, iteration, threshold, fl_id, meta: str, now_ms,
                           local_error=0) -> StartResult:
        """Admits a device to startFLJob of `iteration` (below `threshold`, once per device)."""

    @abc.abstractmethod
    async def update_model(self, inst, iteration, threshold, fl_id, node_id, req_iteration, local_error,
                           now_ms, count_now=False, need_secrets=False) -> UpdateResult:
        """Admits a device's update (below `threshold` cluster-wide, once per device, after its startFLJob;
        with need_secrets after its getSecrets, else NOT_MEMBER) and counts it for `node_id`; with count_now
        it is counted for aggregation as well."""

    @abc.abstractmethod
    async def count_for_aggregation(self, inst, iteration, node_id) -> CountResult:
        """Counts one accumulated update of `node_id` towards the aggregation."""

    # ---- secure aggregation (spec §5.1): per-iteration cipher rounds --------------------------
    @abc.abstractmethod
    async def cipher_submit(self, inst, iteration, name, threshold, fl_id, value: bytes, need: Need,
                            items: Optional[dict], now_ms) -> CipherResult:
        """Round `name` takes a device's data once: DUPLICATE if it already did, THRESHOLD_REACHED at the
        threshold, NOT_MEMBER without `need`; else stores `value` (and `items`, field -> bytes) and counts."""

    @abc.abstractmethod
    async def cipher_join(self, inst, iteration, name, fl_id, need: Need, ready: str, ready_threshold,
                          now_ms) -> CipherResult:
        """A get round: NOT_READY until round `ready` ('updateModel': the accepted updates) counts
        `ready_threshold`, NOT_MEMBER without `need`; else records the device (counted once)."""

    @abc.abstractmethod
    async def cipher_values(self, inst, iteration, name) -> dict:
        """fl_id -> bytes stored by round `name`."""

    @abc.abstractmethod
    async def cipher_items(self, inst, iteration, name, fields) -> list:
        """The items of round `name` at `fields` (bytes or None each)."""

    @abc.abstractmethod
    async def cipher_count(self, inst, iteration, name) -> int:
        """The global count of round `name`."""

    @abc.abstractmethod
    async def update_set(self, inst, iteration) -> set:
        """fl_ids whose update was accepted in `iteration`."""

    @abc.abstractmethod
    async def cluster_prime(self, candidate: Optional[bytes]) -> Optional[bytes]:
        """The cluster's prime: `candidate` if none was stored yet (set once, atomically), else the stored one
        (None when there is none and no candidate)."""

    @abc.abstractmethod
    async def update_counts(self, inst, iteration) -> dict:
        """node id -> updates it accepted in `iteration`."""

    @abc.abstractmethod
    async def snapshot(self, inst, iteration) -> Snapshot:
        """Everything a server's sync reads, at once."""

    @abc.abstractmethod
    async def finish_iteration(self, inst, iteration, success, reason, fl_iteration_num, guard="none",
                               guard_threshold=0) -> bool:
        """Moves `iteration` to the next one if the state still holds it (and the guard allows: 'none',
        'sum' of update counts, or 'field:<round>' global count below `guard_threshold`), finishing the
        instance past `fl_iteration_num`; publishes the 'iteration' event. True when this call won."""

    # ---- events ---------------------------------------------------------------------------------
    @abc.abstractmethod
    async def publish(self, event: dict):
        """Sends `event` to every subscriber of the cluster's channel."""

    @abc.abstractmethod
    async def subscribe(self) -> Subscription:
        """A new subscription to the cluster's event channel."""

    # ---- summaries ------------------------------------------------------------------------------
    @abc.abstractmethod
    async def put_summary(self, inst, iteration, node_id, summary: dict):
        """Records one server's summary of an iteration."""

    @abc.abstractmethod
    async def summaries(self, inst, iteration) -> dict:
        """node id -> summary of `iteration`."""

    @abc.abstractmethod
    async def take_summary_lock(self, inst, iteration, node_id) -> bool:
        """True for the one caller that writes the iteration's metrics line."""

    @abc.abstractmethod
    async def release_summary_lock(self, inst, iteration):
        """Marks the iteration's summary written."""

    # ---- scaling --------------------------------------------------------------------------------
    @abc.abstractmethod
    async def scaling(self) -> dict:
        """The pending scale request's fields (strings), {} when none."""

    @abc.abstractmethod
    async def create_scaling(self, fields: dict) -> bool:
        """Records a scale request unless one is pending; False if one is."""

    @abc.abstractmethod
    async def mark_scale_in(self, node_ids):
        """Asks `node_ids` to drain and leave, and publishes the 'scale_in' event."""

    @abc.abstractmethod
    async def scale_in_ids(self) -> set:
        """Node ids asked to leave."""

    @abc.abstractmethod
    async def clear_scaling(self):
        """Forgets the scale request and the nodes asked to leave."""

    @abc.abstractmethod
    async def scale_in_requested(self, node_id) -> bool:
        """True when `node_id` is asked to leave."""

    @abc.abstractmethod
    async def leave_scale_in(self, node_id):
        """`node_id` is leaving: no longer asked to."""

    # ---- device PKI (client_verify, spec §5.4) ------------------------------------------------
    @abc.abstractmethod
    async def put_key_attestation(self, inst, iteration, fl_id, pem: str):
        """Keeps the key-attestation certificate of a device whose startFLJob was verified in `iteration`."""

    @abc.abstractmethod
    async def key_attestation(self, inst, iteration, fl_id) -> Optional[str]:
        """The key-attestation certificate (PEM) stored for `fl_id` in `iteration`, or None."""
