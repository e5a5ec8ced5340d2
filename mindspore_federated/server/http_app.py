"""aiohttp app of the device API: body limits, availability gate, C++ verification, then the round."""
import json

from aiohttp import web
from redis.exceptions import RedisError

from mindspore_federated import _core, errors
from mindspore_federated.log import get_logger
from mindspore_federated.server import replies
from mindspore_federated.server.replies import REQUEST_ERROR
from mindspore_federated.server.rounds import Rounds, Unavailable

logger = get_logger(__name__)

# round name -> (request table, Rounds method, is coroutine, reply for a body that fails verification);
# table None: the round verifies the body itself (one C++ pass) and returns None when it is invalid.
ROUNDS = {
    "startFLJob": ("RequestFLJob", "start_fl_job", True,
                   lambda n: replies.fl_job(REQUEST_ERROR, errors.FLJOB_SCHEMA, n.iteration, n.next_req_time())),
    "updateModel": (None, "update_model", True,
                    lambda n: replies.update_model(REQUEST_ERROR, errors.UPDATE_SCHEMA, n.next_req_time())),
    "getModel": ("RequestGetModel", "get_model", False,
                 lambda n: replies.get_model(REQUEST_ERROR, errors.GETMODEL_SCHEMA, n.iteration)),
    "pullWeight": ("RequestPullWeight", "pull_weight", False,
                   lambda n: replies.pull_weight(REQUEST_ERROR, "The schema of RequestPullWeight is invalid.",
                                                 n.iteration)),
    "pushWeight": ("RequestPushWeight", "push_weight", True,
                   lambda n: replies.push_weight(REQUEST_ERROR, "The schema of RequestPushWeight is invalid.",
                                                 n.iteration)),
    "pushMetrics": ("RequestPushMetrics", "push_metrics", True, lambda n: replies.push_metrics(REQUEST_ERROR)),
}


def _error_json(status=500):
    return web.Response(status=status, content_type="application/json",
                        text=json.dumps({"error_message": errors.POST_MESSAGE_FAILED, "code": "1"}))


UPLOAD_ROUNDS = ("updateModel", "pushWeight")
STREAM_CHUNK = 256 * 1024


def _make_handler(node, rounds, name, upload_slots):
    table, method_name, is_async, bad_reply = ROUNDS[name]
    method = getattr(rounds, method_name)

    async def handler(request):
        if upload_slots is None:
            return await serve(request)
        async with upload_slots:  # bounds the model-sized bodies held in memory at once
            return await serve(request)

    async def serve(request):
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _error_json()
        if not body:
            return _error_json()
        node.hooks.record_traffic(len(body), 0)
        blocked = node.gate(name)
        if blocked is not None:
            return web.Response(body=blocked.encode())
        if table is not None and not _core.verify(table, body):
            return web.Response(body=bad_reply(node))
        node.inflight += 1
        try:
            reply = (await method(body)) if is_async else method(body)
            if reply is None:
                reply = bad_reply(node)
        except Unavailable as exc:
            reply = str(exc).encode()
        except RedisError as exc:
            logger.warning("%s: distributed cache error: %s", name, exc)
            node.cache_ok = False
            node.request_sync()
            reply = errors.JOB_DISABLED.encode()
        except Exception:  # noqa: BLE001 - any bug must become an error reply, not a dropped connection
            logger.exception("%s failed", name)
            reply = errors.INNER_ERROR.encode()
        finally:
            node.inflight -= 1
        node.hooks.record_traffic(0, len(reply))
        if len(reply) <= STREAM_CHUNK:
            return web.Response(body=reply)
        return await _stream(request, reply)

    return handler


async def _stream(request, reply):
    """Sends a large (model) reply in chunks, waiting for the transport to drain between them, so a slow
    connection holds at most one chunk instead of a copy of the model."""
    resp = web.StreamResponse()
    resp.content_length = len(reply)
    resp.content_type = "application/octet-stream"
    await resp.prepare(request)
    view = memoryview(reply)
    for start in range(0, len(reply), STREAM_CHUNK):
        await resp.write(view[start:start + STREAM_CHUNK])
    await resp.write_eof()
    return resp


def build_app(node, url_prefix, max_body, max_uploads=8):
    """The device-facing application: one route per round (any method), plus /healthz."""
    import asyncio

    app = web.Application(client_max_size=max_body)
    rounds = Rounds(node)
    prefix = url_prefix if url_prefix else "/"
    upload_slots = asyncio.Semaphore(max_uploads)
    for name in ROUNDS:
        slots = upload_slots if name in UPLOAD_ROUNDS else None
        app.router.add_route("*", prefix + name, _make_handler(node, rounds, name, slots))

    async def healthz(_request):
        return web.json_response({"node_id": node.node_id, "iteration": node.iteration,
                                  "instance": node.inst, "cache_ok": node.cache_ok,
                                  "running_state": node.running_state})

    app.router.add_get("/healthz", healthz)
    return app
