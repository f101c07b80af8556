"""Names the user chooses are bounded: job, step, input, output, env, secret and label names.

Each may become part of a NATS subject, a KV key or a log line, so a 5,000-character one could
break far more than its own run (a subject longer than the server's control line closes the
connection of whoever publishes it). The limit is :data:`waterflow_common.limits.MAX_NAME_LENGTH`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from waterflow_common.limits import MAX_NAME_LENGTH

from .report import Report
from .yaml_source import Path


def check(report: Report, document: dict[str, Any]) -> None:
    """Report every name over the limit, at the name itself."""
    for path, name, what in _names(document):
        if isinstance(name, str) and len(name) > MAX_NAME_LENGTH:
            report.error(path, "limit", f"the {what} is {len(name)} characters long, over the limit of {MAX_NAME_LENGTH}",
                         f"use a {what} of at most {MAX_NAME_LENGTH} characters", key=what != "step id" and what != "label")


def _keys(mapping: object, path: Path, what: str) -> Iterator[tuple[Path, object, str]]:
    if isinstance(mapping, dict):
        for key in mapping:
            yield (*path, key), key, what


def _names(document: dict[str, Any]) -> Iterator[tuple[Path, object, str]]:
    yield from _keys(document.get("inputs"), ("inputs",), "input name")
    yield from _keys(document.get("outputs"), ("outputs",), "output name")
    yield from _keys(document.get("env"), ("env",), "variable name")
    on = document.get("on")
    if isinstance(on, dict):
        for trigger in ("workflow_dispatch", "workflow_call"):
            section = on.get(trigger)
            if isinstance(section, dict):
                yield from _keys(section.get("inputs"), ("on", trigger, "inputs"), "input name")
    jobs = document.get("jobs")
    if not isinstance(jobs, dict):
        return
    for job_id, job in jobs.items():
        yield ("jobs", job_id), job_id, "job id"
        if not isinstance(job, dict):
            continue
        yield from _keys(job.get("outputs"), ("jobs", job_id, "outputs"), "output name")
        yield from _keys(job.get("env"), ("jobs", job_id, "env"), "variable name")
        yield from _keys(job.get("secrets"), ("jobs", job_id, "secrets"), "secret name")
        runs_on = job.get("runs-on")
        if isinstance(runs_on, dict) and isinstance(runs_on.get("labels"), list):
            for i, label in enumerate(runs_on["labels"]):
                yield ("jobs", job_id, "runs-on", "labels", i), label, "label"
        steps = job.get("steps")
        for index, step in enumerate(steps if isinstance(steps, list) else ()):
            if isinstance(step, dict):
                yield ("jobs", job_id, "steps", index, "id"), step.get("id"), "step id"
                yield from _keys(step.get("env"), ("jobs", job_id, "steps", index, "env"), "variable name")
