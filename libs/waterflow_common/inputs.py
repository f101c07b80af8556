"""Workflow inputs: checking what a caller gave against what the workflow declares.

Done at submit (by the API), so a run never starts with a missing or mistyped input; the
checked values (defaults filled in) are stored in the run's state as the ``inputs`` context.
"""

from __future__ import annotations

from collections.abc import Mapping

from .plan import InputSpec


def resolve_inputs(specs: Mapping[str, InputSpec], given: Mapping[str, object]) -> tuple[dict[str, object], list[str]]:
    """Return (values, problems); each problem names the input and what was expected."""
    values: dict[str, object] = {}
    problems: list[str] = []
    for name in given:
        if name not in specs:
            declared = ", ".join(sorted(specs)) or "none"
            problems.append(f"unknown input {name!r} (declared inputs: {declared})")
    for name, spec in specs.items():
        if name not in given:
            if spec.required and spec.default is None:
                problems.append(f"input {name!r} is required")
            elif spec.default is not None:
                values[name] = spec.default
            continue
        value, problem = _convert(name, spec, given[name])
        if problem:
            problems.append(problem)
        else:
            values[name] = value
    return values, problems


def _convert(name: str, spec: InputSpec, value: object) -> tuple[object, str | None]:
    if spec.type == "boolean":
        if isinstance(value, bool):
            return value, None
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true", None
        return None, f"input {name!r} must be true or false, got {value!r}"
    if spec.type == "number":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value, None
        try:
            number = float(str(value))
        except ValueError:
            return None, f"input {name!r} must be a number, got {value!r}"
        return (int(number) if number.is_integer() else number), None
    if spec.type == "choice":
        if value not in spec.options:
            return None, f"input {name!r} must be one of {', '.join(map(str, spec.options))}, got {value!r}"
        return value, None
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        return None, f"input {name!r} must be a string, got {value!r}"
    return str(value), None
