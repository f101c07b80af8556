"""Node steps (``uses: <name>@<version>`` + ``with:``) checked against a catalog of node schemas.

A node declares its inputs as a JSON Schema; the compiler validates ``with:`` against it, so a typo
fails at ``waterflow validate`` rather than on an agent at run time (STYLE §6). The built-in nodes'
schemas come from the node contract in ``waterflow_common.nodes``, not from agent code; agents
add what their plugins offer through their registration (:func:`with_specs`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError

from waterflow_common.durations import DURATION_SCHEMA
from waterflow_common.nodes import USES, NodeCatalog, builtin_catalog

from .report import Report, did_you_mean
from .yaml_source import Path

SLEEP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["seconds"],
    "properties": {"seconds": DURATION_SCHEMA},
}

MINIMAL_CATALOG: NodeCatalog = {"sleep": {"v1": SLEEP_SCHEMA}}
"""The nodes the scheduler runs itself (a test catalog of its own)."""


@cache
def default_catalog() -> NodeCatalog:
    """The built-in nodes (the shared node contract), the scheduler's own included."""
    catalog = builtin_catalog()
    for name, versions in MINIMAL_CATALOG.items():
        catalog.setdefault(name, dict(versions))
    return catalog


def with_specs(catalog: NodeCatalog, specs: Iterable[Any]) -> NodeCatalog:
    """``catalog`` plus nodes described by ``specs`` (objects or mappings with ``name``, ``version``,
    ``schema`` and ``status``, as agents publish them in their registration). A node without a
    schema accepts any ``with:``; failed plugins are left out, so using one is an error."""
    merged: dict[str, dict[str, Mapping[str, Any]]] = {name: dict(versions) for name, versions in catalog.items()}
    for spec in specs:
        get = spec.get if isinstance(spec, Mapping) else (lambda key, s=spec: getattr(s, key, None))
        name, version, schema = get("name"), get("version"), get("schema")
        if get("status") not in (None, "ok") or not isinstance(name, str) or not isinstance(version, str):
            continue
        merged.setdefault(name, {}).setdefault(version, schema if isinstance(schema, Mapping) and schema else {"type": "object"})
    return merged


_validators: dict[int, tuple[Mapping[str, Any], Any]] = {}


def _validator(schema: Mapping[str, Any]) -> Any:
    cached = _validators.get(id(schema))
    if cached is None or cached[0] is not schema:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        cached = (schema, cls(schema))
        _validators[id(schema)] = cached
    return cached[1]


def _is_expression(value: object) -> bool:
    return isinstance(value, str) and "${{" in value


def check_step(report: Report, path: Path, uses: str, with_: object, catalog: NodeCatalog) -> None:
    """Check ``uses`` at ``path + ("uses",)`` and its ``with`` against the node's schema."""
    uses_path = (*path, "uses")
    match = USES.match(uses.strip())
    if match is None:
        name = uses.split("@", 1)[0].strip()
        hint = (f"add a version, e.g. '{name}@v1'" if "@" not in uses
                else "write '<node>@v<major>', e.g. 'sleep@v1'")
        if name in catalog:
            hint = f"write '{name}@{_latest(catalog[name])}'"
        report.error(uses_path, "node-ref", f"invalid node reference {uses!r}", hint)
        return
    name, version = match["name"], match["version"]
    versions = catalog.get(name)
    if versions is None:
        report.error(uses_path, "unknown-node", f"unknown node {name!r}", did_you_mean(name, catalog, listing="available nodes"))
        return
    schema = versions.get(version)
    if schema is None:
        report.error(uses_path, "node-version", f"node {name!r} has no version {version!r}",
                     f"available versions: {', '.join(sorted(versions))}")
        return
    if with_ is not None and not isinstance(with_, dict):
        return  # the workflow schema already reported the type
    _check_with(report, (*path, "with"), with_ or {}, schema, name, path)


def _latest(versions: Mapping[str, Any]) -> str:
    def number(v: str) -> tuple[int, ...]:
        return tuple(int(p) for p in v[1:].split(".") if p.isdigit())

    return max(versions, key=number) if versions else "v1"


def _check_with(report: Report, path: Path, with_: dict[str, Any], schema: Mapping[str, Any], name: str, step: Path) -> None:
    try:
        errors = list(_validator(schema).iter_errors(with_))
    except Exception as problem:  # noqa: BLE001 - a broken node schema is the node library's bug, not the user's
        report.error((*step, "uses"), "node-schema", f"node {name!r} has an invalid input schema: {problem}")
        return
    for error in errors:
        _translate(report, path, error, name, step, with_)


def _translate(report: Report, path: Path, error: ValidationError, name: str, step: Path, with_: dict[str, Any]) -> None:
    where: Path = (*path, *error.absolute_path)
    schema: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    label = ".".join(str(p) for p in error.absolute_path)
    if _is_expression(error.instance):
        return  # evaluated at run time; its type cannot be known here
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = list(schema.get("properties", {}))
        for key in error.instance:
            if key not in allowed and not any(re.search(p, key) for p in schema.get("patternProperties", {})):
                report.error((*where, key), "node-input", f"node {name!r} has no input {key!r}",
                             did_you_mean(key, allowed, listing="its inputs are"), key=True)
        return
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else str(error.validator_value)
        target: Path = where if (with_ or error.absolute_path) else (*step, "uses")
        report.error(target, "node-input", f"node {name!r} requires the input {missing!r}",
                     f"add '{missing}:' under 'with:'", key=bool(with_) and not error.absolute_path)
        return
    if error.validator in ("anyOf", "oneOf") and error.context:
        types = [_TYPE_NAMES.get(str(sub.validator_value), str(sub.validator_value)) for sub in error.context if sub.validator == "type"]
        if any(_is_expression(sub.instance) for sub in error.context):
            return
        if types and len(types) == len(error.context):
            report.error(where, "node-input", f"input {label!r} of node {name!r} must be {' or '.join(types)}, found {_kind(error.instance)}",
                         _description(schema))
            return
        described = _description(schema)
        report.error(where, "node-input", f"input {label!r} of node {name!r} is not valid: {error.instance!r}", described)
        return
    message = error.message if len(error.message) < 160 else error.message[:157] + "..."
    report.error(where, "node-input", f"input {label or 'with'!r} of node {name!r}: {message}", _description(schema))


_TYPE_NAMES = {"object": "a mapping", "array": "a list", "string": "a string", "number": "a number",
               "integer": "a whole number", "boolean": "true or false", "null": "null"}


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    for python_type, label in ((dict, "a mapping"), (list, "a list"), (str, "a string"), ((int, float), "a number")):
        if isinstance(value, python_type):
            return label
    return type(value).__name__


def _description(schema: Any) -> str | None:
    return schema.get("description") if isinstance(schema, dict) and isinstance(schema.get("description"), str) else None
