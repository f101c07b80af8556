"""``sleep``: a pause. The scheduler runs it as a durable timer (no agent slot, survives restarts);
the agent can also run it — as a plain, cancellable wait — should a task for it ever arrive."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from waterflow_common.errors import NonRetryableError

from .base import Node, NodeContext

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def duration_seconds(value: float | str) -> float:
    """``90`` -> 90.0; ``"1m30s"`` -> 90.0."""
    if isinstance(value, (int, float)):
        return float(value)
    text = value.strip()
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise NonRetryableError(f"invalid duration {value!r}: use seconds or e.g. '30s', '5m', '1h30m'")
    return sum(float(n) * _UNITS[u] for n, u in parts)


class Sleep(Node):
    name = "sleep"
    description = "Wait for a while (a durable timer held by the scheduler; no agent slot used)."
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["seconds"],
        "properties": {
            "seconds": {
                "description": "How long to wait: a number of seconds or a duration such as '30s', '5m'.",
                "anyOf": [
                    {"type": "number", "minimum": 0},
                    {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?(ms|s|m|h|d))+\s*$"},
                ],
            }
        },
    }
    outputs = {}

    async def execute(self, ctx: NodeContext, params: dict[str, Any]) -> dict[str, str]:
        await asyncio.sleep(duration_seconds(params["seconds"]))
        return {}
