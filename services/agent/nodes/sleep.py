"""``sleep``: a pause. The scheduler runs it as a durable timer (no agent slot, survives restarts);
the agent can also run it — as a plain, cancellable wait — should a task for it ever arrive."""

from __future__ import annotations

import asyncio
from typing import Any

from waterflow_common.durations import DURATION_HINT, DURATION_SCHEMA, parse_duration
from waterflow_common.errors import NonRetryableError

from .base import Node, NodeContext

def duration_seconds(value: float | str) -> float:
    """``90`` -> 90.0; ``"1m30s"`` -> 90.0."""
    seconds = parse_duration(value)
    if seconds is None:
        raise NonRetryableError(f"invalid duration {value!r}: {DURATION_HINT}")
    return seconds


class Sleep(Node):
    name = "sleep"
    description = "Wait for a while (a durable timer held by the scheduler; no agent slot used)."
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["seconds"],
        "properties": {"seconds": DURATION_SCHEMA},
    }
    outputs = {}

    async def execute(self, ctx: NodeContext, params: dict[str, Any]) -> dict[str, str]:
        await asyncio.sleep(duration_seconds(params["seconds"]))
        return {}
