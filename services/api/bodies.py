"""Request bodies as the API accepts them: JSON that is valid Unicode, or a clear 400."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


def parse_json(raw: bytes) -> Any:
    """The JSON document in ``raw``; 400 if it is not JSON, or holds text that is not valid
    Unicode (a lone surrogate such as ``"\\ud800"`` parses, but cannot be stored or sent on)."""
    try:
        body = json.loads(raw)
    except ValueError as error:
        raise web.HTTPBadRequest(text=f"the body is not valid JSON: {error}") from error
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as error:
        raise web.HTTPBadRequest(text=f"the body holds text that is not valid Unicode ({error.reason} at "
                                      f"position {error.start}: e.g. a lone surrogate escape)") from None
    return body
