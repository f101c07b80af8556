"""Rewriting context references inside ``${{ }}`` expressions, for inlining reusable workflows.

When a called workflow is inlined into its caller, ``inputs.<name>`` becomes the caller's ``with:``
value, ``needs.<job>`` the renamed job, and ``needs.<call>.outputs.<name>`` the called workflow's
output expression. The rewrite works on the expression text: string literals are masked so that a
``'needs.x'`` literal is never touched, and each reference (``ctx.a.b`` or ``ctx['a']['b']``) is
replaced as a whole, in parentheses, keeping any further properties (``(expr).more``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from waterflow_common.expressions import ExpressionError, find_expressions

Replace = Callable[[list[str]], tuple[int, str] | None]
"""Given a reference as parts (``["needs", "build", "outputs", "v"]``), return how many leading
parts to replace and the replacement expression text, or None to leave it."""

_STRING = re.compile(r"'(?:[^']|'')*'?")
_CONTEXT = re.compile(r"(?<![\w.\-'])([A-Za-z_][\w-]*)")
_DOT = re.compile(r"\s*\.\s*([A-Za-z_][\w-]*|\*)")
_PLAIN_PATH = re.compile(r"^[A-Za-z_][\w.\-]*$")
_INDEX = re.compile(r"\s*\[\s*'((?:[^']|'')*)'\s*\]")


def _masked(text: str) -> str:
    return _STRING.sub(lambda m: "'" + "\0" * max(len(m.group()) - 2, 0) + ("'" if len(m.group()) > 1 else ""), text)


def rewrite_expression(text: str, replace: Replace) -> str:
    """``text`` (one expression, without braces) with references replaced."""
    masked = _masked(text)
    out: list[str] = []
    position = 0
    for match in _CONTEXT.finditer(masked):
        if match.start() < position:
            continue
        after = masked[match.end():match.end() + 1]
        if after == "(" or masked[match.end():].lstrip().startswith("("):
            continue  # a function call
        parts = [match.group(1)]
        ends = [match.end()]
        cursor = match.end()
        while True:
            dot = _DOT.match(masked, cursor)
            if dot:
                parts.append(dot.group(1))
                cursor = dot.end()
                ends.append(cursor)
                continue
            index = _INDEX.match(text, cursor)
            if index and masked[cursor:index.end()].count("'") == 2:
                parts.append(index.group(1).replace("''", "'"))
                cursor = index.end()
                ends.append(cursor)
                continue
            break
        result = replace(parts)
        if result is None:
            continue
        count, replacement = result
        out.append(text[position:match.start()])
        out.append(replacement if _PLAIN_PATH.match(replacement) else f"({replacement})")
        position = ends[count - 1]
    out.append(text[position:])
    return "".join(out)


def rewrite_template(template: str, replace: Replace, *, condition: bool = False) -> str:
    """Every ``${{ }}`` of ``template`` rewritten; an ``if:`` without braces is one expression.

    A template whose expressions do not parse is returned unchanged (the error is reported by the
    expression checks).
    """
    try:
        spans = find_expressions(template)
    except ExpressionError:
        return template
    if not spans:
        return rewrite_expression(template, replace) if condition else template
    pieces: list[str] = []
    position = 0
    for span in spans:
        pieces.append(template[position:span.text_start])
        pieces.append(rewrite_expression(span.text, replace))
        position = span.end - 2
    pieces.append(template[position:])
    return "".join(pieces)


def rewrite_value(value: Any, replace: Replace) -> Any:
    """Strings inside ``value`` (mappings and lists too) rewritten."""
    if isinstance(value, str):
        return rewrite_template(value, replace)
    if isinstance(value, dict):
        return {key: rewrite_value(item, replace) for key, item in value.items()}
    if isinstance(value, list):
        return [rewrite_value(item, replace) for item in value]
    return value


def literal(value: object) -> str:
    """An expression whose value is ``value``: ``'text'``, ``3``, ``true``, ``null``, ``fromJSON('…')``."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value) if value == value and value not in (float("inf"), float("-inf")) else "null"
    return f"fromJSON({literal(json.dumps(value))})"


def as_expression(value: object) -> str:
    """An expression with the value a workflow field would have: GitHub's rule that a string that
    is exactly one ``${{ x }}`` is ``x``, a string mixing text and expressions is ``format(...)``."""
    if not isinstance(value, str):
        if isinstance(value, (dict, list)):
            try:
                if any(find_expressions(s) for s in _strings(value)):
                    return "null"  # expressions nested in structures are not supported in with:
            except ExpressionError:
                return "null"
        return literal(value)
    try:
        spans = find_expressions(value)
    except ExpressionError:
        return "null"
    if not spans:
        return literal(value)
    if len(spans) == 1 and spans[0].start == 0 and spans[0].end == len(value):
        return spans[0].text.strip()
    pattern: list[str] = []
    args: list[str] = []
    position = 0
    for span in spans:
        pattern.append(value[position:span.start].replace("{", "{{").replace("}", "}}"))
        pattern.append("{" + str(len(args)) + "}")
        args.append(f"({span.text.strip()})")
        position = span.end
    pattern.append(value[position:].replace("{", "{{").replace("}", "}}"))
    return f"format({literal(''.join(pattern))}, {', '.join(args)})"


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []
