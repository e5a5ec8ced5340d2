"""Async simulated device: an FL iteration is startFLJob -> train -> updateModel -> getModel, with retries."""
import asyncio
import contextlib
import inspect
import random
import time
import uuid
from dataclasses import dataclass, field

import aiohttp
import numpy as np

from mindspore_federated.client import messages as msg
from mindspore_federated.client import secure
from mindspore_federated.client.messages import PlainTextReply, ResponseCode
from mindspore_federated.client.privacy import DevicePrivacy
from mindspore_federated.compression import diff_sparse_quant_encode
from mindspore_federated.errors import FederatedError

_HEADERS = {"Content-Type": "application/octet-stream"}
# Rounds a transport failure may repeat as is: they change no server state, or (the cipher rounds) the server
# answers a repeated request of a device that already did the round with SUCCEED.
_IDEMPOTENT = frozenset({"getModel", "pullWeight", *msg.CIPHER_ROUNDS})


# ---------------------------------------------------------------------------------------------
# Errors: all are RuntimeErrors constructible from one message (they survive pickling).
# ---------------------------------------------------------------------------------------------

class DeviceError(FederatedError):
    """Base of device failures; `outcome` holds the partial IterationOutcome when raised by run_iteration."""

    def __init__(self, message, *, round_name=None, retcode=None, reason=None):
        super().__init__(message)
        self.round_name = round_name
        self.retcode = retcode
        self.reason = reason
        self.outcome = None


class RequestFailed(DeviceError):
    """The server answered RequestError, SystemError or an unknown retcode: the client fails."""


class UnexpectedReply(DeviceError):
    """A plain-text or unverifiable reply other than the safemode/finished texts."""


class HttpStatusError(DeviceError):
    """The server answered with an HTTP status other than 200."""


class TransportError(DeviceError):
    """Connecting, sending or receiving failed (or timed out); `retryable` when nothing reached the server."""

    retryable = False
    server = None


class DeadlineExceeded(DeviceError):
    """A retry loop or the whole iteration ran out of time."""


class _Restart(Exception):
    """Internal: abandon the iteration and start again at startFLJob after `next_req_time` (epoch ms)."""

    def __init__(self, next_req_time=0, why=""):
        super().__init__(next_req_time, why)
        self.next_req_time = next_req_time
        self.why = why


class _Finished(Exception):
    """Internal: the server's training job is disabled or finished."""


# ---------------------------------------------------------------------------------------------
# Configuration and results
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RetryPolicy:
    """Every wait of a Device is bounded by one of these (seconds).

    http_timeout: one HTTP exchange (connect + send + read).
    retry_delay / retry_backoff / max_retry_delay / retry_jitter: the pause before repeating a request after
      SucNotReady, the safemode text or a connection failure: retry_delay * retry_backoff**n capped at
      max_retry_delay, then spread uniformly by +-retry_jitter (a fraction) so that thousands of devices
      desynchronise.
    step_timeout: how long one request may keep being repeated (e.g. getModel polling) before
      DeadlineExceeded.
    max_restart_wait: cap on the sleep until `next_req_time` after OutOfTime.
    max_restarts: how many times one run_iteration may go back to startFLJob.
    iteration_timeout: the whole run_iteration, restarts included.
    """

    http_timeout: float = 30.0
    retry_delay: float = 0.5
    retry_backoff: float = 1.0
    max_retry_delay: float = 5.0
    retry_jitter: float = 0.2
    step_timeout: float = 120.0
    max_restart_wait: float = 60.0
    max_restarts: int = 20
    iteration_timeout: float = 600.0

    def delay(self, attempt, rng):
        """The pause before retry number `attempt` (0-based)."""
        base = min(self.retry_delay * self.retry_backoff ** attempt, self.max_retry_delay)
        return max(0.0, base * (1.0 + self.retry_jitter * (2.0 * rng.random() - 1.0)))


@dataclass
class RequestRecord:
    """One HTTP exchange; status is the retcode or 'safemode'/'finished'/'text'/'transport'."""

    round_name: str
    server: str
    status: object
    seconds: float


@dataclass
class IterationOutcome:
    """What one run_iteration did. `model` may hold read-only views of a reply body; copy before mutating."""

    fl_id: str
    iteration: int = 0
    accepted: bool = False
    finished: bool = False
    model: dict = None
    model_iteration: int = 0
    fl_plan: msg.FLPlanInfo = None
    restarts: int = 0
    requests: list = field(default_factory=list)
    wall_seconds: float = 0.0
    dropped: str = None       # the phase after which the device dropped out (Device.drop_at)

    @property
    def retcodes(self):
        """(round, status) of every exchange, in order."""
        return [(r.round_name, r.status) for r in self.requests]

    def latencies(self, round_name):
        """Seconds of every exchange of one round."""
        return [r.seconds for r in self.requests if r.round_name == round_name]


def _status_of(reply):
    if isinstance(reply, PlainTextReply):
        return "safemode" if reply.is_safemode else "finished" if reply.is_finished else "text"
    return reply.retcode


def _normalise_servers(servers):
    if isinstance(servers, str):
        servers = [s for s in servers.split(",") if s.strip()]
    servers = [s.strip().rstrip("/") for s in servers]
    if not servers:
        raise ValueError("Device needs at least one server URL")
    return servers


def _round_path(url_prefix, round_name):
    path = (url_prefix or "/") + round_name
    return path if path.startswith("/") else "/" + path


def _split_train_result(result):
    """(weights, loss, accuracy) from a train_fn result: a 3-tuple or a bare mapping of weights."""
    if isinstance(result, dict):
        return result, 0.0, 0.0
    weights, loss, accuracy = result
    return weights, float(loss), float(accuracy)


class Device:
    """A simulated FL device speaking the device HTTP protocol to a set of servers.

    servers: base URLs ("http://127.0.0.1:6666"; a list or a comma-separated string). A random one is picked
      for every request, like the Java SDK's useElb.
    url_prefix: the servers' http_url_prefix, concatenated as is ("" -> "/<round>").
    session: an aiohttp.ClientSession to share among many devices (not closed by the device); when None the
      device opens its own and close() / `async with` closes it.
    limiter: an optional asyncio.Semaphore shared by many devices. It is held from startFLJob until
      updateModel has been answered (so at most `limiter` devices hold a model copy) and around each getModel
      request; never while sleeping until next_req_time or between getModel polls.
    upload_weighted: True (default) uploads `w * data_size` (FedAvg contract, spec §4.1) for the weights `w`
      train_fn returns; False uploads train_fn's arrays verbatim.
    Privacy follows the plan: PW_ENCRYPT / STABLE_PW_ENCRYPT mask the upload (client/secure.py), SIGNDS
      uploads a sign and index list; DP_ENCRYPT noise is added when dp_noise=True. drop_at (a
      client.secure.PHASES name) makes the device stop after that phase (outcome.dropped).
    ssl_context: for https:// servers, the ssl.SSLContext that verifies them (see https_context(ca_file));
      None: aiohttp's default (the system's CAs).
    upload_compress: True encodes uploads as DIFF_SPARSE_QUANT when startFLJob advertises it (as the Java
      client does); False (default) always uploads plain feature maps, which servers accept either way.
    identity: a client.identity.DeviceIdentity for servers with client_verify.pki_verify: startFLJob carries
      its certificates and signature, updateModel and the cipher rounds their signatures (PW_ENCRYPT adds
      pushListSign / getListSign), and fl_id defaults to the identity's.
    """

    def __init__(self, servers, fl_name, *, fl_id=None, data_size=1, eval_data_size=0, url_prefix="",
                 session=None, limiter=None, policy=None, upload_weighted=True, download_compress_types=(),
                 file_identifier=False, rng=None, drop_at=None, dp_noise=False, ssl_context=None,
                 upload_compress=False, identity=None):
        self.servers = _normalise_servers(servers)
        self.fl_name = fl_name
        self.identity = identity
        self.fl_id = fl_id or (identity.fl_id if identity is not None else f"device-{uuid.uuid4().hex}")
        self.data_size = int(data_size)
        self.eval_data_size = int(eval_data_size)
        self.url_prefix = url_prefix
        self.policy = policy or RetryPolicy()
        self.upload_weighted = upload_weighted
        self.upload_compress = upload_compress
        self.download_compress_types = tuple(download_compress_types)
        self.file_identifier = file_identifier
        self.iteration = 0
        self.drop_at = drop_at    # a secure.PHASES name: stop after that phase (simulated dropout)
        self.dp_noise = dp_noise  # add the DP_ENCRYPT plan's Gaussian noise to the update (client-side DP)
        self._session = session
        self._own_session = session is None
        self._limiter = limiter
        self._rng = rng or random.Random()
        self._timeout = aiohttp.ClientTimeout(total=self.policy.http_timeout)
        self._tls = {} if ssl_context is None else {"ssl": ssl_context}

    # -- lifetime --------------------------------------------------------------------------------

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def close(self):
        """Close the session if this device opened it."""
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self):
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    # -- one request -------------------------------------------------------------------------------

    def url(self, round_name, server=None):
        """Full URL of a round on `server` (default: the first server)."""
        return (server or self.servers[0]) + _round_path(self.url_prefix, round_name)

    def _pick_server(self, avoid=()):
        candidates = [s for s in self.servers if s not in avoid] or self.servers
        return candidates[0] if len(candidates) == 1 else self._rng.choice(candidates)

    async def request(self, round_name, body, *, server=None, records=None):
        """POST one body: the parsed reply or a PlainTextReply. Raises TransportError, HttpStatusError."""
        server = server or self._pick_server()
        started = time.perf_counter()
        status = "transport"
        try:
            reply, status = await self._exchange(round_name, body, server)
            return reply
        finally:
            if records is not None:
                records.append(RequestRecord(round_name, server, status, time.perf_counter() - started))

    async def _exchange(self, round_name, body, server):
        try:
            async with self._get_session().post(self.url(round_name, server), data=body, headers=_HEADERS,
                                                timeout=self._timeout, **self._tls) as resp:
                payload = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, OSError) as exc:  # OSError covers TimeoutError
            raise _transport_error(round_name, server, exc) from exc
        if status != 200:
            raise HttpStatusError(f"{round_name} to {server}: HTTP {status}: {payload[:200]!r}",
                                  round_name=round_name, retcode=status)
        reply = msg.PARSERS[round_name](payload)
        return reply, _status_of(reply)

    # -- retry loop of one step --------------------------------------------------------------------

    async def _call(self, round_name, body, outcome, deadline, limited=False):
        """Repeat one request until it yields a usable reply; see spec §3.5 for the classification."""
        step_deadline = min(deadline, _now() + self.policy.step_timeout)
        avoid, attempt = set(), 0
        while True:
            try:
                reply = await self._limited_request(round_name, body, outcome, avoid, limited)
            except TransportError as exc:
                if not (exc.retryable or round_name in _IDEMPOTENT):
                    raise _Restart(0, str(exc)) from exc
                avoid.add(exc.server)
                await self._pause(attempt, step_deadline, round_name, f"transport failure: {exc}")
            else:
                if self._classify(round_name, reply):
                    return reply
                await self._pause(attempt, step_deadline, round_name, f"last status {_status_of(reply)}")
            attempt += 1

    async def _limited_request(self, round_name, body, outcome, avoid, limited):
        server = self._pick_server(avoid)
        if not limited or self._limiter is None:
            return await self.request(round_name, body, server=server, records=outcome.requests)
        async with self._limiter:
            return await self.request(round_name, body, server=server, records=outcome.requests)

    @staticmethod
    def _classify(round_name, reply):
        """True to accept the reply, False to repeat the request; raises to restart, stop or fail."""
        if isinstance(reply, PlainTextReply):
            if reply.is_safemode:
                return False
            if reply.is_finished:
                raise _Finished()
            raise UnexpectedReply(f"{round_name}: unexpected reply {reply.text!r}", round_name=round_name,
                                  reason=reply.text)
        code = reply.retcode
        if code == ResponseCode.SUCCEED:
            if round_name == "startFLJob" and not reply.is_selected:
                raise _Restart(reply.next_req_time, "startFLJob: device not selected")
            return True
        if code == ResponseCode.SucNotReady:
            return False
        if code == ResponseCode.OutOfTime:
            raise _Restart(getattr(reply, "next_req_time", 0), f"{round_name}: OutOfTime: {reply.reason}")
        raise RequestFailed(f"{round_name} failed: retcode {code}, reason: {reply.reason}",
                            round_name=round_name, retcode=code, reason=reply.reason)

    async def _pause(self, attempt, step_deadline, round_name, why):
        delay = self.policy.delay(attempt, self._rng)
        if _now() + delay > step_deadline:
            raise DeadlineExceeded(f"{round_name}: gave up retrying ({why})", round_name=round_name)
        await asyncio.sleep(delay)

    async def _sleep_until(self, restart, deadline, restarts):
        if restarts > self.policy.max_restarts:
            raise DeadlineExceeded(f"gave up after {restarts - 1} restarts; last: {restart.why}",
                                   round_name="startFLJob")
        wait = restart.next_req_time / 1000.0 - time.time() if restart.next_req_time else 0.0
        wait = min(max(wait, self.policy.delay(0, self._rng)), self.policy.max_restart_wait)
        if _now() + wait > deadline:
            raise DeadlineExceeded(f"iteration deadline reached before restarting; last: {restart.why}",
                                   round_name="startFLJob")
        await asyncio.sleep(wait)

    # -- the iteration -----------------------------------------------------------------------------

    async def run_iteration(self, train_fn, *, fetch_model=True):
        """startFLJob -> train_fn -> updateModel -> getModel (polled until SUCCEED), with spec §3.5 retries.

        Replies: SucNotReady and the safemode text repeat the request after RetryPolicy.delay; OutOfTime (or a
        startFLJob that is not selected, or a lost connection during startFLJob/updateModel) abandons the
        iteration and restarts at startFLJob after next_req_time (capped by max_restart_wait); the "disabled
        or finished" text ends it with outcome.finished; anything else fails. The whole call is bounded by
        RetryPolicy.iteration_timeout.

        train_fn(features, fl_plan) -> (weights, loss, accuracy), or just `weights`; may be async.
          features: dict name -> float32 ndarray, the model of the previous iteration (read-only views: copy
            before mutating). fl_plan: FLPlanInfo.
          weights: dict name -> float32 array, the locally TRAINED weights w (not multiplied by data_size).
            The SDK uploads w * data_size (FedAvg contract) unless upload_weighted=False, then w as is.
        Returns an IterationOutcome (`finished` when the server said the job is disabled or finished). Raises
        DeviceError subclasses with `.outcome` attached: RequestFailed (RequestError/SystemError),
        UnexpectedReply, HttpStatusError, DeadlineExceeded.
        """
        outcome = IterationOutcome(self.fl_id)
        started = time.perf_counter()
        hard_limit = asyncio.timeout(self.policy.iteration_timeout)
        try:
            async with hard_limit:
                await self._iterate(train_fn, outcome, _now() + self.policy.iteration_timeout, fetch_model)
        except TimeoutError as exc:
            if not hard_limit.expired():
                raise
            raise _with_outcome(DeadlineExceeded(
                f"iteration not done within {self.policy.iteration_timeout} s"), outcome) from exc
        except DeviceError as exc:
            exc.outcome = outcome
            raise
        except _Finished:
            outcome.finished = True
        except secure.Dropped as exc:
            outcome.dropped = exc.phase
        finally:
            outcome.wall_seconds = time.perf_counter() - started
        return outcome

    async def _iterate(self, train_fn, outcome, deadline, fetch_model):
        while True:
            try:
                async with self._work_slot():
                    await self._start_and_update(train_fn, outcome, deadline)
                if fetch_model:
                    await self._fetch_model(outcome, deadline)
                return
            except _Restart as restart:
                outcome.restarts += 1
                outcome.accepted = False
                await self._sleep_until(restart, deadline, outcome.restarts)

    def _work_slot(self):
        return self._limiter if self._limiter is not None else contextlib.nullcontext()

    async def _start_and_update(self, train_fn, outcome, deadline):
        start = await self._start_fl_job(outcome, deadline)
        base = start.model()
        privacy = DevicePrivacy(self, start, lambda name, body: self._call(name, body, outcome, deadline))
        await privacy.before_training()
        result = await _maybe_await(train_fn(base, start.fl_plan))
        weights, loss, accuracy = _split_train_result(result)
        compress = self.upload_compress and start.upload_compress_type == msg.CompressType.DIFF_SPARSE_QUANT
        rate = start.upload_sparse_rate
        del start
        body = self._update_body(weights, loss, accuracy, privacy, (base, rate) if compress else None)
        del weights, base
        await self._call("updateModel", body, outcome, deadline)
        outcome.accepted = True
        try:
            await privacy.after_upload()
        except _Restart:  # the iteration ended without this device's shares (others sent enough): it counted
            pass

    async def _start_fl_job(self, outcome, deadline):
        """startFLJob with retries; records the iteration and plan in `outcome`."""
        proof = self.identity.start_fields(self.fl_id) if self.identity is not None else {}
        body = msg.build_start_fl_job(self.fl_name, self.fl_id, self.iteration, self.data_size,
                                      eval_data_size=self.eval_data_size,
                                      download_compress_types=self.download_compress_types,
                                      file_identifier=self.file_identifier, **proof)
        reply = await self._call("startFLJob", body, outcome, deadline)
        outcome.iteration = self.iteration = reply.iteration
        outcome.fl_plan = reply.fl_plan
        return reply

    def _update_body(self, weights, loss, accuracy, privacy, compress=None):
        """The updateModel body; `privacy` (client/privacy.py) encodes and masks it; `compress` = (model
        received, upload_sparse_rate) for DIFF_SPARSE_QUANT (never under PW/SIGNDS: the servers advertise none)."""
        weights, extra = privacy.encode(weights)
        if self.upload_weighted and not extra:
            scale = np.float32(self.data_size)
            weights = {name: msg.as_float32_vector(w) * scale for name, w in weights.items()}
        weights = privacy.mask(weights)
        signed = self.identity.round_fields(self.iteration) if self.identity is not None else {}
        if compress is None:
            return msg.build_update_model(self.fl_name, self.fl_id, self.iteration, weights, upload_loss=loss,
                                          upload_accuracy=accuracy, file_identifier=self.file_identifier,
                                          **extra, **signed)
        base, rate = compress
        names, coded = diff_sparse_quant_encode(weights, base, self.data_size, self.iteration, rate)
        return msg.build_update_model(
            self.fl_name, self.fl_id, self.iteration, {}, upload_loss=loss, upload_accuracy=accuracy,
            compressed_features=coded, upload_compress_type=msg.CompressType.DIFF_SPARSE_QUANT,
            upload_sparse_rate=rate, name_vec=names, file_identifier=self.file_identifier, **signed)

    async def _fetch_model(self, outcome, deadline):
        body = msg.build_get_model(self.fl_name, outcome.iteration,
                                   download_compress_types=self.download_compress_types,
                                   file_identifier=self.file_identifier)
        reply = await self._call("getModel", body, outcome, deadline, limited=True)
        outcome.model = reply.model()
        outcome.model_iteration = self.iteration = reply.iteration

    async def run(self, iterations, train_fn, *, fetch_model=True):
        """Up to `iterations` run_iteration calls, fewer if the job finishes; returns the outcomes."""
        outcomes = []
        for _ in range(int(iterations)):
            outcome = await self.run_iteration(train_fn, fetch_model=fetch_model)
            outcomes.append(outcome)
            if outcome.finished:
                break
        return outcomes


def https_context(ca_file, crl_file=None):
    """The TLS context of a device: TLS >= 1.2, the server's certificate verified against `ca_file` (and
    not revoked by `crl_file`), its name (or IP address) checked against the URL's host."""
    from mindspore_federated.tls import client_context

    return client_context(None, ca_path=ca_file, crl_path=crl_file, check_hostname=True)


def _now():
    return asyncio.get_running_loop().time()


async def _maybe_await(value):
    return await value if inspect.isawaitable(value) else value


def _with_outcome(exc, outcome):
    exc.outcome = outcome
    return exc


def _transport_error(round_name, server, exc):
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    err = TransportError(f"{round_name} to {server}: {detail}", round_name=round_name)
    err.server = server
    err.retryable = (isinstance(exc, aiohttp.ClientConnectorError)
                     and not isinstance(exc, aiohttp.ClientSSLError))
    return err
