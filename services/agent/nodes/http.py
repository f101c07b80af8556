"""``http``: one HTTP request with an expected status; response status, headers and body as outputs.

Connection errors, timeouts and 5xx/429 answers are retryable (``retries`` retries them inside
the step with a short backoff; the step's ``retry:`` policy can retry the whole step); any other
unexpected status is not.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from waterflow_common.errors import NonRetryableError, RetryableError

from .base import Node, NodeContext

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class Http(Node):
    name = "http"
    description = "Send an HTTP request and check its status."
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["url"],
        "not": {"required": ["json", "body"]},
        "properties": {
            "url": {"type": "string", "pattern": "^https?://", "description": "http:// or https:// URL."},
            "method": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"], "default": "GET"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}, "default": {}},
            "json": {"description": "A value sent as a JSON body (sets Content-Type)."},
            "body": {"type": "string", "description": "A raw text body."},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "default": 30, "description": "Seconds for the whole request."},
            "expected-status": {
                "oneOf": [{"type": "integer"}, {"type": "array", "items": {"type": "integer"}, "minItems": 1}],
                "description": "Status code(s) that count as success; default any 2xx.",
            },
            "retries": {"type": "integer", "minimum": 0, "maximum": 10, "default": 0,
                        "description": "Extra attempts on connection errors, timeouts and 408/425/429/5xx."},
            "retry-delay": {"type": "number", "minimum": 0, "default": 1, "description": "Seconds before the first retry (doubles each time)."},
            "max-body-bytes": {"type": "integer", "minimum": 0, "default": 1048576,
                               "description": "The body output is cut at this size (body_truncated tells)."},
            "verify-tls": {"type": "boolean", "default": True},
        },
    }
    outputs = {
        "status": "response status code",
        "headers": "response headers as a JSON object",
        "body": "response body as text (cut at max-body-bytes)",
        "body_truncated": "true if the body was cut",
        "json": "the body re-encoded as compact JSON if it was JSON, else empty",
    }

    async def execute(self, ctx: NodeContext, params: dict[str, Any]) -> dict[str, str]:
        attempts = params["retries"] + 1
        delay = params["retry-delay"]
        for attempt in range(1, attempts + 1):
            try:
                return await self._request(ctx, params)
            except RetryableError as error:
                if attempt == attempts:
                    raise
                ctx.log.system(f"attempt {attempt} of {attempts} failed ({error}); retrying in {delay:g}s")
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    async def _request(self, ctx: NodeContext, params: dict[str, Any]) -> dict[str, str]:
        method, url = params["method"], params["url"]
        timeout = ctx.timeout(params["timeout"])
        kwargs: dict[str, Any] = {"headers": params["headers"], "allow_redirects": True}
        if "json" in params:
            kwargs["json"] = params["json"]
        elif "body" in params:
            kwargs["data"] = params["body"].encode()
        if not params["verify-tls"]:
            kwargs["ssl"] = False
        ctx.log.system(f"{method} {url}")
        limit = params["max-body-bytes"]
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
                async with session.request(method, url, **kwargs) as response:
                    raw = await response.content.read(limit + 1) if limit else b""
                    truncated = len(raw) > limit or (limit == 0 and response.content_length not in (None, 0))
                    raw = raw[:limit]
                    status, headers = response.status, {k: v for k, v in response.headers.items()}
        except TimeoutError:
            raise RetryableError(f"{method} {url}: no complete answer within {timeout:g}s") from None
        except aiohttp.InvalidURL as error:
            raise NonRetryableError(f"invalid URL {str(error)!r}") from None
        except aiohttp.ClientError as error:
            raise RetryableError(f"{method} {url} failed: {error or type(error).__name__}") from None
        text = raw.decode("utf-8", errors="replace")
        ctx.log.system(f"{method} {url} -> {status} ({len(raw)} bytes{', truncated' if truncated else ''})")
        outputs = {
            "status": str(status),
            "headers": json.dumps(headers, sort_keys=True),
            "body": text,
            "body_truncated": "true" if truncated else "false",
            "json": _compact_json(text) if not truncated else "",
        }
        expected = params.get("expected-status")
        ok = (200 <= status < 300) if expected is None else status in ([expected] if isinstance(expected, int) else expected)
        if not ok:
            wanted = "a 2xx status" if expected is None else f"status {expected}"
            snippet = text[:200].replace("\n", " ")
            message = f"{method} {url} answered {status}, expected {wanted}" + (f": {snippet}" if snippet else "")
            error_type = RetryableError if status in RETRYABLE_STATUS else NonRetryableError
            failure = error_type(message)
            failure.outputs = outputs  # type: ignore[attr-defined]  # the executor reports them with the error
            raise failure
        return outputs


def _compact_json(text: str) -> str:
    try:
        return json.dumps(json.loads(text), separators=(",", ":"), sort_keys=True)
    except ValueError:
        return ""
