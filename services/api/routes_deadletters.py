"""HTTP routes for dead letters: messages a consumer moved aside (``waterflow_common.deadletters``).

- ``GET /v1/dead-letters``: newest first, ``?limit=`` and ``?before=<seq>`` (the ``next`` cursor
  of the previous page), ``?run_id=`` for one run's; each without its payload.
- ``GET /v1/dead-letters/{seq}``: one, with the payload (cut at ``DEAD_LETTER_PAYLOAD_BYTES``).
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from waterflow_common import deadletters, subjects
from waterflow_common.messages import DeadLetter

SOURCE = web.AppKey("dead_letters_source", object)
"""Whatever holds the JetStream context as ``.js`` (the API's Runs), read at request time."""
MAX_PAGE = 200


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), status=status, content_type="application/json")


def _shown(seq: int, letter: DeadLetter, payload: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"seq": seq, **msgspec.to_builtins(letter)}
    if not payload:
        body.pop("payload")
    return body


def _whole_number(request: web.Request, name: str, default: int | None) -> int | None:
    text = request.query.get(name)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise web.HTTPBadRequest(text=f"'{name}' must be a whole number, got {text[:40]!r}") from None
    if not 1 <= value < 2**63:
        raise web.HTTPBadRequest(text=f"'{name}' must be a positive whole number, got {text[:40]!r}")
    return value


async def list_dead_letters(request: web.Request) -> web.Response:
    limit = min(_whole_number(request, "limit", 50) or 50, MAX_PAGE)
    before = _whole_number(request, "before", None)
    run_id = request.query.get("run_id") or None
    if run_id is not None:
        try:
            subjects.check_token(run_id, "run id")
        except ValueError as error:
            raise web.HTTPBadRequest(text=str(error)) from None
    found, cursor = await deadletters.page(request.app[SOURCE].js, limit, before, run_id)  # type: ignore[attr-defined]
    return _json({"dead_letters": [_shown(seq, letter, payload=False) for seq, letter in found], "next": cursor})


async def get_dead_letter(request: web.Request) -> web.Response:
    text = request.match_info["seq"]
    if not text.isdigit() or int(text) < 1:
        raise web.HTTPBadRequest(text=f"a dead letter is named by its sequence number (1, 2, …), not {text[:40]!r}")
    seq = int(text)
    letter = None if seq >= 2**63 else await deadletters.get(request.app[SOURCE].js, seq)  # type: ignore[attr-defined]
    if letter is None:
        raise web.HTTPNotFound(text=f"no dead letter {text} (never stored, or aged out)")
    return _json(_shown(seq, letter, payload=True))


def add_dead_letter_routes(app: web.Application, source: object) -> None:
    """Register the routes; ``source.js`` is the JetStream context (the API's Runs object)."""
    app[SOURCE] = source
    app.router.add_get("/v1/dead-letters", list_dead_letters)
    app.router.add_get("/v1/dead-letters/{seq}", get_dead_letter)
