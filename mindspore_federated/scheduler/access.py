"""Management-plane access: the optional bearer token (config manage.token or the environment's
MSF_MANAGE_TOKEN, compared in constant time), the log line of every mutating call with its caller, and the
per-path latency and call metrics."""
import hmac
import json
import os
import time

from aiohttp import web

from mindspore_federated import log
from mindspore_federated.errors import SCHED_UNAUTHORIZED
from mindspore_federated.metrics import scheduler as metrics

LOG = log.get_logger("mindspore_federated.scheduler")
TOKEN_ENV = "MSF_MANAGE_TOKEN"
MUTATING = frozenset(("/enableFLS", "/disableFLS", "/newInstance", "/scaleout", "/scalein"))
PUBLIC_PREFIX = "/dashboard/static/"   # the dashboard's own code (HTML/JS/CSS): no cluster data in it
PUBLIC = frozenset(("/dashboard", "/dashboard/", "/dashboard/api/access"))
UNAUTHORIZED_BODY = json.dumps({"error_message": SCHED_UNAUTHORIZED, "code": "1"}, sort_keys=True).encode()


def manage_token(config) -> str:
    """The token the management plane requires ('' for none): the environment wins over the config."""
    env = os.environ.get(TOKEN_ENV)
    if env:
        return env
    try:
        value = config["manage.token"]
    except (KeyError, LookupError, AttributeError, TypeError):
        return ""
    return value or ""


def authorized(request, token: bytes) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token)


def caller(request) -> str:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return f"{peer[0]}:{peer[1]}" if peer else (request.remote or "?")


def access_middleware(token: str, known_paths):
    """The middleware: 401 without the token (when one is set), timing per known path, mutating calls logged."""
    secret = token.encode()

    @web.middleware
    async def middleware(request, handler):
        path = request.path
        started = time.perf_counter()
        if secret and path not in PUBLIC and not path.startswith(PUBLIC_PREFIX) and not authorized(request, secret):
            metrics.UNAUTHORIZED.inc()
            LOG.warning("refused %s %s from %s: no valid bearer token", request.method, path, caller(request))
            return web.Response(status=401, body=UNAUTHORIZED_BODY, headers={
                "Content-Type": "application/json", "WWW-Authenticate": 'Bearer realm="mindspore_federated"'})
        response = await handler(request)
        if path in known_paths:
            metrics.REST_SECONDS.labels(path).observe(time.perf_counter() - started)
        if path in MUTATING:
            metrics.MANAGE_CALLS.labels(path, str(response.status)).inc()
            LOG.info("management call %s %s from %s: HTTP %d %s", request.method, path, caller(request),
                     response.status, _outcome(response))
        return response

    return middleware


def _outcome(response) -> str:
    try:
        body = json.loads(response.body)
    except (TypeError, ValueError, AttributeError):
        return ""
    return body.get("message") or body.get("error_message") or ""
