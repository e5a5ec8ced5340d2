"""The scheduler's aiohttp app: JSON envelope, error middleware and the route table of handler functions."""
import json

from aiohttp import web
from redis.exceptions import RedisError

from mindspore_federated import log
from mindspore_federated.errors import SCHED_CACHE, SCHED_STATE_INNER
from mindspore_federated.metrics.registry import CONTENT_TYPE, metrics_path, render
from mindspore_federated.scheduler import handlers
from mindspore_federated.scheduler.access import access_middleware
from mindspore_federated.scheduler.dashboard import OVERVIEW_PATH, add_dashboard_routes
from mindspore_federated.scheduler.validation import ApiError, parse_json_object, read_body

LOG = log.get_logger("mindspore_federated.scheduler")
SCHEDULER = web.AppKey("scheduler", object)  # the Scheduler: .context (state, node id) and .max_body


def _json_response(status, body) -> web.Response:
    return web.Response(status=status, body=json.dumps(body, sort_keys=True).encode(),
                        headers={"Content-Type": "application/json"})


def ok(body: dict) -> web.Response:
    """HTTP 200, application/json, `"code": "0"`."""
    return _json_response(200, {**body, "code": "0"})


def fail(text: str) -> web.Response:
    """HTTP 400 `{"error_message": text, "code": "1"}`."""
    return _json_response(400, {"error_message": text, "code": "1"})


@web.middleware
async def error_middleware(request, handler):
    """Maps ApiError to its text, cache failures to the cache text, anything else to the inner-error text."""
    try:
        return await handler(request)
    except ApiError as exc:
        return fail(exc.text)
    except web.HTTPException:
        raise
    except (TimeoutError, RedisError, OSError) as exc:
        LOG.warning("Redis access failed for %s: %r", request.path, exc)
        return fail(SCHED_CACHE)
    except Exception:
        LOG.exception("request %s failed", request.path)
        return fail(SCHED_STATE_INNER)


async def _body(request) -> dict:
    return parse_json_object(await read_body(request, request.app[SCHEDULER].max_body))


def _ctx(request):
    return request.app[SCHEDULER].context


async def handle_state(request):
    return ok(await handlers.cluster_state(_ctx(request)))


async def handle_enable(request):
    return ok(await handlers.set_enabled(_ctx(request), True))


async def handle_disable(request):
    return ok(await handlers.set_enabled(_ctx(request), False))


async def handle_new_instance(request):
    body = await _body(request)
    return ok(await handlers.new_instance(_ctx(request), body))


async def handle_query_instance(request):
    return ok(await handlers.query_instance(_ctx(request)))


async def handle_nodes(request):
    return ok(await handlers.nodes(_ctx(request)))


async def handle_scale_out(request):
    body = await _body(request)
    return ok(await handlers.scale_out(_ctx(request), body))


async def handle_scale_in(request):
    body = await _body(request)
    return ok(await handlers.scale_in(_ctx(request), body))


async def handle_metrics(_request):
    return web.Response(body=render(), headers={"Content-Type": CONTENT_TYPE})


async def handle_overview(request):
    """The dashboard's data: the watch's latest view of the cluster and its timeline of iterations."""
    watch = request.app[SCHEDULER].watch
    return ok(watch.overview() if watch is not None else {"cluster": {}, "iterations": []})


ROUTES = {"/state": handle_state, "/enableFLS": handle_enable, "/disableFLS": handle_disable,
          "/newInstance": handle_new_instance, "/queryInstance": handle_query_instance,
          "/nodes": handle_nodes, "/scaleout": handle_scale_out, "/scalein": handle_scale_in}


async def handle_healthz(request):
    """Liveness/readiness: the REST app serves (no Redis round trip)."""
    return web.json_response({"status": "ok", "node_id": request.app[SCHEDULER].node_id})


def build_app(scheduler) -> web.Application:
    """The aiohttp app over `scheduler`: every route for GET and POST (the method is not checked), behind the
    management token when one is set; plus /metrics (metrics.path) and the dashboard (issue 17)."""
    token = getattr(scheduler, "token", "")
    app = web.Application(middlewares=[access_middleware(token, set(ROUTES) | {OVERVIEW_PATH}), error_middleware])
    app[SCHEDULER] = scheduler
    for path, handler in ROUTES.items():
        app.router.add_route("GET", path, handler)
        app.router.add_route("POST", path, handler)
    app.router.add_get(OVERVIEW_PATH, handle_overview)
    add_dashboard_routes(app, bool(token))
    path = metrics_path(scheduler.config)
    if path:
        app.router.add_get(path, handle_metrics)
    app.router.add_get("/healthz", handle_healthz)
    return app
