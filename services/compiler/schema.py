"""The DSL's JSON Schema, and the translation of schema violations into readable diagnostics.

jsonschema's own messages (``'x' is not valid under any of the given schemas``) describe the
schema, not the user's mistake; each rule below rewrites one kind of violation into what an ops
engineer needs: which key, where, what was expected, and a likely fix.
"""

from __future__ import annotations

import difflib
import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match
from waterflow_common.diagnostics import Diagnostic

from .yaml_source import Path, Positions, dotted

_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "a boolean",
    "null": "nothing (null)",
}


@cache
def workflow_schema() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("workflow.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator() -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(workflow_schema())
    return cls(workflow_schema())


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "nothing (null)"
    for name, python_type in (("object", dict), ("array", list), ("string", str), ("number", (int, float))):
        if isinstance(value, python_type):
            return _TYPE_NAMES[name]
    return type(value).__name__


def _expected_types(error: ValidationError) -> list[str]:
    types: list[str] = []
    schemas = error.validator_value if error.validator in ("anyOf", "oneOf") else [error.schema]
    for sub in schemas if isinstance(schemas, list) else []:
        if isinstance(sub, dict) and isinstance(sub.get("$ref"), str) and sub["$ref"].startswith("#/$defs/"):
            sub = workflow_schema()["$defs"].get(sub["$ref"].removeprefix("#/$defs/"), sub)
        if not isinstance(sub, dict):
            continue
        declared = sub.get("type")
        for name in declared if isinstance(declared, list) else [declared] if declared else []:
            label = _TYPE_NAMES.get(str(name), str(name))
            if name == "string" and "pattern" in sub and "\\$\\{\\{" in sub["pattern"]:
                label = "a ${{ }} expression"
            if label not in types:
                types.append(label)
    return types


def _either(options: list[str]) -> str:
    return options[0] if len(options) == 1 else ", ".join(options[:-1]) + " or " + options[-1]


def check(document: Any, positions: Positions, filename: str) -> list[Diagnostic]:
    """Validate ``document`` against the workflow schema; one diagnostic per violation."""
    diagnostics: list[Diagnostic] = []
    for error in _validator().iter_errors(document):
        diagnostics.extend(_translate(error, positions, filename))
    return diagnostics


def _translate(error: ValidationError, positions: Positions, filename: str) -> list[Diagnostic]:
    path: Path = tuple(error.absolute_path)
    where = dotted(path) or "the top level"

    def at(p: Path, rule: str, message: str, hint: str | None = None, key: bool = False) -> Diagnostic:
        line, col = positions.of_key(p) if key else positions.of_value(p)
        return Diagnostic(path=filename, line=line, col=col, rule=rule, message=message, hint=hint, key=dotted(p) or None)

    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}) if isinstance(error.schema, dict) else {})
        out = []
        for name in error.instance:
            if name in allowed:
                continue
            close = difflib.get_close_matches(name, allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed keys: {', '.join(allowed)}"
            out.append(at((*path, name), "unknown-key", f"unknown key {name!r} in {where}", hint, key=True))
        return out
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else str(error.validator_value)
        return [at(path, "missing-key", f"{where} is missing the required key {missing!r}")]
    if error.validator == "type" or error.validator in ("anyOf", "oneOf"):
        if error.validator != "type" and error.context:
            # If the value had the right type for one alternative, report what is wrong inside it.
            right_type = [e for e in error.context if e.validator not in ("type", "pattern", "anyOf", "oneOf")]
            if right_type:
                return _translate(min(right_type, key=lambda e: len(e.absolute_path)), positions, filename)
            deep = best_match(error.context)
            if deep is not None and deep.validator not in ("type", "pattern") and list(deep.absolute_path) != list(path):
                return _translate(deep, positions, filename)
        expected = _expected_types(error) or [str(error.validator_value)]
        return [at(path, "type", f"{where} must be {_either(expected)}, found {_describe(error.instance)}")]
    if error.validator == "minProperties":
        return [at(path, "empty", f"{where} must not be empty", "define at least one job")]
    if error.validator == "pattern":
        return [at(path, "invalid-value", f"{where} value {error.instance!r} is not valid",
                   "use letters, digits, '-' and '_', starting with a letter or '_'")]
    if error.validator == "enum":
        options = ", ".join(map(str, error.validator_value if isinstance(error.validator_value, list) else []))
        return [at(path, "invalid-value", f"{where} must be one of {options}, found {error.instance!r}")]
    if error.validator == "minimum":
        return [at(path, "invalid-value", f"{where} must be at least {error.validator_value}, found {error.instance!r}")]
    if error.validator == "exclusiveMinimum":
        return [at(path, "invalid-value", f"{where} must be more than {error.validator_value}, found {error.instance!r}")]
    if error.validator == "minLength":
        return [at(path, "invalid-value", f"{where} must not be empty")]
    return [at(path, "schema", f"{where}: {error.message}")]
