"""``strategy.matrix`` at compile time: the matrix's shape checked with a diagnostic per
mistake (line and column), then expanded by :mod:`waterflow_common.matrix`, which the scheduler
also uses for a matrix that comes from an expression, so both follow GitHub's rules alike.
"""

from __future__ import annotations

from typing import Any

from waterflow_common.limits import MAX_MATRIX_COMBINATIONS
from waterflow_common.matrix import MatrixError, combinations

from .report import Report
from .yaml_source import Path

MAX_COMBINATIONS = MAX_MATRIX_COMBINATIONS


def is_expression(value: object) -> bool:
    return isinstance(value, str) and value.strip().startswith("${{") and value.strip().endswith("}}")


def expand(report: Report, path: Path, matrix: dict[str, Any]) -> tuple[dict[str, Any], ...] | None:
    """The combinations of a static matrix mapping at ``path``; None (and diagnostics) if invalid."""
    ok = True
    axes: dict[str, list[Any]] = {}
    for key, values in matrix.items():
        if key in ("include", "exclude"):
            continue
        if not isinstance(values, list):  # (a matrix with ${{ }} inside is expanded at run time, not here)
            report.error((*path, key), "type", f"matrix key {key!r} must be a list of values",
                         f"write '{key}: [a, b]'")
            ok = False
        elif not values:
            report.error((*path, key), "matrix", f"matrix key {key!r} has no values", "give it at least one value, or remove it")
            ok = False
        else:
            axes[key] = values
    entries: dict[str, list[dict[str, Any]]] = {}
    for kind in ("include", "exclude"):
        raw = matrix.get(kind)
        if raw is None:
            continue
        if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
            report.error((*path, kind), "type", f"matrix '{kind}' must be a list of mappings",
                         f"write '{kind}:' followed by '- key: value' entries")
            ok = False
            continue
        entries[kind] = raw
    for i, entry in enumerate(entries.get("exclude", [])):
        for key in entry:
            if key not in axes and ok:
                report.error((*path, "exclude", i, key), "matrix", f"matrix exclude uses {key!r}, which is not a matrix key",
                             f"matrix keys: {', '.join(axes) or 'none'}", key=True)
                ok = False
    if not ok:
        return None

    try:
        return tuple(combinations(axes, entries.get("include", []), entries.get("exclude", [])))
    except MatrixError as error:
        report.error(path, "matrix", str(error), error.hint)
        return None
