"""compile_workflow: YAML text -> (Plan, diagnostics). Never raises for a user's mistake.

Order of work: parse YAML with positions, check against the JSON Schema, then the rules a schema
cannot express (job graph, step shape). All problems are collected and returned together, like
actionlint, so one round trip shows everything that is wrong.
"""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Any

from waterflow_common.diagnostics import Diagnostic, has_errors, sort_key
from waterflow_common.plan import JobPlan, Plan, StepPlan

from . import schema, yaml_source
from .yaml_source import Path, Positions

_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
SHELLS = ("bash", "sh", "python", "pwsh")


class _Context:
    """What each check needs: the file, positions, and where to put diagnostics."""

    def __init__(self, filename: str, positions: Positions) -> None:
        self.filename = filename
        self.positions = positions
        self.diagnostics: list[Diagnostic] = []

    def error(self, path: Path, rule: str, message: str, hint: str | None = None, *, key: bool = False) -> None:
        line, col = self.positions.of_key(path) if key else self.positions.of_value(path)
        self.diagnostics.append(Diagnostic(
            path=self.filename, line=line, col=col, rule=rule, message=message, hint=hint,
            key=yaml_source.dotted(path) or None,
        ))


def compile_workflow(source: str, filename: str = "workflow.yml") -> tuple[Plan | None, list[Diagnostic]]:
    """Compile a workflow; the plan is None whenever there is at least one error."""
    document, positions, diagnostics = yaml_source.load(source, filename)
    if document is None:
        return None, diagnostics
    ctx = _Context(filename, positions)
    ctx.diagnostics.extend(diagnostics)
    if not isinstance(document, dict):
        ctx.error((), "type", "a workflow must be a mapping with at least a 'jobs' key")
        return None, ctx.diagnostics
    ctx.diagnostics.extend(schema.check(document, positions, filename))
    if has_errors(ctx.diagnostics):
        return None, sorted(ctx.diagnostics, key=sort_key)

    jobs = document["jobs"]
    _check_unsupported(ctx, document)
    order = _check_job_graph(ctx, jobs)
    plan_jobs: dict[str, JobPlan] = {}
    for job_id in order:
        job = _build_job(ctx, job_id, jobs[job_id])
        if job is not None:
            plan_jobs[job_id] = job
    if has_errors(ctx.diagnostics):
        return None, sorted(ctx.diagnostics, key=sort_key)
    plan = Plan(
        name=str(document.get("name") or PurePath(filename).stem),
        source_name=filename,
        env=_env(document.get("env")),
        timeout_minutes=document.get("timeout-minutes"),
        jobs=plan_jobs,
        source=source,
    )
    return plan, sorted(ctx.diagnostics, key=sort_key)


def _env(raw: dict[str, Any] | None) -> dict[str, str]:
    """Env values as strings, as a shell sees them (GitHub turns true into 'true')."""
    out: dict[str, str] = {}
    for key, value in (raw or {}).items():
        out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


_NOT_YET = {
    ("strategy",): "strategy/matrix",
    ("uses",): "calling a reusable workflow with 'uses'",
    ("outputs",): "job outputs",
    ("if",): "job 'if' conditions",
}


def _check_unsupported(ctx: _Context, document: dict[str, Any]) -> None:
    """Keys the schema accepts but this version cannot run yet: an error, never silently ignored."""
    for job_id, job in document["jobs"].items():
        for (key,), what in _NOT_YET.items():
            if key in job:
                ctx.error(("jobs", job_id, key), "not-supported", f"{what} is not supported by this version of Waterflow yet", key=True)
        for index, step in enumerate(job.get("steps") or []):
            for key in ("retry", "if"):
                if key in step:
                    ctx.error(("jobs", job_id, "steps", index, key), "not-supported", f"step {key!r} is not supported by this version of Waterflow yet", key=True)
    for key in ("inputs", "concurrency"):
        if key in document:
            ctx.error((key,), "not-supported", f"workflow {key!r} is not supported by this version of Waterflow yet", key=True)


def _needs(job: dict[str, Any]) -> list[str]:
    needs = job.get("needs") or []
    return [needs] if isinstance(needs, str) else list(needs)


def _check_job_graph(ctx: _Context, jobs: dict[str, Any]) -> list[str]:
    """Check job ids and ``needs``; return the jobs in a topological order (file order on ties)."""
    for job_id in jobs:
        if not _ID.match(job_id):
            ctx.error(("jobs", job_id), "job-id", f"invalid job id {job_id!r}",
                      "job ids start with a letter or '_' and contain only letters, digits, '-' and '_'", key=True)
    for job_id, job in jobs.items():
        for i, need in enumerate(_needs(job)):
            if need not in jobs:
                import difflib

                close = difflib.get_close_matches(need, list(jobs), n=1)
                path: Path = ("jobs", job_id, "needs", i) if isinstance(job.get("needs"), list) else ("jobs", job_id, "needs")
                ctx.error(path, "unknown-job", f"job {job_id!r} needs unknown job {need!r}",
                          f"did you mean {close[0]!r}?" if close else f"defined jobs: {', '.join(jobs)}")
            elif need == job_id:
                ctx.error(("jobs", job_id, "needs"), "cycle", f"job {job_id!r} needs itself")

    order: list[str] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(job_id: str, trail: list[str]) -> None:
        if state.get(job_id) == 2:
            return
        if state.get(job_id) == 1:
            cycle = trail[trail.index(job_id):] + [job_id]
            if len(cycle) > 2:
                ctx.error(("jobs", job_id, "needs"), "cycle", f"jobs depend on each other in a cycle: {' -> '.join(cycle)}",
                          "remove one of these 'needs' so the jobs can be ordered")
            return
        state[job_id] = 1
        for need in _needs(jobs[job_id]):
            if need in jobs and need != job_id:
                visit(need, trail + [job_id])
        state[job_id] = 2
        order.append(job_id)

    for job_id in jobs:
        visit(job_id, [])
    return order


def _build_job(ctx: _Context, job_id: str, job: dict[str, Any]) -> JobPlan | None:
    runs_on = job.get("runs-on")
    if runs_on is None:
        ctx.error(("jobs", job_id), "missing-key", f"job {job_id!r} has no 'runs-on'",
                  "name the server group that runs it, e.g. 'runs-on: web'")
        return None
    group = runs_on if isinstance(runs_on, str) else runs_on.get("group", "")
    if not isinstance(runs_on, str):
        ctx.error(("jobs", job_id, "runs-on"), "not-supported", "fan-out 'runs-on' mappings are not supported by this version of Waterflow yet")
    elif not _ID.match(group):
        ctx.error(("jobs", job_id, "runs-on"), "invalid-value", f"invalid server group {group!r}",
                  "group names contain only letters, digits, '-' and '_'")
    steps_raw = job.get("steps") or []
    if not steps_raw:
        ctx.error(("jobs", job_id), "empty", f"job {job_id!r} has no steps", "add a 'steps:' list")
    steps = tuple(_build_step(ctx, job_id, i, step) for i, step in enumerate(steps_raw))
    return JobPlan(
        id=job_id,
        name=str(job.get("name") or job_id),
        runs_on=group,
        needs=tuple(_needs(job)),
        if_=None if job.get("if") is None else str(job["if"]),
        env=_env(job.get("env")),
        timeout_minutes=job.get("timeout-minutes"),
        continue_on_error=bool(job.get("continue-on-error", False)),
        steps=steps,
    )


def _build_step(ctx: _Context, job_id: str, index: int, step: dict[str, Any]) -> StepPlan:
    path: Path = ("jobs", job_id, "steps", index)
    has_run, has_uses = "run" in step, "uses" in step
    if has_run == has_uses:
        ctx.error(path, "step-shape", "a step needs exactly one of 'run' or 'uses'",
                  "use 'run:' for a shell command, or 'uses: <node>@<version>' for a node")
    if has_uses:
        ctx.error((*path, "uses"), "unknown-node", f"unknown node {step['uses']!r}",
                  "this version runs only 'run:' steps; nodes come with the node library")
    shell = step.get("shell")
    if shell is not None and shell not in SHELLS and "{0}" not in shell:
        ctx.error((*path, "shell"), "invalid-value", f"unknown shell {shell!r}",
                  f"use one of {', '.join(SHELLS)}, or a command with '{{0}}' for the script path")
    run = step.get("run")
    default_name = (run.strip().splitlines() or [""])[0][:60] if isinstance(run, str) else str(step.get("uses", f"step {index + 1}"))
    line, _ = ctx.positions.of_value(path)
    return StepPlan(
        index=index,
        id=step.get("id"),
        name=str(step.get("name") or (f"Run {default_name}" if run else default_name)),
        run=run,
        shell=shell,
        uses=step.get("uses"),
        with_=dict(step.get("with") or {}),
        env=_env(step.get("env")),
        working_directory=step.get("working-directory"),
        if_=None if step.get("if") is None else str(step["if"]),
        timeout_minutes=step.get("timeout-minutes"),
        continue_on_error=bool(step.get("continue-on-error", False)),
        line=line,
    )
