"""Workflow-level fields: ``inputs``, ``on``, ``concurrency``, ``vars``."""

from __future__ import annotations

import re
from typing import Any

from waterflow_common.plan import Concurrency, InputSpec
from waterflow_common.triggers import cron_problem

from .report import Report, did_you_mean
from .yaml_source import Path

INPUT_TYPES = ("string", "number", "boolean", "choice")
TRIGGERS = ("manual", "schedule", "webhook")
_GITHUB_TRIGGERS = {"workflow_dispatch": "manual", "repository_dispatch": "webhook", "push": "webhook",
                    "pull_request": "webhook", "workflow_call": "manual"}
_INPUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def _matches_type(value: object, kind: str) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, str) or (kind == "choice" and isinstance(value, (int, float)))


def inputs(report: Report, raw: object) -> dict[str, InputSpec]:
    out: dict[str, InputSpec] = {}
    if not isinstance(raw, dict):
        return out
    for name, spec in raw.items():
        path = ("inputs", name)
        if not _INPUT_NAME.match(name):
            report.error(path, "invalid-value", f"invalid input name {name!r}",
                         "input names start with a letter or '_' and contain only letters, digits, '-' and '_'", key=True)
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            continue
        kind = spec.get("type", "string")
        if kind not in INPUT_TYPES:
            continue  # reported by the schema
        raw_options = spec.get("options")
        options: list[Any] = raw_options if isinstance(raw_options, list) else []
        if kind == "choice" and not options:
            report.error(path, "input", f"choice input {name!r} has no 'options'", "list the allowed values under 'options:'", key=True)
        elif kind != "choice" and "options" in spec:
            report.warning((*path, "options"), "input", "'options' is only used by 'type: choice' inputs", key=True)
        default = spec.get("default")
        if "default" in spec and default is not None:
            if not _matches_type(default, kind):
                report.error((*path, "default"), "input", f"default of {kind} input {name!r} must be a {kind}, found {default!r}")
            elif kind == "choice" and options and default not in options:
                report.error((*path, "default"), "input", f"default {default!r} of input {name!r} is not one of its options",
                             f"options: {', '.join(map(str, options))}")
        required = spec.get("required") is True
        out[name] = InputSpec(
            type=kind, required=required, default=default,
            description=spec["description"] if isinstance(spec.get("description"), str) else "",
            options=tuple(options),
        )
    return out


def triggers(report: Report, raw: object) -> dict[str, object]:
    """``on`` normalized to a mapping trigger -> settings (None when it has none)."""
    if raw is None:
        return {}
    if isinstance(raw, str):
        entries: dict[str, Any] = {raw: None}
    elif isinstance(raw, list):
        entries = {item: None for item in raw if isinstance(item, str)}
    elif isinstance(raw, dict):
        entries = dict(raw)
    else:
        return {}
    for index, name in enumerate(entries):
        path: Path = ("on", name) if isinstance(raw, dict) else ("on", index) if isinstance(raw, list) else ("on",)
        if name not in TRIGGERS:
            hint = (f"Waterflow's equivalent is {_GITHUB_TRIGGERS[name]!r}" if name in _GITHUB_TRIGGERS
                    else did_you_mean(name, TRIGGERS, listing="triggers"))
            report.warning(path, "unknown-trigger", f"unknown trigger {name!r}; it is recorded but nothing starts runs from it",
                           hint, key=isinstance(raw, dict))
    schedule = entries.get("schedule")
    if isinstance(schedule, list):
        for index, item in enumerate(schedule):
            cron = item.get("cron") if isinstance(item, dict) else None
            cron_path: Path = ("on", "schedule", index, "cron")
            if not isinstance(cron, str):
                report.error(("on", "schedule", index), "schedule", "each schedule entry needs 'cron: \"<min> <hour> <day> <month> <weekday>\"'")
            elif (problem := cron_problem(cron)) is not None:
                report.error(cron_path, "schedule", f"invalid cron expression {cron[:60]!r}: {problem}",
                             "five fields: minute hour day-of-month month day-of-week, e.g. '30 2 * * 1-5' "
                             "(six with a leading seconds field)")
    elif "schedule" in entries and schedule is not None:
        report.error(("on", "schedule"), "schedule", "'schedule' must be a list of '- cron: ...' entries")
    return entries


def concurrency(report: Report, raw: object) -> Concurrency | None:
    if isinstance(raw, str):
        return Concurrency(group=raw) if raw.strip() else None
    if not isinstance(raw, dict):
        return None
    group = raw.get("group")
    if not isinstance(group, str) or not group.strip():
        if "group" not in raw:
            report.error(("concurrency",), "missing-key", "'concurrency' needs a 'group'",
                         "e.g. 'group: deploy-${{ inputs.environment }}'")
        return None
    cancel = raw.get("cancel-in-progress", False)
    if isinstance(cancel, str):
        report.error(("concurrency", "cancel-in-progress"), "not-supported",
                     "an expression in 'cancel-in-progress' is not supported by this version of Waterflow yet", "write true or false")
        cancel = False
    return Concurrency(group=group, cancel_in_progress=cancel is True)
