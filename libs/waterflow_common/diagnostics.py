"""Diagnostics are data: every user mistake becomes one of these, never an exception.

Rendered in one place each: :func:`format_text` for terminals (``file:line:col: message [rule]``
with the source line and a caret, like actionlint) and :func:`to_problem` for the API (RFC 7807
``application/problem+json`` with an ``errors`` member).
"""

from __future__ import annotations

from typing import Literal

import msgspec

Severity = Literal["error", "warning"]


class Diagnostic(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One problem found in a workflow, positioned in its file (line and col are 1-based)."""

    path: str
    line: int
    col: int
    rule: str
    message: str
    hint: str | None = None
    key: str | None = None
    """The offending key as a dotted path, e.g. ``jobs.build.steps[0].run``."""
    severity: Severity = "error"


def sort_key(diagnostic: Diagnostic) -> tuple[str, int, int, str]:
    return (diagnostic.path, diagnostic.line, diagnostic.col, diagnostic.rule)


def has_errors(diagnostics: list[Diagnostic]) -> bool:
    return any(d.severity == "error" for d in diagnostics)


def format_text(diagnostics: list[Diagnostic], source: str | None = None) -> str:
    """Render diagnostics for a terminal, each with the offending source line and a caret."""
    lines = source.splitlines() if source is not None else []
    out: list[str] = []
    for diag in sorted(diagnostics, key=sort_key):
        tag = "" if diag.severity == "error" else f"{diag.severity}: "
        out.append(f"{diag.path}:{diag.line}:{diag.col}: {tag}{diag.message} [{diag.rule}]")
        if 0 < diag.line <= len(lines):
            out.append(f"  {diag.line:>4} | {lines[diag.line - 1]}")
            out.append(f"       | {' ' * max(diag.col - 1, 0)}^")
        if diag.hint:
            out.append(f"       = hint: {diag.hint}")
    return "\n".join(out)


def to_problem(diagnostics: list[Diagnostic], title: str = "invalid workflow") -> dict[str, object]:
    """An RFC 7807 problem document listing every diagnostic."""
    ordered = sorted(diagnostics, key=sort_key)
    errors = [d for d in ordered if d.severity == "error"]
    first = errors[0] if errors else (ordered[0] if ordered else None)
    detail = (
        f"{first.path}:{first.line}:{first.col}: {first.message}"
        + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")
        if first
        else title
    )
    return {
        "type": "https://waterflow.dev/problems/invalid-workflow",
        "title": title,
        "status": 400,
        "detail": detail,
        "errors": msgspec.to_builtins(ordered),
    }
