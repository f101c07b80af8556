"""``strategy.matrix`` expansion with GitHub's include/exclude rules, done at compile time.

GitHub's rules (docs: "Using a matrix for your jobs"):

1. The product of every key except ``include``/``exclude``, in key order.
2. ``exclude`` removes every combination that matches all key/values of an entry (partial match).
3. Each ``include`` entry is merged into every combination where it overwrites none of the
   *original* matrix values (values added by an earlier include may be overwritten); when it
   merges into none, it becomes a combination of its own. Combinations created that way are not
   candidates for later includes.
"""

from __future__ import annotations

import itertools
from typing import Any

from .report import Report
from .yaml_source import Path

MAX_COMBINATIONS = 256
"""GitHub's limit of jobs one matrix may generate."""


def is_expression(value: object) -> bool:
    return isinstance(value, str) and value.strip().startswith("${{") and value.strip().endswith("}}")


def _same(a: object, b: object) -> bool:
    return type(a) is type(b) and a == b or (isinstance(a, (int, float)) and isinstance(b, (int, float))
                                             and not isinstance(a, bool) and not isinstance(b, bool) and a == b)


def _matches(combination: dict[str, Any], entry: dict[str, Any]) -> bool:
    return all(key in combination and _same(combination[key], value) for key, value in entry.items())


def expand(report: Report, path: Path, matrix: dict[str, Any]) -> tuple[dict[str, Any], ...] | None:
    """The combinations of a static matrix mapping at ``path``; None (and diagnostics) if invalid."""
    ok = True
    axes: dict[str, list[Any]] = {}
    for key, values in matrix.items():
        if key in ("include", "exclude"):
            continue
        if is_expression(values):
            report.error((*path, key), "matrix", f"matrix key {key!r} is an expression; only a whole matrix may be one",
                         "write the whole matrix as one expression, e.g. 'matrix: ${{ fromJSON(needs.setup.outputs.matrix) }}'")
            ok = False
        elif not isinstance(values, list):
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

    combinations = [dict(zip(axes, values)) for values in itertools.product(*axes.values())] if axes else []
    if len(combinations) > MAX_COMBINATIONS * 16:
        report.error(path, "matrix", f"the matrix has {len(combinations)} combinations before exclude",
                     f"a matrix may generate at most {MAX_COMBINATIONS} jobs")
        return None
    excludes = entries.get("exclude", [])
    combinations = [c for c in combinations if not any(_matches(c, e) for e in excludes)]
    originals = [dict(c) for c in combinations]
    extra: list[dict[str, Any]] = []
    for entry in entries.get("include", []):
        merged = False
        for combination, original in zip(combinations, originals):
            if all(_same(original[k], v) for k, v in entry.items() if k in original):
                combination.update(entry)
                merged = True
        if not merged:
            extra.append(dict(entry))
    combinations.extend(extra)
    if not combinations:
        report.error(path, "matrix", "the matrix has no combinations (exclude removed them all)",
                     "check the 'exclude' entries")
        return None
    if len(combinations) > MAX_COMBINATIONS:
        report.error(path, "matrix", f"the matrix generates {len(combinations)} jobs",
                     f"a matrix may generate at most {MAX_COMBINATIONS} jobs; split it or use fewer values")
        return None
    return tuple(combinations)
