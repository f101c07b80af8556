"""``waterflow dry-run``: what a workflow would do, without running anything.

Shows the compiled plan the scheduler would receive: jobs level by level (a level starts when the
previous one is done), the server group each job targets, matrix combinations and steps.
"""

from __future__ import annotations

import json
from typing import Any

from waterflow_common.plan import JobPlan, Plan, StepPlan
from waterflow_compiler.graph import levels

__all__ = ["render_plan"]


def _minutes(value: float | str) -> str:
    """A timeout as written: minutes, or the expression evaluated at run time."""
    return f"{value} (evaluated at run time)" if isinstance(value, str) else f"{value:g} min"


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _target(job: JobPlan) -> str:
    text = f"group {job.runs_on}"
    if job.each:
        text = f"every agent of group {job.runs_on}"
    if job.labels:
        text += f" with labels {', '.join(job.labels)}"
    return text


def _step(step: StepPlan) -> list[str]:
    kind = f"uses {step.uses}" if step.uses else f"run ({step.shell or 'bash'})"
    head = f"{step.index + 1}. {step.name}" + (f"  [id: {step.id}]" if step.id else "") + f"  — {kind}"
    lines = [head]
    details = []
    if step.if_:
        details.append(f"if: {step.if_}")
    if step.with_:
        details.append("with: " + ", ".join(f"{k}={_value(v)}" for k, v in step.with_.items()))
    if step.retry and step.retry.attempts > 1:
        details.append(f"retry: {step.retry.attempts} attempts, {step.retry.initial_interval:g}s × {step.retry.backoff_coefficient:g} up to {step.retry.max_interval:g}s")
    if step.timeout_minutes:
        details.append(f"timeout: {_minutes(step.timeout_minutes)}")
    if step.continue_on_error:
        details.append("continue-on-error" + (f": {step.continue_on_error}" if isinstance(step.continue_on_error, str) else ""))
    if step.working_directory:
        details.append(f"working-directory: {step.working_directory}")
    lines.extend(f"     {d}" for d in details)
    return lines


def render_plan(plan: Plan) -> str:
    """The plan as text, e.g. ``print(render_plan(compile_workflow(src)[0]))``."""
    out = [f"workflow {plan.name} ({plan.source_name})"]
    if plan.on:
        out.append("  triggers: " + ", ".join(plan.on))
    if plan.inputs:
        out.append("  inputs: " + ", ".join(
            f"{name} ({spec.type}{', required' if spec.required else ''}{f', default {_value(spec.default)}' if spec.default is not None else ''})"
            for name, spec in plan.inputs.items()))
    if plan.concurrency:
        out.append(f"  concurrency: {plan.concurrency.group}" + (" (cancels the run in progress)" if plan.concurrency.cancel_in_progress else " (queued)"))
    if plan.timeout_minutes:
        out.append(f"  timeout: {plan.timeout_minutes:g} min")
    for number, level in enumerate(levels({j: plan.jobs[j].needs for j in plan.jobs}), start=1):
        out.append(f"level {number}:")
        for job_id in level:
            job = plan.jobs[job_id]
            name = f" ({job.name})" if job.name != job.id else ""
            out.append(f"  job {job.id}{name} → {_target(job)}" + (f"  needs: {', '.join(job.needs)}" if job.needs else ""))
            if job.if_:
                out.append(f"    if: {job.if_}")
            if job.matrix:
                limits = [] if job.fail_fast else ["no fail-fast"]
                if job.max_parallel:
                    limits.append(f"max {job.max_parallel} at once")
                out.append(f"    matrix: {len(job.matrix)} combination{'s' if len(job.matrix) != 1 else ''}" + (f" ({', '.join(limits)})" if limits else ""))
                out.extend("      - " + ", ".join(f"{k}={_value(v)}" for k, v in combo.items()) for combo in job.matrix)
            elif job.matrix_expression:
                out.append(f"    matrix: computed at run time from {job.matrix_expression}")
            elif job.matrix_template:
                out.append("    matrix: evaluated when the job starts (it holds ${{ }} expressions)")
            if job.timeout_minutes:
                out.append(f"    timeout: {_minutes(job.timeout_minutes)}")
            if job.continue_on_error:
                out.append("    continue-on-error" + (f": {job.continue_on_error}" if isinstance(job.continue_on_error, str) else ""))
            if job.outputs:
                out.append("    outputs: " + ", ".join(job.outputs))
            out.append("    steps:")
            for step in job.steps:
                out.extend("      " + line for line in _step(step))
    return "\n".join(out)
