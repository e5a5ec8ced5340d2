"""FederatedLearningManager (a MindSpore Callback) and PushMetrics (a MindSpore Cell) for workers.

HYBRID_TRAINING: at step k·f+1 the worker pulls the devices' aggregate into the network, at step k·f it pushes
its weights; `PushMetrics()(loss, acc)` ends the iteration. FEDERATED_LEARNING (a cloud worker, cross-silo):
at step k·f+1 it joins the iteration (startFLJob; the first join loads the cluster's model), at step k·f it
uploads and loads the aggregate.
f = sync_frequency; with sync_type="adaptive" it changes by the rule of trainer/adaptive.py."""
import signal
import threading

import numpy as np
from mindspore import Tensor, nn, ops
from mindspore.train.callback import Callback

from mindspore_federated import errors
from mindspore_federated.config import FEDERATED_LEARNING, HYBRID_TRAINING, load_config
from mindspore_federated.log import get_logger
from mindspore_federated.tls import worker_client_context
from mindspore_federated.trainer.adaptive import AdaptiveSync

logger = get_logger(__name__)
_ACTIVE = {"worker": None}   # the hybrid worker PushMetrics reports to (one per process, as in the reference)
_LOCK = threading.Lock()


def active_hybrid_worker():
    return _ACTIVE["worker"]


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(errors.WORKER_ARG.format(name=name, what="a positive int", value=value))
    return int(value)


def fl_param_names(network):
    """Names of the parameters to synchronise: the optimizers' parameters with requires_aggr, else every
    trainable parameter of the network."""
    names = []
    for _, cell in network.cells_and_names():
        if isinstance(cell, nn.Optimizer):
            names += [p.name for p in cell.parameters if getattr(p, "requires_aggr", True) and p.name not in names]
    return names or [p.name for p in network.trainable_params()]


class FederatedLearningManager(Callback):
    """Synchronises `model`'s weights with the cluster during `Model.train` (pass it in `callbacks`).

    yaml_config: the cluster's YAML; model: the nn.Cell trained; sync_frequency: steps between two syncs;
    http_server_address: the server a cloud worker talks to (hybrid workers find live servers in the state);
    data_size: what a cloud worker reports per sync (None: the number of steps since the last sync);
    sync_type: "fixed" or "adaptive" (kwargs: min_consistent_rate, min_consistent_rate_at_round, ema_alpha,
    observation_window_size, frequency_increase_ratio, unchanged_round); run_mode (kwarg): overrides the YAML's
    server_mode; ssl_config: accepted with a YAML whose enable_ssl is true (the links are then HTTPS, the servers
    verified against `ssl.ca_cert_path`; the workers present no client certificate)."""

    def __init__(self, yaml_config, model, sync_frequency, http_server_address="", data_size=None,
                 sync_type="fixed", run_distribute=False, ssl_config=None, **kwargs):
        super().__init__()
        if not isinstance(yaml_config, str):
            raise TypeError(errors.WORKER_ARG.format(name="yaml_config", what="a str", value=yaml_config))
        if not isinstance(model, nn.Cell):
            raise TypeError(errors.WORKER_ARG.format(name="model", what="an nn.Cell", value=type(model).__name__))
        self._sync_frequency = _check_positive_int("sync_frequency", sync_frequency)
        if sync_type not in ("fixed", "adaptive"):
            raise ValueError(errors.WORKER_SYNC_TYPE.format(sync_type=sync_type))
        if run_distribute:
            raise errors.NotBuiltError(errors.WORKER_ARG.format(
                name="run_distribute", what="False (distributed workers are not built)", value=run_distribute))
        self._cfg = load_config(yaml_config, role="worker")
        if ssl_config is not None and not self._cfg.enable_ssl:
            raise ValueError(errors.WORKER_ARG.format(
                name="ssl_config", what="None when the YAML's enable_ssl is false", value=ssl_config))
        self._ssl_context = worker_client_context(self._cfg) if self._cfg.enable_ssl else None
        self._run_mode = kwargs.pop("run_mode", None) or self._cfg.server_mode
        if self._run_mode not in (FEDERATED_LEARNING, HYBRID_TRAINING):
            raise ValueError(errors.WORKER_MODE.format(run_mode=self._run_mode))
        self._data_size = None if data_size is None else _check_positive_int("data_size", data_size)
        self._model = model
        self._params = {p.name: p for p in model.trainable_params()}
        self._names = [n for n in fl_param_names(model) if n in self._params]
        if not self._names:
            raise ValueError(errors.WORKER_NO_PARAMS)
        self._adaptive = AdaptiveSync(self._sync_frequency, **kwargs) if sync_type == "adaptive" else None
        self._participants = max(1, int(self._cfg.update_model_threshold))
        self._step = 0
        self._next_begin = 1
        self._next_end = self._sync_frequency
        self._last_global = None
        self._pushed = None
        self._last_loaded = None
        self.sync_log = []   # (step, event, frequency) of every sync (pull/push or join/update)
        self._worker = self._start_worker(http_server_address)

    # ---- worker ---------------------------------------------------------------------------------
    def _start_worker(self, http_server_address):
        if self._run_mode == HYBRID_TRAINING:
            from mindspore_federated.worker.hybrid import HybridWorker
            worker = HybridWorker(self._cfg, ssl_context=self._ssl_context).start()
            with _LOCK:
                _ACTIVE["worker"] = worker
            _stop_on_sigterm(worker)
            return worker
        from mindspore_federated.worker.cloud import CloudWorker
        servers = [a for a in str(http_server_address).split(",") if a]
        if not servers:
            raise ValueError(errors.WORKER_ARG.format(name="http_server_address", what="'ip:port' of a server",
                                                      value=http_server_address))
        return CloudWorker(self._cfg, servers, ssl_context=self._ssl_context)

    @property
    def worker(self):
        return self._worker

    @property
    def last_pulled(self):
        """name -> array of the newest weights loaded from the cluster (hybrid: the devices' aggregate)."""
        return dict(self._last_loaded or {})

    @property
    def last_pushed(self):
        """name -> array of the newest weights this worker sent (hybrid pushWeight / cloud updateModel)."""
        return dict(self._pushed or {})

    @property
    def sync_frequency(self):
        return self._sync_frequency

    def stop(self):
        """Leaves the cluster (a hybrid worker deregisters)."""
        if self._run_mode == HYBRID_TRAINING:
            self._worker.stop()

    # ---- weights ----------------------------------------------------------------------------------
    def _weights(self):
        return {n: self._params[n].asnumpy().astype(np.float32).reshape(-1) for n in self._names}

    def _load(self, weights):
        self._last_loaded = {n: np.array(weights[n], np.float32).reshape(-1) for n in self._names if n in weights}
        for name in self._names:
            if name in weights:
                param = self._params[name]
                data = np.asarray(weights[name], np.float32).reshape(param.shape)
                # in place: Parameter.set_data would detach the parameter from the compiled train step
                ops.assign(param, Tensor(np.array(data, copy=True)))

    def _observe(self, local, new_global):
        """Adaptive sync: the rule sees the global update and the magnitude of the local one."""
        if self._adaptive is None:
            return
        if self._last_global is not None and local is not None:
            k = self._participants
            grads = {n: (new_global[n] - self._last_global[n]) * k for n in self._names if n in new_global}
            abs_grads = {n: np.abs(local[n] - self._last_global[n]) * k for n in grads}
            self._sync_frequency = self._adaptive.observe(grads, abs_grads)
        self._last_global = {n: np.array(v, np.float32).reshape(-1) for n, v in new_global.items()}

    # ---- MindSpore callback hooks -----------------------------------------------------------------
    def on_train_step_begin(self, run_context):
        self.step_begin(run_context)

    def on_train_step_end(self, run_context):
        self.step_end(run_context)

    def step_begin(self, run_context):
        self._step += 1
        if self._step != self._next_begin:
            return
        if self._run_mode == HYBRID_TRAINING:
            pulled = self._worker.pull_weight(self._names)
            self._observe(self._pushed, pulled)
            self._load(pulled)
            self.sync_log.append((self._step, "pull", self._sync_frequency))
        else:
            data_size = self._data_size or self._sync_frequency
            model = self._worker.start_fl_job(data_size)
            if self._last_global is None:   # the first join: start from the cluster's model, like every silo
                self._load(model)
                self._last_global = {n: np.asarray(model[n], np.float32).reshape(-1) for n in model}
            self.sync_log.append((self._step, "join", self._sync_frequency))
        self._next_end = self._step + self._sync_frequency - 1

    def step_end(self, run_context):
        if self._step != self._next_end:
            return
        weights = self._weights()
        if self._run_mode == HYBRID_TRAINING:
            self._worker.push_weight(weights)
            self._pushed = weights
            self.sync_log.append((self._step, "push", self._sync_frequency))
        else:
            new_global = self._worker.update_and_get_model(weights)
            self._pushed = weights
            self._load(new_global)
            self.sync_log.append((self._step, "update", self._sync_frequency))
            self._observe(weights, new_global)
        self._next_begin = self._step + 1


def _stop_on_sigterm(worker):
    """SIGTERM: the worker deregisters, then the process exits 0 (main thread only; else left as is)."""
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum, frame):
        worker.stop()
        if callable(previous) and previous not in (signal.SIG_DFL, signal.SIG_IGN):
            previous(signum, frame)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, handler)


class PushMetrics(nn.Cell):
    """`PushMetrics()(loss, acc)` / `.construct(loss, acc)`: sends the iteration's metrics (hybrid), which
    ends the iteration. Requires a FederatedLearningManager in HYBRID_TRAINING in this process. Returns
    False (nothing sent) when another worker's weights became the iteration's model."""

    def __call__(self, loss, acc):
        return self.construct(loss, acc)   # a host-side call in every mode (never compiled into a graph)

    def construct(self, loss, acc):
        worker = active_hybrid_worker()
        if worker is None:
            raise RuntimeError(errors.WORKER_REPLY.format(
                round="pushMetrics", reason="no hybrid worker: create a FederatedLearningManager first"))
        return worker.push_metrics(float(np.asarray(_value(loss))), float(np.asarray(_value(acc))))


def _value(x):
    return x.asnumpy() if hasattr(x, "asnumpy") else x
