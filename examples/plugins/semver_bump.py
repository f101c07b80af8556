"""A custom node: bump a semantic version (``uses: semver/bump@v1``).

Drop this file into the agent's plugin directory (``~/.waterflow/plugins`` by default); the next
step that uses it loads it — no restart.
"""

from typing import Any

from waterflow_agent.nodes import Node, NodeContext, NonRetryableError


class SemverBump(Node):
    name = "semver/bump"
    version = "v1"
    description = "Bump the major, minor or patch part of a version like 1.4.2."
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["current"],
        "properties": {
            "current": {"type": "string", "description": "The version to bump, e.g. 1.4.2 or v1.4.2."},
            "part": {"enum": ["major", "minor", "patch"], "default": "patch"},
        },
    }
    outputs = {"version": "the bumped version", "previous": "the version given"}

    async def execute(self, ctx: NodeContext, params: dict[str, Any]) -> dict[str, str]:
        current = params["current"]
        prefix, numbers = ("v", current[1:]) if current.startswith("v") else ("", current)
        try:
            major, minor, patch = (int(n) for n in numbers.split("."))
        except ValueError:
            raise NonRetryableError(f"{current!r} is not a version like 1.4.2") from None
        if params["part"] == "major":
            major, minor, patch = major + 1, 0, 0
        elif params["part"] == "minor":
            minor, patch = minor + 1, 0
        else:
            patch += 1
        bumped = f"{prefix}{major}.{minor}.{patch}"
        ctx.log.info(f"{current} -> {bumped}")
        return {"version": bumped, "previous": current}
