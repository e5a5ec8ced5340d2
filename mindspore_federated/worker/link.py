"""The worker's HTTP link to the servers: the first live one, failover to the next, safe-mode retries.

Bodies and replies are the device wire format (client/messages). `ssl_context` (None: plain HTTP) makes the
links HTTPS (tls.worker_client_context)."""
import http.client
import time

from mindspore_federated import errors
from mindspore_federated.client.messages import PARSERS
from mindspore_federated.client.messages.replies import PlainTextReply
from mindspore_federated.clock import monotonic
from mindspore_federated.log import get_logger

logger = get_logger(__name__)
REQUEST_TIMEOUT_S = 30.0     # the reference waits 30 s for a server's reply
SAFEMODE_RETRY_S = 0.5       # the reference retries safe-mode / disabled replies every 500 ms
NO_SERVER_RETRY_S = 1.0
DEFAULT_DEADLINE_S = 3600.0


class JobFinished(RuntimeError):
    """The cluster's job is disabled or finished (the plain-text reply persisted)."""


class ServerLink:
    """Posts one round's body to a live server and returns the parsed reply.

    `servers` is a callable returning the device API addresses of the live servers (the worker's node), or a
    fixed list (the cloud worker talks to its configured `http_server_address`)."""

    def __init__(self, servers, *, ssl_context=None, timeout=REQUEST_TIMEOUT_S, url_prefix="", finished=None):
        self._servers = servers if callable(servers) else (lambda: list(servers))
        self._finished = finished  # () -> True when the cluster's job is finished (not merely disabled)
        self.ssl_context = ssl_context
        self.timeout = float(timeout)
        self.url_prefix = url_prefix.rstrip("/")
        self.current = None        # the server the last reply came from
        self.on_retry = None       # (round_name, why) -> None, called before every retry (tests, logs)

    def _candidates(self):
        live = list(self._servers())
        if self.current in live:   # stay on the server that answered last while it is alive
            live.remove(self.current)
            live.insert(0, self.current)
        return live

    def _post(self, address, round_name, body):
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        if self.ssl_context is not None:
            conn = http.client.HTTPSConnection(host, int(port), timeout=self.timeout, context=self.ssl_context)
        else:
            conn = http.client.HTTPConnection(host, int(port), timeout=self.timeout)
        try:
            conn.request("POST", f"{self.url_prefix}/{round_name}", body=body,
                         headers={"Content-Type": "application/octet-stream"})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def request(self, round_name, body, *, deadline_s=DEFAULT_DEADLINE_S):
        """The parsed reply of the first live server that answers with a flatbuffer. Safe-mode and disabled
        replies are retried every 500 ms (JobFinished once `finished()` says the job is over); a server that
        cannot be reached is left for the next one. Raises ConnectionError when no server answered before
        the deadline."""
        parse = PARSERS[round_name]
        deadline = monotonic() + deadline_s
        why = "no live server is registered"
        last_why = None
        while True:
            for address in self._candidates():
                try:
                    status, raw = self._post(address, round_name, body)
                except (OSError, http.client.HTTPException) as exc:
                    why = f"{address}: {exc}"
                    logger.info("%s to %s failed (%s): trying the next server", round_name, address, exc)
                    continue
                reply = parse(raw)
                self.current = address
                if not isinstance(reply, PlainTextReply):
                    return reply
                why = f"{address}: {reply.text}"
                if reply.is_finished and self._finished is not None and self._finished():
                    raise JobFinished(errors.WORKER_FINISHED.format(round=round_name))
                if not (reply.is_finished or reply.is_safemode):
                    raise RuntimeError(errors.WORKER_REPLY.format(round=round_name, reason=reply.text))
                break  # safe mode / disabled: the cluster is switching, retry shortly
            if monotonic() >= deadline:
                raise ConnectionError(errors.WORKER_NO_SERVER.format(round=round_name, seconds=deadline_s,
                                                                     why=why))
            if why != last_why:   # logged once per reason, not every 500 ms
                logger.info("%s: %s: retrying", round_name, why)
                last_why = why
            if self.on_retry is not None:
                self.on_retry(round_name, why)
            pause = SAFEMODE_RETRY_S if why.endswith((errors.SAFEMODE, errors.JOB_DISABLED)) else NO_SERVER_RETRY_S
            time.sleep(pause)
