"""What nodes exist, as data: for the compiler (schemas) and for agent registration (specs).

:func:`builtin_catalog` needs no agent: the compiler validates ``with:`` of built-in nodes
against it. :func:`describe` is what an agent publishes about itself — built-ins, entry-point
nodes and plugins, including the ones that failed to load — so ``GET /v1/nodes`` and
``waterflow node list`` show what is really available, where, and what is broken.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from .builtins import BUILTIN_NODES
from .registry import NodeRegistry

Schema = dict[str, Any]


@cache
def _builtin_catalog() -> dict[str, dict[str, Schema]]:
    catalog: dict[str, dict[str, Schema]] = {}
    for node in BUILTIN_NODES:
        catalog.setdefault(node.name, {})[node.version] = node.schema
    return catalog


def builtin_catalog() -> dict[str, dict[str, Schema]]:
    """name -> {version -> JSON Schema of ``with:``} for every built-in node.

    >>> builtin_catalog()["http"]["v1"]["required"]
    ['url']
    """
    return copy.deepcopy(_builtin_catalog())


def describe(registry: NodeRegistry) -> list[dict[str, Any]]:
    """Node specs of an agent, sorted by name and version, failed plugins last.

    Each spec is ``{name, version, schema, outputs, description, status, error, source}``, with
    status ``ok`` or ``failed`` (then ``error`` says why and ``schema`` is empty). Plain builtins,
    ready to embed in a registration message.
    """
    registry.refresh()
    specs: list[dict[str, Any]] = []
    for (name, version), entry in sorted(registry.entries().items(), key=lambda item: (item[0][0], int(item[0][1][1:]))):
        specs.append({
            "name": name, "version": version, "schema": entry.node.schema, "outputs": dict(entry.node.outputs),
            "description": entry.node.description, "status": "ok", "error": None, "source": entry.source,
        })
    for failure in registry.failures():
        specs.append({
            "name": failure.name, "version": failure.version, "schema": {}, "outputs": {}, "description": "",
            "status": "failed", "error": failure.error, "source": failure.source,
        })
    return specs
