"""Every Redis key pattern of a cluster, in one place (documented in state/README.md).

All keys live under `ms_fl:{<fl_name>}:`, so several FL jobs (and tests) share one Redis safely; the braces
are a Redis Cluster hash tag: every key of one job maps to one slot, so each Lua script's keys stay single-slot.
`P` = `ms_fl:{<fl>}:<instance>:` and `PI` = `P<iteration>:`, as in the reference's layout.
"""

ROOT = "ms_fl"


class Keys:
    """Key builder for one `fl_name` (and, per call, an instance name and iteration)."""

    def __init__(self, fl_name: str, root: str = ROOT):
        self.fl_name = fl_name
        self.base = f"{root}:{{{fl_name}}}:"

    # ---- per FL job ----------------------------------------------------------------------
    @property
    def instance_name(self) -> str:
        """string: the current instance name."""
        return f"{self.base}InstanceName:String"

    @property
    def model_info(self) -> str:
        """string: JSON declaration of the model's features (names, byte sizes, require_aggr)."""
        return f"{self.base}ModelInfo:String"

    @property
    def processes(self) -> str:
        """hash: node id -> JSON {pid, host, role} of every live process (used by finish_cloud.py)."""
        return f"{self.base}processes:Hash"

    @property
    def ranks(self) -> str:
        """hash: node id -> rank id; a server restarted with the same node id takes its rank back."""
        return f"{self.base}ranks:Hash"

    @property
    def scaling(self) -> str:
        """hash: an operator's pending scale request {state, expected_servers, requested_ms}."""
        return f"{self.base}scaling:Hash"

    @property
    def scale_in(self) -> str:
        """set: node ids asked to drain and leave (POST /scalein)."""
        return f"{self.base}scaleIn:Set"

    @property
    def events(self) -> str:
        """pub/sub channel: cluster events (iteration switched, new instance, state changed, aggregation
        due, round window opened)."""
        return f"{self.base}events"

    @property
    def cipher_prime(self) -> str:
        """string: the cluster's secret-sharing prime (33 bytes), written once (SET NX), never expired."""
        return f"{self.base}cipherPrime:String"

    # ---- per instance (P) ----------------------------------------------------------------
    def p(self, inst: str) -> str:
        return f"{self.base}{inst}:"

    def status(self, inst: str) -> str:
        """hash: iterationNum, lastIterationSuccess, lastIterationResult, runningState."""
        return f"{self.p(inst)}status:Hash"

    def hyper_params(self, inst: str) -> str:
        """string: JSON of the instance's hyper-parameters."""
        return f"{self.p(inst)}hyperParams:String"

    def servers(self, inst: str) -> str:
        """hash: node id -> TCP address of each live server."""
        return f"{self.p(inst)}server:Hash"

    def server_heartbeat(self, inst: str, node_id: str) -> str:
        """string with a 10 s TTL: the server's TCP address."""
        return f"{self.p(inst)}server:heartbeat:{node_id}:String"

    def server_info(self, inst: str) -> str:
        """hash: node id -> JSON {http, tcp, pid, host, rank} for every registered server."""
        return f"{self.p(inst)}server:info:Hash"

    def reg_lock(self, inst: str) -> str:
        """string: node id holding the registration lock."""
        return f"{self.p(inst)}server:regLock:String"

    def workers(self, inst: str) -> str:
        """hash: worker fl_id -> info."""
        return f"{self.p(inst)}worker:Hash"

    def worker_heartbeat(self, inst: str, fl_id: str) -> str:
        """string with a 10 s TTL."""
        return f"{self.p(inst)}worker:heartbeat:{fl_id}:String"

    # ---- per iteration (PI) --------------------------------------------------------------
    def pi(self, inst: str, iteration: int) -> str:
        return f"{self.p(inst)}{iteration}:"

    def count(self, inst: str, iteration: int) -> str:
        """hash: round name -> global count (startFLJob, pushMetrics, cipher rounds)."""
        return f"{self.pi(inst, iteration)}count:Hash"

    def server_count(self, inst: str, iteration: int, name: str) -> str:
        """hash: node id -> per-server count (updateModel, count_for_aggregation)."""
        return f"{self.pi(inst, iteration)}count:{name}:Hash"

    def claims(self, inst: str, iteration: int) -> str:
        """hash: round name -> node id of the one server that owns it this iteration (hybrid pushWeight)."""
        return f"{self.pi(inst, iteration)}claim:Hash"

    def timer(self, inst: str, iteration: int) -> str:
        """hash: round name -> start time (ms) of the round's window (first request)."""
        return f"{self.pi(inst, iteration)}timer:Hash"

    def device_metas(self, inst: str, iteration: int) -> str:
        """hash: fl_id -> DeviceMeta JSON {data_size, now_time, eval_data_size}."""
        return f"{self.pi(inst, iteration)}client:DeviceMetas:Hash"

    def key_attestations(self, inst: str, iteration: int) -> str:
        """hash: fl_id -> PEM of the key-attestation certificate its startFLJob proved (client_verify)."""
        return f"{self.pi(inst, iteration)}client:KeyAttestation:Hash"

    def fl_set(self, inst: str, iteration: int, name: str) -> str:
        """set: fl_ids that completed round `name` this iteration."""
        return f"{self.pi(inst, iteration)}client:{name}:flSet"

    def cipher_data(self, inst: str, iteration: int, name: str) -> str:
        """hash: fl_id -> what the device sent in cipher round `name` ("" for the get rounds)."""
        return f"{self.pi(inst, iteration)}cipher:{name}:data:Hash"

    def cipher_items(self, inst: str, iteration: int, name: str) -> str:
        """hash: "<recipient>|<sender>" -> one item of round `name` (shareSecrets: an encrypted share)."""
        return f"{self.pi(inst, iteration)}cipher:{name}:items:Hash"

    def summary(self, inst: str, iteration: int) -> str:
        """hash: node id -> JSON summary of the iteration on that server."""
        return f"{self.pi(inst, iteration)}summary:Hash"

    def summary_lock(self, inst: str, iteration: int) -> str:
        """string: node id of the server writing the iteration's summary, then "Finish"."""
        return f"{self.pi(inst, iteration)}summaryLock:String"


# The cipher rounds whose per-iteration data hashes exist (secure aggregation, spec §5.1).
CIPHER_ROUNDS = ("exchangeKeys", "getKeys", "shareSecrets", "getSecrets", "getClientList", "reconstructSecrets",
                 "pushListSign", "getListSign")


# Instance states stored in status:Hash runningState (spec §1.7).
class InstanceState:
    RUNNING = 0
    DISABLE = 1
    FINISH = 2
    STOP = 3


CLUSTER_STATE_NAMES = {InstanceState.RUNNING: "CLUSTER_READY", InstanceState.DISABLE: "CLUSTER_DISABLE",
                       InstanceState.FINISH: "CLUSTER_FINISH"}
METRICS_STATE_NAMES = {InstanceState.RUNNING: "running", InstanceState.DISABLE: "disable",
                       InstanceState.FINISH: "finish", InstanceState.STOP: "stop"}

# TTLs (seconds): configuration keys live a week past the global window; per-iteration keys
# 30 min past it; old iterations' keys are expired shortly after the switch.
WEEK_S = 7 * 24 * 3600
ITER_EXTRA_S = 30 * 60
OLD_ITERATION_TTL_S = 60
HEARTBEAT_TTL_S = 10
REG_LOCK_TTL_S = 60
SCALING_TTL_S = 3600
SUMMARY_TTL_S = 60
SUMMARY_LOCK_TTL_S = 30
