"""The scheduler's web dashboard: static HTML/JS/CSS shipped in the package (no build step, no CDN)."""
from importlib import resources

from aiohttp import web

OVERVIEW_PATH = "/dashboard/api/overview"
ACCESS_PATH = "/dashboard/api/access"    # public: whether the data needs a token (the page asks first)
ASSETS = {"app.js": "text/javascript", "style.css": "text/css"}


def _asset(name) -> bytes:
    return resources.files(__package__).joinpath(name).read_bytes()


def add_dashboard_routes(app, token_required):
    """GET /dashboard (the page), /dashboard/static/<asset> and /dashboard/api/access; the data comes from the
    API, token-checked."""
    async def page(_request):
        return web.Response(body=_asset("index.html"), content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-cache"})

    async def asset(request):
        name = request.match_info["name"]
        if name not in ASSETS:
            raise web.HTTPNotFound()
        return web.Response(body=_asset(name), content_type=ASSETS[name], charset="utf-8",
                            headers={"Cache-Control": "no-cache"})

    async def access(_request):
        return web.json_response({"token_required": bool(token_required)})

    app.router.add_get(ACCESS_PATH, access)
    app.router.add_get("/dashboard", page)
    app.router.add_get("/dashboard/", page)
    app.router.add_get("/dashboard/static/{name}", asset)
