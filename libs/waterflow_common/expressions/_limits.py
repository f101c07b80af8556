"""Bounds that keep evaluating untrusted expressions cheap in time and memory.

The first two are GitHub's own (actions/runner ``ExpressionConstants``), so a workflow that runs on
GitHub is never rejected here for its size.
"""

MAX_EXPRESSION_LENGTH = 21_000
"""Characters in one expression (GitHub's ``MaxLength``)."""

MAX_DEPTH = 50
"""Nesting of the expression tree (GitHub's ``MaxDepth``); also bounds the parser's recursion."""

MAX_STRING_LENGTH = 4 * 1024 * 1024
"""Characters in any string built while evaluating (``format``, ``join``, ``toJSON``, render)."""

MAX_VALUE_DEPTH = 64
"""Nesting of values read by ``fromJSON`` or written by ``toJSON`` (Json.NET's default MaxDepth)."""
