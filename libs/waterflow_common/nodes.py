"""The node contract shared by the compiler and the agents: how ``uses:`` is written, and the
``with:`` schemas of the built-in nodes.

``uses: <name>@<version>`` — a name of lower-case words joined by ``-`` ``/`` ``.`` ``_``, and a
major version ``v1`` (``v1.2`` is accepted). The compiler refuses anything else; the agent,
which also accepts a bare name (newest version) from its own callers, parses it the same way.

The built-in nodes' schemas are data here (``node_schemas.py``, generated from the agent's node
classes and kept equal to them by ``tests/unit/test_node_contract.py``), so the compiler checks
``with:`` without importing any agent code.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any, TypeAlias

from .node_schemas import BUILTIN_SCHEMAS

__all__ = ["USES", "NodeCatalog", "builtin_catalog", "parse_uses"]

NodeCatalog: TypeAlias = Mapping[str, Mapping[str, Mapping[str, Any]]]
"""Node name -> version (``"v1"``) -> JSON Schema of its ``with:`` mapping."""

USES = re.compile(r"^(?P<name>[A-Za-z0-9_][A-Za-z0-9_./-]*)@(?P<version>v\d+(?:\.\d+)*)$")
"""A complete node reference, as a workflow must write it."""

_LOOSE = re.compile(r"^(?P<name>[A-Za-z0-9_][A-Za-z0-9_./-]*)(?:@(?P<version>v\d+(?:\.\d+)*))?$")


def parse_uses(uses: str, *, version_required: bool = True) -> tuple[str, str | None]:
    """``http@v1`` -> ``("http", "v1")``; with ``version_required=False``, ``http`` ->
    ``("http", None)`` (the newest). Raises ValueError saying what is wrong."""
    match = (USES if version_required else _LOOSE).match(uses.strip())
    if match is None:
        raise ValueError(f"invalid node reference {uses!r}: expected NAME@VERSION, e.g. http@v1")
    return match["name"], match["version"]


def builtin_catalog() -> dict[str, dict[str, dict[str, Any]]]:
    """name -> {version -> JSON Schema of ``with:``} for every built-in node (a copy)."""
    return copy.deepcopy(BUILTIN_SCHEMAS)
