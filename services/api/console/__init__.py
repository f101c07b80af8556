"""The web console, the OpenAPI document and the API docs page, served by the api service.

None of these is secret, so they need no API key (``is_public``); the console itself is a
static page that calls the public ``/v1`` API from the browser, with the key the user gives it.

| path | what |
|---|---|
| ``/`` | the console (``static/index.html``; pages are hash routes such as ``#/runs/<id>``) |
| ``/console/…`` | its script and style sheet (``static/``) |
| ``/openapi.yaml`` | ``services/api/openapi.yaml`` as it is: the one source of the API reference |
| ``/openapi.json`` | the same document as JSON |
| ``/docs`` | Swagger UI (the ``swagger-ui-bundle`` package's assets, under ``/docs/static/…``) |
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from aiohttp import web

STATIC = Path(__file__).resolve().parent / "static"
SPEC_FILE = Path(__file__).resolve().parent.parent / "openapi.yaml"
ROUTE_PREFIX = "console."
"""Every route registered here is named ``console.<something>``; ``is_public`` relies on it."""

PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Only this origin's scripts and styles, no inline script: a slip that turned user text into
    # markup could still not run anything.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
}
DOCS_HEADERS = {
    **PAGE_HEADERS,
    # Swagger UI sets inline styles on its elements.
    "Content-Security-Policy": PAGE_HEADERS["Content-Security-Policy"].replace("style-src 'self'", "style-src 'self' 'unsafe-inline'"),
}


def is_public(request: web.Request) -> bool:
    """Whether the request was routed to one of the console's routes (static, no key needed).

    Decided by the route the router matched, not by the path's spelling, so no path trick can
    reach a ``/v1`` handler through it."""
    resource = request.match_info.route.resource
    return resource is not None and (resource.name or "").startswith(ROUTE_PREFIX)


def swagger_ui_dir() -> Path | None:
    """Swagger UI's static files, shipped by the ``swagger-ui-bundle`` package (None: not installed)."""
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    return Path(str(swagger_ui_bundle.swagger_ui_path))


def add_console_routes(app: web.Application) -> None:
    spec_text = SPEC_FILE.read_text(encoding="utf-8")
    spec_json = json.dumps(yaml.safe_load(spec_text), indent=1)

    async def index(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    async def openapi_yaml(request: web.Request) -> web.Response:
        return web.Response(text=spec_text, content_type="application/yaml", headers={"Cache-Control": "no-cache"})

    async def openapi_json(request: web.Request) -> web.Response:
        return web.Response(text=spec_json, content_type="application/json", headers={"Cache-Control": "no-cache"})

    swagger = swagger_ui_dir()

    async def docs(request: web.Request) -> web.StreamResponse:
        if swagger is None:
            raise web.HTTPServiceUnavailable(text="the API docs page needs the swagger-ui-bundle package: pip install swagger-ui-bundle")
        return web.FileResponse(STATIC / "docs.html", headers=DOCS_HEADERS)

    app.router.add_get("/", index, name=ROUTE_PREFIX + "index")
    app.router.add_static("/console/", STATIC, name=ROUTE_PREFIX + "static")
    app.router.add_get("/openapi.yaml", openapi_yaml, name=ROUTE_PREFIX + "openapi_yaml")
    app.router.add_get("/openapi.json", openapi_json, name=ROUTE_PREFIX + "openapi_json")
    app.router.add_get("/docs", docs, name=ROUTE_PREFIX + "docs")
    if swagger is not None:
        app.router.add_static("/docs/static/", swagger, name=ROUTE_PREFIX + "swagger_ui")
