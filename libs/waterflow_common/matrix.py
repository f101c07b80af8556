"""``strategy.matrix`` expansion with GitHub's include/exclude rules: one implementation for the
compiler (a static matrix) and the scheduler (a matrix from an expression, e.g. ``fromJSON``).

GitHub's rules (docs: "Running variations of jobs in a workflow"):

1. The product of every key except ``include``/``exclude``, in key order.
2. ``exclude`` removes every combination that matches all key/values of an entry (partial match).
3. Each ``include`` entry is merged into every combination where it overwrites none of the
   *original* matrix values (values added by an earlier include may be overwritten); when it
   merges into none, it becomes a combination of its own. Combinations created that way are not
   candidates for later includes.

The size is checked *before* anything is expanded: a few bytes of YAML can describe billions of
combinations.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

from .limits import MAX_MATRIX_COMBINATIONS

__all__ = ["MatrixError", "combinations", "from_value"]

MAX_BEFORE_EXCLUDE = MAX_MATRIX_COMBINATIONS * 16
"""Combinations the product may have before ``exclude`` trims it."""


class MatrixError(ValueError):
    """The matrix is malformed or too large (the message says which; ``hint`` what to do)."""

    def __init__(self, message: str, hint: str = "split the matrix or use fewer values") -> None:
        super().__init__(message)
        self.hint = hint


def _same(a: object, b: object) -> bool:
    return type(a) is type(b) and a == b or (isinstance(a, (int, float)) and isinstance(b, (int, float))
                                             and not isinstance(a, bool) and not isinstance(b, bool) and a == b)


def _matches(combination: Mapping[str, Any], entry: Mapping[str, Any]) -> bool:
    return all(key in combination and _same(combination[key], value) for key, value in entry.items())


def combinations(
    axes: Mapping[str, list[Any]], include: list[dict[str, Any]] = (), exclude: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> list[dict[str, Any]]:
    """The jobs a matrix generates; raises MatrixError when there are none or too many."""
    product = math.prod(len(v) for v in axes.values()) if axes else 0
    if product > MAX_BEFORE_EXCLUDE:
        raise MatrixError(f"the matrix has {product} combinations before exclude; "
                          f"a matrix may generate at most {MAX_MATRIX_COMBINATIONS} jobs")
    if len(include) > MAX_MATRIX_COMBINATIONS or len(exclude) > MAX_BEFORE_EXCLUDE:
        raise MatrixError(f"the matrix has {len(include)} include and {len(exclude)} exclude entries; "
                          f"a matrix may generate at most {MAX_MATRIX_COMBINATIONS} jobs")
    for entry in exclude:
        for key in entry:
            if key not in axes:
                raise MatrixError(f"matrix exclude uses {key!r}, which is not a matrix key "
                                  f"(matrix keys: {', '.join(axes) or 'none'})")
    found = [dict(zip(axes, values)) for values in itertools.product(*axes.values())] if axes else []
    found = [c for c in found if not any(_matches(c, e) for e in exclude)]
    originals = [dict(c) for c in found]
    extra: list[dict[str, Any]] = []
    for entry in include:
        merged = False
        for combination, original in zip(found, originals):
            if all(_same(original[k], v) for k, v in entry.items() if k in original):
                combination.update(entry)
                merged = True
        if not merged:
            extra.append(dict(entry))
    found.extend(extra)
    if not found:
        raise MatrixError("the matrix has no combinations (exclude removed them all)", "check the 'exclude' entries")
    if len(found) > MAX_MATRIX_COMBINATIONS:
        raise MatrixError(f"the matrix generates {len(found)} jobs; a matrix may generate at most "
                          f"{MAX_MATRIX_COMBINATIONS} jobs: split it or use fewer values")
    return found


def from_value(value: object) -> list[dict[str, Any]]:
    """The jobs of a matrix given as a value (an expression's result): a mapping of lists with
    optional ``include``/``exclude``, exactly as a static one."""
    if not isinstance(value, Mapping):
        raise MatrixError(f"a matrix must be an object of lists, got {type(value).__name__}")
    axes: dict[str, list[Any]] = {}
    for key, options in value.items():
        if key in ("include", "exclude"):
            continue
        if not isinstance(options, list) or not options:
            raise MatrixError(f"matrix key {key!r} must be a non-empty list")
        axes[key] = options
    lists: dict[str, list[dict[str, Any]]] = {}
    for kind in ("include", "exclude"):
        raw = value.get(kind) or []
        if not isinstance(raw, list) or not all(isinstance(e, Mapping) for e in raw):
            raise MatrixError(f"matrix '{kind}' must be a list of objects")
        lists[kind] = [dict(e) for e in raw]
    return combinations(axes, lists["include"], lists["exclude"])
