"""``wait-for``: wait until a TCP port accepts connections or an HTTP URL answers healthily.

Used by deployments between "start" and "switch traffic". Timing out is retryable: the service
may just be slow, and the step's ``retry:`` policy decides how long to keep trying.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from waterflow_common.errors import NonRetryableError, RetryableError

from .base import Node, NodeContext


class WaitFor(Node):
    name = "wait-for"
    description = "Wait until a TCP port is open or an HTTP URL is healthy, within a timeout."
    schema = {
        "type": "object",
        "additionalProperties": False,
        "oneOf": [{"required": ["tcp"]}, {"required": ["url"]}],
        "properties": {
            "tcp": {"type": "string", "pattern": "^.+:[0-9]+$", "description": "HOST:PORT that must accept a TCP connection."},
            "url": {"type": "string", "pattern": "^https?://", "description": "URL that must answer with a healthy status."},
            "expected-status": {
                "oneOf": [{"type": "integer"}, {"type": "array", "items": {"type": "integer"}, "minItems": 1}],
                "description": "Healthy status code(s) for url; default any 2xx.",
            },
            "timeout": {"type": "number", "exclusiveMinimum": 0, "default": 60, "description": "Seconds to keep trying."},
            "interval": {"type": "number", "exclusiveMinimum": 0, "default": 1, "description": "Seconds between checks."},
        },
    }
    outputs = {"elapsed": "seconds until healthy", "checks": "how many checks it took"}

    async def execute(self, ctx: NodeContext, params: dict[str, Any]) -> dict[str, str]:
        timeout = ctx.timeout(params["timeout"]) or params["timeout"]
        target = params.get("tcp") or params["url"]
        started = time.monotonic()
        deadline = started + timeout
        checks = 0
        last_problem = "not checked"
        ctx.log.system(f"waiting up to {timeout:g}s for {target}")
        while True:
            checks += 1
            left = max(deadline - time.monotonic(), 0.05)
            last_problem = await (self._tcp(params["tcp"], left) if "tcp" in params else self._http(params, left))
            if not last_problem:
                elapsed = time.monotonic() - started
                ctx.log.system(f"{target} is healthy after {elapsed:.2f}s ({checks} checks)")
                return {"elapsed": f"{elapsed:.3f}", "checks": str(checks)}
            if time.monotonic() + params["interval"] > deadline:
                raise RetryableError(f"{target} was not healthy within {timeout:g}s ({checks} checks; last: {last_problem})")
            await asyncio.sleep(params["interval"])

    async def _tcp(self, target: str, timeout: float) -> str:
        host, _, port = target.rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port)), min(timeout, 5))
        except (TimeoutError, OSError) as error:
            return str(error) or type(error).__name__
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
        return ""

    async def _http(self, params: dict[str, Any], timeout: float) -> str:
        expected = params.get("expected-status")
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=min(timeout, 10))) as session:
                async with session.get(params["url"]) as response:
                    status = response.status
        except aiohttp.InvalidURL as error:
            raise NonRetryableError(f"invalid URL {str(error)!r}") from None
        except (TimeoutError, aiohttp.ClientError) as error:
            return str(error) or type(error).__name__
        ok = (200 <= status < 300) if expected is None else status in ([expected] if isinstance(expected, int) else expected)
        return "" if ok else f"status {status}"
