"""Every device round in one table: its window and threshold rule, verifier, handler and reply counting.

A new round (exchangeKeys, getKeys, shareSecrets, ...) is one more row; device_api.py routes from here."""
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple, Optional

from mindspore_federated import errors
from mindspore_federated.server import hybrid_rounds, replies, rounds
from mindspore_federated.server.engine.windows import Window
from mindspore_federated.server.replies import REQUEST_ERROR
from mindspore_federated.server.secagg import key_rounds, list_rounds, secret_rounds, wire
from mindspore_federated.server.secagg.common import next_req_time
from mindspore_federated.server.signed_rounds import Signed, cipher_rule


class RoundHost(NamedTuple):
    """What a round handler may use: the engine's view, the cluster state and the engine parts it drives."""

    ctx: object         # engine.context.EngineContext
    state: object       # the cluster state (state.server_state.ServerState)
    windows: object     # engine.windows.RoundWindows
    lifecycle: object   # engine.iteration.IterationLifecycle
    gate: object        # engine.gate.Gate


@dataclass(frozen=True)
class DeviceRound:
    """One device round.

    handler:   (RoundHost, body) -> reply bytes, or None for "invalid body" (may be a coroutine function)
    verifier:  the flatbuffers table the C++ verifier checks before the handler (None: the handler does)
    bad_body:  (RoundHost) -> the reply to a body that fails verification
    window:    the round's time window and threshold rule (None: the round has no window of its own)
    total:     the IterationStats counter of the round's replies, which a rejected body counts in too
    read_only: still served in safe mode and while the server stops
    upload:    the body is a model upload (admitted through the upload pool)
    signed:    how its requests are signed (server/signed_rounds.py): with client_verify.pki_verify the
               signature is checked before the handler runs (None: the round is not signed)
    """

    name: str
    handler: Callable
    verifier: Optional[str]
    bad_body: Callable
    window: Optional[Window] = None
    total: Optional[str] = None
    read_only: bool = False
    upload: bool = False
    signed: Optional[Signed] = None
    is_async: bool = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "is_async", inspect.iscoroutinefunction(self.handler))


def _bad_fl_job(host):
    ctx, windows = host.ctx, host.windows
    return replies.fl_job(REQUEST_ERROR, errors.FLJOB_SCHEMA, ctx.iteration, windows.next_req_time())


def _bad_update(host):
    return replies.update_model(REQUEST_ERROR, errors.UPDATE_SCHEMA, host.windows.next_req_time())


def _bad_get_model(host):
    return replies.get_model(REQUEST_ERROR, errors.GETMODEL_SCHEMA, host.ctx.iteration)


def _bad_pull(host):
    return replies.pull_weight(REQUEST_ERROR, errors.PULL_SCHEMA, host.ctx.iteration)


def _bad_push(host):
    return replies.push_weight(REQUEST_ERROR, errors.PUSH_SCHEMA, host.ctx.iteration)


def _bad_metrics(host):
    return replies.push_metrics(REQUEST_ERROR)


def _refuse_fl_job(host, retcode, reason):
    return replies.fl_job(retcode, reason, host.ctx.iteration, host.windows.next_req_time())


def _refuse_update(host, retcode, reason):
    return replies.update_model(retcode, reason)  # the reference sends no next_req_time here


def _cipher_window(name):
    """A cipher round's window: cipher_time_window from its first request; failing the iteration when the
    round's global count is still below its threshold (EngineContext.cipher_threshold_<name>)."""
    return Window(name, "cipher_time_window", f"field:{name}", f"cipher_threshold_{name}")


def _cipher_signed(name):
    """A cipher round's PKI rule (spec §5.4), refusing in the round's own reply table."""
    build = wire.REFUSALS[name]
    return cipher_rule(name, lambda host, retcode, reason: build(retcode, reason, host.ctx.iteration,
                                                                 next_req_time()))


ROUNDS = (
    DeviceRound("startFLJob", rounds.start_fl_job, "RequestFLJob", _bad_fl_job,
                Window("startFLJob", "start_fl_job_time_window", "field:startFLJob", "threshold_start",
                       opens_iteration=True), total="start_total",
                signed=Signed("RequestFLJob", _refuse_fl_job, proves_device=True)),
    DeviceRound("updateModel", rounds.update_model, None, _bad_update,
                Window("updateModel", "update_model_time_window", "sum", "threshold_update"),
                total="update_total", upload=True,
                signed=Signed("RequestUpdateModel", _refuse_update, failed=errors.UPDATE_SIGN_FAILED,
                              stale=errors.UPDATE_SIGN_STALE)),
    DeviceRound("getModel", rounds.get_model, "RequestGetModel", _bad_get_model, total="get_total",
                read_only=True),
    DeviceRound("pullWeight", hybrid_rounds.pull_weight, "RequestPullWeight", _bad_pull),
    DeviceRound("pushWeight", hybrid_rounds.push_weight, "RequestPushWeight", _bad_push, upload=True),
    DeviceRound("pushMetrics", hybrid_rounds.push_metrics, "RequestPushMetrics", _bad_metrics),
    # secure aggregation (spec §5.1): routed only when the cluster's encrypt type runs them
    DeviceRound("exchangeKeys", key_rounds.exchange_keys, "RequestExchangeKeys", key_rounds.bad_exchange_keys,
                _cipher_window("exchangeKeys"), signed=_cipher_signed("exchangeKeys")),
    DeviceRound("getKeys", key_rounds.get_keys, "GetExchangeKeys", key_rounds.bad_get_keys,
                _cipher_window("getKeys"), signed=_cipher_signed("getKeys")),
    DeviceRound("shareSecrets", secret_rounds.share_secrets, "RequestShareSecrets", secret_rounds.bad_share_secrets,
                _cipher_window("shareSecrets"), signed=_cipher_signed("shareSecrets")),
    DeviceRound("getSecrets", secret_rounds.get_secrets, "GetShareSecrets", secret_rounds.bad_get_secrets,
                _cipher_window("getSecrets"), signed=_cipher_signed("getSecrets")),
    DeviceRound("getClientList", list_rounds.client_list, "GetClientList", list_rounds.bad_client_list,
                _cipher_window("getClientList"), signed=_cipher_signed("getClientList")),
    DeviceRound("reconstructSecrets", list_rounds.reconstruct_secrets, "SendReconstructSecret",
                list_rounds.bad_reconstruct, _cipher_window("reconstructSecrets"),
                signed=_cipher_signed("reconstructSecrets")),
    DeviceRound("pushListSign", list_rounds.push_list_sign, "SendClientListSign", list_rounds.bad_push_list_sign,
                _cipher_window("pushListSign"), signed=_cipher_signed("pushListSign")),
    DeviceRound("getListSign", list_rounds.get_list_sign, "RequestAllClientListSign",
                list_rounds.bad_get_list_sign, _cipher_window("getListSign"),
                signed=_cipher_signed("getListSign")),
)
BY_NAME = {r.name: r for r in ROUNDS}
WINDOWS = tuple(r.window for r in ROUNDS if r.window is not None)
UPLOAD_ROUNDS = frozenset(r.name for r in ROUNDS if r.upload)
