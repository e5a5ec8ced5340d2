"""The cloud (cross-silo) worker: a training job that takes part in FEDERATED_LEARNING like a device.

At each sync point: startFLJob (data size = what it trained on since the last sync), updateModel with w·n,
then getModel polling until the iteration's aggregate is served. NOT_ENCRYPT or STABLE_PW_ENCRYPT (the silo
then runs exchangeKeys/getKeys after joining and `mask_update` adds pairwise masks that cancel in the sum)."""
import time

from mindspore_federated import errors
from mindspore_federated.client import messages as m
from mindspore_federated.client.messages import ResponseCode
from mindspore_federated.clock import monotonic, now_ms
from mindspore_federated.log import get_logger
from mindspore_federated.worker.link import DEFAULT_DEADLINE_S, ServerLink
from mindspore_federated.worker.node import new_fl_id
from mindspore_federated.worker.stable_pw import StableMasks

logger = get_logger(__name__)
FL_NAME_SENT = "FEDERATED_LEARNING"   # the reference's cloud worker sends this literal as fl_name
GET_MODEL_TRIES = 512
GET_MODEL_RETRY_S = 1.0
MAX_WAIT_S = 5.0                      # an OutOfTime reply's next_req_time is waited for up to this long
STABLE_PW = "STABLE_PW_ENCRYPT"


def check_encrypt(encrypt_type):
    """The cloud worker refuses the encrypt types the reference's cloud worker does not take."""
    if encrypt_type not in ("NOT_ENCRYPT", STABLE_PW, None, ""):
        raise ValueError(errors.WORKER_ENCRYPT.format(encrypt_type=encrypt_type))


def mask_update(features, masks):
    """The masking step of an upload: identity for NOT_ENCRYPT, the pairwise masks for STABLE_PW_ENCRYPT."""
    return features if masks is None else masks.mask(features)


class CloudWorker:
    """One silo. `servers`: device API addresses (the configured http_server_address first)."""

    def __init__(self, cfg, servers, *, ssl_context=None, deadline_s=DEFAULT_DEADLINE_S):
        check_encrypt(cfg.encrypt_type)
        self.cfg = cfg
        self.fl_id = new_fl_id()
        self.link = ServerLink(servers, ssl_context=ssl_context)
        self.deadline_s = float(deadline_s)
        self.iteration = 0
        self.data_size = 1
        self.stable_pw = cfg.encrypt_type == STABLE_PW
        self.masks = None          # StableMasks of the joined iteration (STABLE_PW_ENCRYPT)
        self.last_upload = None    # name -> array of the last updateModel features (masked when masks are on)

    def _wait(self, next_req_time):
        time.sleep(min(MAX_WAIT_S, max(0.2, (int(next_req_time or 0) - now_ms()) / 1000.0)))

    def start_fl_job(self, data_size):
        """Joins the current iteration with `data_size`; returns the model to train from (name -> array)."""
        self.data_size = max(1, int(data_size))
        deadline = monotonic() + self.deadline_s
        while True:
            body = m.build_start_fl_job(FL_NAME_SENT, self.fl_id, self.iteration, self.data_size)
            reply = self.link.request("startFLJob", body, deadline_s=self.deadline_s)
            if reply.retcode == ResponseCode.SUCCEED:
                self.iteration = reply.iteration
                if self.stable_pw:
                    self.masks = StableMasks(self.link, self.fl_id, self.iteration, reply.fl_plan,
                                             self.deadline_s).exchange()
                return dict(reply.model())
            if monotonic() >= deadline:
                raise TimeoutError(errors.WORKER_REPLY.format(round="startFLJob", reason=reply.reason))
            logger.info("startFLJob: %s", reply.reason)
            self._wait(reply.next_req_time)

    def update_and_get_model(self, weights):
        """Uploads w·n for the joined iteration and returns the aggregated model. If the iteration ended
        without this upload (OutOfTime), the silo joins the next one with the same weights."""
        deadline = monotonic() + self.deadline_s
        n = float(self.data_size)
        while True:
            features = mask_update({k: (v * n).astype("float32", copy=False) for k, v in weights.items()},
                                   self.masks)
            self.last_upload = features
            body = m.build_update_model(FL_NAME_SENT, self.fl_id, self.iteration, features)
            reply = self.link.request("updateModel", body, deadline_s=self.deadline_s)
            if reply.retcode == ResponseCode.SUCCEED:
                return self.get_model()
            if reply.retcode != ResponseCode.OutOfTime or monotonic() >= deadline:
                raise RuntimeError(errors.WORKER_REPLY.format(round="updateModel", reason=reply.reason))
            logger.info("updateModel: %s: joining the next iteration", reply.reason)
            self._wait(reply.next_req_time)
            self.start_fl_job(self.data_size)

    def get_model(self):
        """The aggregated model of the joined iteration (polls while it is not ready)."""
        for _ in range(GET_MODEL_TRIES):
            reply = self.link.request("getModel", m.build_get_model(FL_NAME_SENT, self.iteration),
                                      deadline_s=self.deadline_s)
            if reply.retcode == ResponseCode.SUCCEED and reply.iteration > self.iteration:
                return dict(reply.model())
            time.sleep(GET_MODEL_RETRY_S)
        raise TimeoutError(errors.WORKER_REPLY.format(round="getModel", reason="the model was not ready "
                                                                                 f"after {GET_MODEL_TRIES} tries"))
