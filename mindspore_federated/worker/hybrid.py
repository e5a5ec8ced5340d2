"""The hybrid-training worker's rounds: pullWeight (the devices' aggregate), pushWeight, pushMetrics.

It follows the cluster's iteration: a not-ready reply names the server's iteration, which the worker adopts;
a new instance sends it back to iteration 1. `timings` records, per iteration, how long each phase took."""
import atexit
import time

from mindspore_federated import errors
from mindspore_federated.client import messages as m
from mindspore_federated.client.messages import ResponseCode
from mindspore_federated.clock import monotonic
from mindspore_federated.log import get_logger
from mindspore_federated.state.keys import InstanceState
from mindspore_federated.worker.link import DEFAULT_DEADLINE_S, ServerLink
from mindspore_federated.worker.node import WorkerNode

logger = get_logger(__name__)
PULL_RETRY_S = 0.5    # the reference polls pullWeight every 500 ms while the aggregate is not ready
PUSH_RETRY_S = 0.2    # and retries pushWeight every 200 ms


class HybridWorker:
    """A registered worker (WorkerNode) and its link to the servers. `ssl_context`: HTTPS (None: plain HTTP)."""

    def __init__(self, cfg, *, ssl_context=None, node=None, deadline_s=DEFAULT_DEADLINE_S):
        self.node = node or WorkerNode(cfg)
        self.link = ServerLink(self.node.live_servers, ssl_context=ssl_context,
                               finished=lambda: self.node.running_state() == InstanceState.FINISH)
        self.deadline_s = float(deadline_s)
        self.iteration = 1
        self._changes_seen = 0
        self.timings = []          # one dict per pull: iteration, pull_wait_s, train_s, push_s, metrics_s
        self._pulled_at = None
        self.pushed = True         # False after a push that did not become the iteration's model

    @property
    def fl_id(self):
        return self.node.fl_id

    def start(self):
        """Registers; the worker leaves the cluster at interpreter exit if `stop()` was not called."""
        self.node.start()
        atexit.register(self.stop)
        return self

    def stop(self):
        self.node.stop()

    def _follow_instance(self):
        changes = self.node.instance_changes
        if changes != self._changes_seen:
            self._changes_seen = changes
            self.iteration = 1

    def _rounds(self, name, make_body, retry_s, adopt=True):
        """Repeats round `name` while the server answers SucNotReady, adopting a newer iteration of the
        cluster (`adopt`), else returning None when the cluster has moved past the worker's iteration."""
        deadline = monotonic() + self.deadline_s
        while True:
            self._follow_instance()
            reply = self.link.request(name, make_body(self.iteration), deadline_s=self.deadline_s)
            if reply.retcode == ResponseCode.SUCCEED:
                return reply
            if reply.retcode != ResponseCode.SucNotReady:
                raise RuntimeError(errors.WORKER_REPLY.format(round=name, reason=reply.reason))
            if reply.iteration and reply.iteration > self.iteration and not adopt:
                return None
            if reply.iteration and reply.iteration != self.iteration:
                logger.info("%s: the cluster is at iteration %s (worker at %s)", name, reply.iteration,
                            self.iteration)
                self.iteration = reply.iteration
                continue
            if monotonic() >= deadline:
                raise TimeoutError(errors.WORKER_REPLY.format(round=name, reason=reply.reason))
            time.sleep(retry_s)

    def pull_weight(self, names):
        """name -> float32 array of the devices' aggregate of the current iteration (waits for it)."""
        begin = monotonic()
        reply = self._rounds("pullWeight", lambda it: m.build_pull_weight(it, list(names)), PULL_RETRY_S)
        self.iteration = reply.iteration or self.iteration
        self._pulled_at = monotonic()
        self.timings.append({"iteration": self.iteration, "pull_wait_s": self._pulled_at - begin})
        logger.info("pulled %d weights of iteration %s", len(reply.features), self.iteration)
        return dict(reply.features)

    def push_weight(self, weights):
        """Pushes name -> float32 array as the model of the current iteration. True when they became its
        model; False when another worker's push won or the iteration ended meanwhile (then this worker
        sends no metrics for it)."""
        begin = monotonic()
        reply = self._rounds("pushWeight", lambda it: m.build_push_weight(it, weights), PUSH_RETRY_S,
                             adopt=False)
        self._timing("train_s", begin - self._pulled_at if self._pulled_at else 0.0)
        self._timing("push_s", monotonic() - begin)
        self.pushed = reply is not None and reply.reason == errors.PUSH_SUCCESS
        logger.info("pushed %d weights of iteration %s: %s", len(weights), self.iteration,
                    reply.reason if reply is not None else "the iteration ended before the push")
        return self.pushed

    def push_metrics(self, loss, accuracy):
        """Sends the iteration's loss and accuracy, which ends it (valid), if this worker's push made the
        iteration's model; else only moves on. Returns True when the metrics were sent."""
        if not self.pushed:
            logger.info("iteration %s: another worker's weights were taken: no metrics sent", self.iteration)
            self.iteration += 1
            return False
        self.pushed = False
        begin = monotonic()
        reply = self.link.request("pushMetrics", m.build_push_metrics(loss, accuracy), deadline_s=self.deadline_s)
        if reply.retcode != ResponseCode.SUCCEED:
            raise RuntimeError(errors.WORKER_REPLY.format(round="pushMetrics", reason=reply.reason))
        self._timing("metrics_s", monotonic() - begin)
        self.iteration += 1
        return True

    def _timing(self, key, value):
        if self.timings:
            self.timings[-1][key] = value
