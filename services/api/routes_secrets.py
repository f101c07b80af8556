"""``/v1/secrets``: write and delete secrets, list their names. Values are never returned."""

from __future__ import annotations


from aiohttp import web
from nats.js import JetStreamContext

from waterflow_common import subjects
from waterflow_common.secrets import KvSecretProvider, check_name

from .bodies import parse_json

MAX_SECRET_BYTES = 64 * 1024
_JS = web.AppKey("secrets_js", JetStreamContext)


async def _provider(request: web.Request) -> KvSecretProvider:
    return KvSecretProvider(await request.app[_JS].key_value(subjects.SECRETS_BUCKET))


def _name(request: web.Request) -> str:
    try:
        return check_name(request.match_info["name"])
    except ValueError as error:
        raise web.HTTPBadRequest(text=str(error)) from error


async def list_secrets(request: web.Request) -> web.Response:
    return web.json_response({"secrets": [{"name": n} for n in await (await _provider(request)).names()]})


async def put_secret(request: web.Request) -> web.Response:
    """Body: the value as text, or ``{"value": "..."}`` with Content-Type application/json."""
    name = _name(request)
    raw = await request.read()
    if len(raw) > MAX_SECRET_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_SECRET_BYTES, actual_size=len(raw))
    if request.content_type == "application/json":
        body = parse_json(raw)
        value = body.get("value") if isinstance(body, dict) else None
        if value is None:
            raise web.HTTPBadRequest(text='expected {"value": "<secret>"}')
        if not isinstance(value, str):
            raise web.HTTPBadRequest(text="the secret value must be a string")
    else:
        try:
            value = raw.decode()
        except UnicodeDecodeError as error:
            raise web.HTTPBadRequest(text="the secret value must be UTF-8 text") from error
    await (await _provider(request)).put(name, value)
    return web.json_response({"name": name}, status=201)


async def delete_secret(request: web.Request) -> web.Response:
    name = _name(request)
    if not await (await _provider(request)).delete(name):
        raise web.HTTPNotFound(text=f"no secret named {name!r}")
    return web.Response(status=204)


def add_secret_routes(app: web.Application, js: JetStreamContext) -> None:
    app[_JS] = js
    app.router.add_get("/v1/secrets", list_secrets)
    app.router.add_put("/v1/secrets/{name}", put_secret)
    app.router.add_delete("/v1/secrets/{name}", delete_secret)
