"""Jobs and steps of the plan, built from the parts of the document that are well-formed.

The JSON Schema has already reported wrong types; here a value of the wrong type is skipped
silently (so each mistake is reported once) and everything else is still checked, so one compile
shows every problem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from waterflow_common.plan import JobPlan, RetryPolicy, StepPlan

from . import matrix as matrix_module
from . import nodes
from waterflow_common import subjects
from waterflow_common.durations import DURATION_HINT, parse_duration
from waterflow_common.limits import MAX_NAME_LENGTH, MAX_RETRY_ATTEMPTS, MIN_RETRY_INTERVAL_SECONDS
from .graph import needs_of
from .report import Report
from .yaml_source import Path

SHELLS = ("bash", "sh", "python", "pwsh")
_EXPRESSION = re.compile(r"^\s*\$\{\{.*\}\}\s*$", re.DOTALL)


@dataclass(frozen=True)
class RunDefaults:
    """``defaults.run`` after merging the workflow's and the job's."""

    shell: str | None = None
    working_directory: str | None = None

    def merged(self, raw: object) -> RunDefaults:
        run = raw.get("run") if isinstance(raw, dict) else None
        if not isinstance(run, dict):
            return self
        shell = run.get("shell")
        directory = run.get("working-directory")
        return RunDefaults(
            shell=shell if isinstance(shell, str) else self.shell,
            working_directory=directory if isinstance(directory, str) else self.working_directory,
        )


def env_of(raw: object) -> dict[str, str]:
    """Env values as strings, as a shell sees them (GitHub turns true into 'true')."""
    out: dict[str, str] = {}
    if not isinstance(raw, dict):
        return out
    for key, value in raw.items():
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            out[key] = str(value)
    return out


def is_expression(value: object) -> bool:
    return isinstance(value, str) and _EXPRESSION.match(value) is not None


def literal_number(report: Report, path: Path, value: object, what: str) -> float | None:
    """A number field; an expression there is reported (the plan carries numbers only)."""
    if is_expression(value):
        report.error(path, "not-supported", f"an expression in '{what}' is not supported by this version of Waterflow yet",
                     "write a number")
        return None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def number_or_expression(report: Report, path: Path, value: object, what: str) -> float | str | None:
    """A number, or a ``${{ }}`` expression the scheduler evaluates (checked by expression_check)."""
    if is_expression(value):
        return str(value).strip()
    return literal_number(report, path, value, what)


def bool_or_expression(report: Report, path: Path, value: object, what: str, default: bool) -> bool | str:
    if is_expression(value):
        return str(value).strip()
    return literal_bool(report, path, value, what, default)


def literal_bool(report: Report, path: Path, value: object, what: str, default: bool) -> bool:
    if is_expression(value):
        report.error(path, "not-supported", f"an expression in '{what}' is not supported by this version of Waterflow yet",
                     "write true or false")
        return default
    return value if isinstance(value, bool) else default


def condition(value: object) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value if isinstance(value, str) and value.strip() else None


def build_job(report: Report, job_id: str, job: dict[str, Any], defaults: RunDefaults,
              catalog: nodes.NodeCatalog) -> JobPlan | None:
    path: Path = ("jobs", job_id)
    group, each, labels = _runs_on(report, job_id, job)
    raw_strategy = job.get("strategy")
    strategy: dict[str, Any] = raw_strategy if isinstance(raw_strategy, dict) else {}
    combos: tuple[dict[str, object], ...] = ()
    matrix_expression: str | None = None
    matrix_template: dict[str, Any] | None = None
    raw_matrix = strategy.get("matrix")
    if isinstance(raw_matrix, str):
        if is_expression(raw_matrix):
            matrix_expression = raw_matrix.strip()
        else:
            report.error((*path, "strategy", "matrix"), "matrix", "a matrix must be a mapping or one '${{ }}' expression",
                         "e.g. 'matrix: {os: [linux, mac]}' or 'matrix: ${{ fromJSON(needs.setup.outputs.list) }}'")
    elif isinstance(raw_matrix, dict) and _has_expression(raw_matrix):
        matrix_template = raw_matrix  # evaluated and expanded when the job starts
    elif isinstance(raw_matrix, dict):
        combos = matrix_module.expand(report, (*path, "strategy", "matrix"), raw_matrix) or ()
    elif "strategy" in job and raw_matrix is None and isinstance(job.get("strategy"), dict) and not each:
        # a fan-out (each: true) needs no matrix: max-parallel and fail-fast apply to its servers
        # (a rolling deploy is `max-parallel: 1`)
        report.error((*path, "strategy"), "missing-key", "'strategy' has no 'matrix'", "add 'matrix:' or remove 'strategy'")
    max_parallel = strategy.get("max-parallel")
    if is_expression(max_parallel):
        report.error((*path, "strategy", "max-parallel"), "not-supported",
                     "an expression in 'max-parallel' is not supported by this version of Waterflow yet", "write a whole number")
        max_parallel = None
    elif isinstance(max_parallel, int) and not isinstance(max_parallel, bool) and max_parallel < 1:
        report.error((*path, "strategy", "max-parallel"), "invalid-value", "'max-parallel' must be at least 1")
        max_parallel = None
    elif isinstance(max_parallel, str):
        max_parallel = None  # the schema reported it
    job_defaults = defaults.merged(job.get("defaults"))
    steps_raw = job.get("steps")
    steps_list = steps_raw if isinstance(steps_raw, list) else []
    if "steps" not in job:
        report.error(path, "missing-key", f"job {job_id!r} has no 'steps'", "add a 'steps:' list", key=True)
    elif isinstance(steps_raw, list) and not steps_raw:
        report.error((*path, "steps"), "empty", f"job {job_id!r} has no steps", "add at least one step", key=True)
    steps: list[StepPlan] = []
    seen_ids: dict[str, int] = {}
    for index, step in enumerate(steps_list):
        if not isinstance(step, dict):
            continue
        step_id = step.get("id")
        if isinstance(step_id, str):
            if step_id.lower() in seen_ids:
                report.error((*path, "steps", index, "id"), "duplicate-step-id",
                             f"step id {step_id!r} is already used by step {seen_ids[step_id.lower()] + 1} of job {job_id!r}",
                             "step ids must be unique within a job")
            seen_ids.setdefault(step_id.lower(), index)
        steps.append(build_step(report, job_id, index, step, job_defaults, catalog))
    outputs = job.get("outputs")
    if group is None:
        return None
    return JobPlan(
        id=job_id,
        name=str(job["name"]) if isinstance(job.get("name"), str) else job_id,
        runs_on=group,
        each=each,
        labels=labels,
        needs=tuple(dict.fromkeys(needs_of(job))),
        if_=condition(job.get("if")),
        env=env_of(job.get("env")),
        timeout_minutes=number_or_expression(report, (*path, "timeout-minutes"), job.get("timeout-minutes"), "timeout-minutes"),
        continue_on_error=bool_or_expression(report, (*path, "continue-on-error"), job.get("continue-on-error"), "continue-on-error", False),
        outputs={k: str(v) for k, v in outputs.items() if isinstance(v, (str, int, float))} if isinstance(outputs, dict) else {},
        matrix=combos,
        matrix_expression=matrix_expression,
        matrix_template=matrix_template,
        fail_fast=literal_bool(report, (*path, "strategy", "fail-fast"), strategy.get("fail-fast"), "fail-fast", True),
        max_parallel=max_parallel if isinstance(max_parallel, int) and not isinstance(max_parallel, bool) else None,
        steps=tuple(steps),
    )


def _has_expression(value: object) -> bool:
    if isinstance(value, str):
        return "${{" in value
    if isinstance(value, dict):
        return any(_has_expression(k) or _has_expression(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_expression(item) for item in value)
    return False


def _runs_on(report: Report, job_id: str, job: dict[str, Any]) -> tuple[str | None, bool, tuple[str, ...]]:
    path: Path = ("jobs", job_id, "runs-on")
    runs_on = job.get("runs-on")
    if "runs-on" not in job:
        report.error(("jobs", job_id), "missing-key", f"job {job_id!r} has no 'runs-on'",
                     "name the server group that runs it, e.g. 'runs-on: web'", key=True)
        return None, False, ()
    each, labels = False, tuple[str, ...]()
    if isinstance(runs_on, dict):
        group = runs_on.get("group")
        each = runs_on.get("each") is True
        raw_labels = runs_on.get("labels")
        if isinstance(raw_labels, list):
            labels = tuple(str(label) for label in raw_labels if isinstance(label, (str, int, float)))
        path = (*path, "group")
    else:
        group = runs_on
    if not isinstance(group, str):
        return None, each, labels
    if len(group) > MAX_NAME_LENGTH:
        report.error(path, "limit", f"the server group name is {len(group)} characters long, over the limit of {MAX_NAME_LENGTH}",
                     "use a shorter group name")
        return None, each, labels
    if "${{" not in group:
        try:
            subjects.check_group(group)
        except ValueError as error:
            report.error(path, "invalid-value", str(error), "e.g. 'web', 'db-eu' or 'ubuntu-22.04'")
    return group, each, labels


def build_step(report: Report, job_id: str, index: int, step: dict[str, Any], defaults: RunDefaults,
               catalog: nodes.NodeCatalog) -> StepPlan:
    path: Path = ("jobs", job_id, "steps", index)
    run, uses = step.get("run"), step.get("uses")
    if ("run" in step) == ("uses" in step):
        report.error(path, "step-shape", "a step needs exactly one of 'run' or 'uses'",
                     "use 'run:' for a shell command, or 'uses: <node>@<version>' for a node")
    if isinstance(uses, str):
        nodes.check_step(report, path, uses, step.get("with"), catalog)
    if "run" in step:
        for key in ("with",):
            if key in step:
                report.error((*path, key), "step-shape", f"'{key}' is only for node steps ('uses:')",
                             "pass values to a script through 'env:'", key=True)
    elif "uses" in step:
        for key in ("shell",):
            if key in step:
                report.error((*path, key), "step-shape", f"'{key}' is only for 'run:' steps", "remove it", key=True)
    shell = step.get("shell") if isinstance(step.get("shell"), str) else None
    if shell is not None and shell not in SHELLS and "{0}" not in shell and "${{" not in shell:
        report.error((*path, "shell"), "invalid-value", f"unknown shell {shell!r}",
                     f"use one of {', '.join(SHELLS)}, or a command with '{{0}}' for the script path")
    working_directory = step.get("working-directory") if isinstance(step.get("working-directory"), str) else None
    if isinstance(run, str):
        shell = shell or defaults.shell
        working_directory = working_directory or defaults.working_directory
    if isinstance(run, str):
        default_name = "Run " + ((run.strip().splitlines() or [""])[0][:60])
    else:
        default_name = uses if isinstance(uses, str) else f"step {index + 1}"
    line, _ = report.positions.of_value(path)
    name = step.get("name")
    return StepPlan(
        index=index,
        id=step["id"] if isinstance(step.get("id"), str) else None,
        name=name if isinstance(name, str) and name else default_name,
        run=run if isinstance(run, str) else None,
        shell=shell,
        uses=uses.strip() if isinstance(uses, str) else None,
        with_=dict(step["with"]) if isinstance(step.get("with"), dict) else {},
        env=env_of(step.get("env")),
        working_directory=working_directory,
        if_=condition(step.get("if")),
        timeout_minutes=number_or_expression(report, (*path, "timeout-minutes"), step.get("timeout-minutes"), "timeout-minutes"),
        continue_on_error=bool_or_expression(report, (*path, "continue-on-error"), step.get("continue-on-error"), "continue-on-error", False),
        retry=_retry(report, (*path, "retry"), step.get("retry")),
        line=line,
    )


def shorten(value: object, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters: user values in messages stay readable."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def _retry(report: Report, path: Path, raw: object) -> RetryPolicy | None:
    if not isinstance(raw, dict):
        return None
    values: dict[str, Any] = {}
    attempts = raw.get("attempts")
    if isinstance(attempts, int) and not isinstance(attempts, bool) and attempts >= 1:
        if attempts > MAX_RETRY_ATTEMPTS:
            report.error((*path, "attempts"), "limit", f"'attempts' is {attempts}, over the limit of {MAX_RETRY_ATTEMPTS}",
                         "retry fewer times, with a longer 'max-interval'")
        values["attempts"] = min(attempts, MAX_RETRY_ATTEMPTS)
    for key, field in (("initial-interval", "initial_interval"), ("max-interval", "max_interval")):
        if key not in raw:
            continue
        seconds = parse_duration(raw[key])
        if seconds is None:
            report.error((*path, key), "duration", f"'{key}' is not a duration: {shorten(raw[key])}", DURATION_HINT)
        elif seconds < MIN_RETRY_INTERVAL_SECONDS:
            report.error((*path, key), "limit", f"'{key}' is {seconds:g}s; retries wait at least {MIN_RETRY_INTERVAL_SECONDS:g}s",
                         f"write '{MIN_RETRY_INTERVAL_SECONDS:g}s' or more (durable timers have one-second resolution)")
        else:
            values[field] = seconds
    coefficient = raw.get("backoff-coefficient")
    if isinstance(coefficient, (int, float)) and not isinstance(coefficient, bool) and coefficient >= 1:
        values["backoff_coefficient"] = float(coefficient)
    policy = RetryPolicy(**values)
    if policy.max_interval < policy.initial_interval:
        report.warning((*path, "max-interval"), "retry", "'max-interval' is shorter than 'initial-interval'",
                       "every retry will wait 'max-interval'")
    return policy
