"""The engine's shared view of one server: instance, iteration, thresholds, flags, models and statistics."""
import asyncio
import random

from mindspore_federated import errors
from mindspore_federated.clock import time_string
from mindspore_federated.config.thresholds import update_model_threshold
from mindspore_federated.log import get_logger
from mindspore_federated.server.aggregation.fedavg import FedAvgAccumulator
from mindspore_federated.server.compressed import UploadDecoder, upload_compression
from mindspore_federated.server.engine.reply_cache import ReplyCache
from mindspore_federated.server.engine.tasks import TaskGroup
from mindspore_federated.server.model import ModelStore
from mindspore_federated.server.secagg.settings import CipherSettings, cipher_settings
from mindspore_federated.server.summary import IterationStats, parse_participation_levels
from mindspore_federated.state.keys import InstanceState

logger = get_logger(__name__)


class EngineContext:
    """What the engine parts share: written by the lifecycle and sync loop, read by rounds and HTTP."""

    def __init__(self, cfg, state, spec, initial_model, http_address, peers, hooks, node_id=None):
        self.cfg = cfg
        self.state = state
        self.spec = spec
        self.peers = peers
        self.hooks = hooks                 # summary/callback/traffic sink (server.app.ServerApp)
        self.http_address = http_address
        self.tcp_address = peers.address
        self.node_id = node_id or f"{self.tcp_address}::{time_string()}::{random.randint(10000, 99999)}"
        self.rank = None
        self.info = None                   # the registration JSON sent with every heartbeat
        self.hybrid = cfg.server_mode == "HYBRID_TRAINING"
        self.store = ModelStore()
        self.initial_model = initial_model
        self.acc = FedAvgAccumulator(spec)
        self.decoder = UploadDecoder()     # DIFF_SPARSE_QUANT uploads (server/compressed.py)
        self.stats = IterationStats()
        self.levels_ms = parse_participation_levels(cfg.get("summary.participation_time_level", "5,15"))
        self.replies = ReplyCache()
        self.tasks = TaskGroup()
        self.inst = None
        self.iteration = 0
        self.running_state = InstanceState.RUNNING
        self.hp = {}
        self.cipher = CipherSettings()     # the privacy mode of the cluster (server/secagg/)
        self.cache_ok = True
        self.safemode = False
        self.leaving = False               # graceful stop in progress: devices are turned away
        self.stopping = False              # the loops and tasks end
        self.inflight = 0                  # device requests being served
        self.aggregated = {}               # iteration (or ("devices", iteration)) -> Model not yet stored
        self.aggregating = {}              # iteration -> future done when its aggregation ended here
        self.last_switch = None            # (iteration, success) of the newest iteration this server ended
        self.sync_wanted = asyncio.Event()

    def apply_hyper_params(self, hp):
        self.hp = dict(hp)
        self.threshold_start = int(hp["start_fl_job_threshold"])
        self.threshold_update = update_model_threshold(self.threshold_start, hp["update_model_ratio"])
        self.iteration_window_ms = int(hp["start_fl_job_time_window"]) + int(hp["update_model_time_window"])
        self.fl_iteration_num = int(hp["fl_iteration_num"])
        self.download_quant = hp.get("download_compress_type") == "QUANT"
        self.cipher = cipher_settings(hp, getattr(self, "cipher", None))
        if hp.get("upload_compress_type", "NO_COMPRESS") != upload_compression(hp):
            logger.warning(errors.COMPRESS_DISABLED_WARNING.format(compress=hp["upload_compress_type"],
                                                                encrypt_type=hp.get("encrypt_type")))
        self.replies.clear()

    def __getattr__(self, name):
        """cipher_threshold_<round>: the cipher round thresholds the round windows compare with."""
        if name.startswith("cipher_threshold_"):
            return self.cipher.thresholds.get(name[len("cipher_threshold_"):], 0)
        raise AttributeError(name)

    def request_sync(self):
        """Asks the sync loop for an immediate sync with the cluster state."""
        self.sync_wanted.set()

    def spawn(self, coro, hook=False):
        return self.tasks.spawn(coro, hook)

    def model_for(self, iteration):
        """The model of `iteration`, else the newest one stored."""
        return self.store.get(iteration) or self.store.newest()

    def model_of(self, iteration, instance=None, stage=None):
        """The model of `iteration` if this server has it (aggregated or stored), else None. Hybrid `stage`:
        "devices" the devices' aggregate, "pushed" a worker's pushed model (not yet stored)."""
        if instance is not None and instance != self.inst:
            return None
        if stage == "devices":
            return self.aggregated.get(("devices", iteration))
        if stage == "pushed":
            return self.aggregated.get(iteration) if iteration == self.iteration else None
        model = self.aggregated.get(iteration)
        return model if model is not None else self.store.get(iteration)

    def has_current_model(self):
        """True when the model devices should start this iteration from is here."""
        return self.store.get(self.iteration - 1) is not None
