"""Durations as written in workflows: ``10``, ``1.5`` (seconds), ``"10s"``, ``"2m"``, ``"1h30m"``, ``"500ms"``."""

from __future__ import annotations

import re

from .limits import MAX_DURATION_TEXT

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

DURATION_HINT = "write a number of seconds, or a duration like '10s', '2m', '1h30m' or '500ms'"


def parse_duration(value: object) -> float | None:
    """Seconds, or None when ``value`` is not a duration (the caller reports it).

    >>> parse_duration("1m30s"), parse_duration(5), parse_duration("soon")
    (90.0, 5.0, None)
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value >= 0 and value == value and value != float("inf") else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if len(text) > MAX_DURATION_TEXT:  # also keeps the regular expressions below linear in practice
        return None
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return parse_duration(number)
    if not text or _PART.sub("", text) != "":
        return None
    return sum(float(amount) * _UNIT_SECONDS[unit] for amount, unit in _PART.findall(text))


DURATION_SCHEMA: dict[str, object] = {
    "description": "How long: a number of seconds or a duration such as '30s', '5m', '1h30m'.",
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "maxLength": MAX_DURATION_TEXT, "pattern": r"^\s*(\d+(\.\d+)?(ms|s|m|h|d))+\s*$"},
    ],
}
"""JSON Schema of a duration parameter, for node schemas."""
