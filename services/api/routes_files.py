"""``/v1/files``: files between the people (or CI) that submit runs and the agents that run them.

Stored in the JetStream Object Store bucket ``wf_files``, where the ``file/upload`` and
``file/download`` nodes read and write (``with: {object: NAME}``). Bodies are streamed through a
temporary file, never held in memory whole; the Object Store checks the SHA-256 of every object.
"""

from __future__ import annotations

import hashlib
import re
import tempfile

from aiohttp import web
from nats.js import JetStreamContext
from nats.js.api import ObjectStoreConfig, StorageType
from nats.js.errors import BucketNotFoundError, NotFoundError, ObjectNotFoundError

from waterflow_common import subjects

MAX_FILE_BYTES = 1024 * 1024 * 1024
_NAME = re.compile(r"^[^\s]{1,255}$")
_JS = web.AppKey("files_js", JetStreamContext)


async def _store(request: web.Request):  # type: ignore[no-untyped-def]
    js = request.app[_JS]
    try:
        return await js.object_store(subjects.FILES_BUCKET)
    except (BucketNotFoundError, NotFoundError):
        return await js.create_object_store(
            subjects.FILES_BUCKET, ObjectStoreConfig(storage=StorageType.FILE, description="Waterflow file transfer"))


def _name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not _NAME.match(name) or ".." in name.split("/"):
        raise web.HTTPBadRequest(text=f"invalid object name {name!r}: no spaces, no '..' parts, at most 255 characters")
    return name


async def put_file(request: web.Request) -> web.Response:
    name = _name(request)
    digest, size = hashlib.sha256(), 0
    with tempfile.TemporaryFile() as spool:
        async for chunk in request.content.iter_chunked(256 * 1024):
            size += len(chunk)
            if size > MAX_FILE_BYTES:
                raise web.HTTPRequestEntityTooLarge(max_size=MAX_FILE_BYTES, actual_size=size)
            digest.update(chunk)
            spool.write(chunk)
        spool.seek(0)
        await (await _store(request)).put(name, spool)
    return web.json_response({"object": name, "size": size, "sha256": digest.hexdigest()}, status=201)


async def get_file(request: web.Request) -> web.StreamResponse:
    name = _name(request)
    with tempfile.TemporaryFile() as spool:
        try:
            await (await _store(request)).get(name, writeinto=spool)
        except (ObjectNotFoundError, NotFoundError):
            raise web.HTTPNotFound(text=f"no file named {name!r}") from None
        spool.seek(0)
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        while chunk := spool.read(256 * 1024):
            await response.write(chunk)
        await response.write_eof()
        return response


async def list_files(request: web.Request) -> web.Response:
    try:
        infos = await (await _store(request)).list()
    except (NotFoundError, Exception):  # nats-py raises when the bucket is empty
        infos = []
    return web.json_response({"files": [{"object": i.name, "size": i.size} for i in infos if not i.deleted]})


async def delete_file(request: web.Request) -> web.Response:
    name = _name(request)
    try:
        await (await _store(request)).delete(name)
    except (ObjectNotFoundError, NotFoundError):
        raise web.HTTPNotFound(text=f"no file named {name!r}") from None
    return web.Response(status=204)


def add_file_routes(app: web.Application, js: JetStreamContext) -> None:
    app[_JS] = js
    app.router.add_get("/v1/files", list_files)
    app.router.add_put("/v1/files/{name:[\\s\\S]+}", put_file)
    app.router.add_get("/v1/files/{name:[\\s\\S]+}", get_file)
    app.router.add_delete("/v1/files/{name:[\\s\\S]+}", delete_file)
