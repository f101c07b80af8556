"""Nodes: what ``uses: name@version`` steps run. The public API for node authors.

Write a node by subclassing :class:`Node` (see ``docs/guides/custom-nodes.md``); drop the file in
the agent's plugin directory or publish it in a package under the entry-point group
``waterflow.nodes``.
"""

from waterflow_common.errors import NonRetryableError, RetryableError

from .base import (
    CommandFailed,
    Node,
    NodeContext,
    NodeLogger,
    ProcessResult,
    string_outputs,
)
from .catalog import builtin_catalog, describe
from .registry import ENTRY_POINT_GROUP, NodeRegistry, UnknownNode, parse_uses

__all__ = [
    "ENTRY_POINT_GROUP",
    "CommandFailed",
    "Node",
    "NodeContext",
    "NodeLogger",
    "NodeRegistry",
    "NonRetryableError",
    "ProcessResult",
    "RetryableError",
    "UnknownNode",
    "builtin_catalog",
    "describe",
    "parse_uses",
    "string_outputs",
]
