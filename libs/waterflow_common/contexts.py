"""The ``${{ }}`` contexts of a run at one point of its execution, built from its state.

The scheduler evaluates expressions (``if:``, ``with:``, ``env:``, job outputs, a dynamic
``runs-on`` or matrix) at the moment they are needed, from the run's recorded state, so a
re-evaluation after a crash gives the same answer. Names follow GitHub (``steps.<id>.outputs``,
``needs.<job>.result`` with success/failure/cancelled/skipped); ``github`` is provided as an
alias of ``waterflow`` so copied workflows keep working.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from waterflow_common import hashfiles
from waterflow_common.expressions import ExpressionError, JobStatus, evaluate_value, is_truthy
from waterflow_common.plan import JobPlan, Plan, StepPlan
from waterflow_common.state import JobState, RunState, StepState

RESULT_NAMES = {
    "succeeded": "success",
    "failed": "failure",
    "cancelled": "cancelled",
    "skipped": "skipped",
}


def result_name(status: str) -> str | None:
    return RESULT_NAMES.get(status)


def _evaluated_env(raw: dict[str, str], contexts: dict[str, Any], hash_files: Any = None) -> dict[str, str]:
    out = {}
    for key, value in raw.items():
        evaluated = evaluate_value(value, contexts, hash_files=hash_files)
        out[key] = "" if evaluated is None else (evaluated if isinstance(evaluated, str) else _to_text(evaluated))
    return out


def _to_text(value: Any) -> str:
    from waterflow_common.expressions import to_string

    return to_string(value)


def run_context(state: RunState, plan: Plan, secrets: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Contexts available everywhere in the run."""
    run = {
        "id": state.run_id,
        "run_id": state.run_id,
        "run_attempt": state.attempt,
        "workflow": plan.name,
        "event_name": state.event_name,
        "event": state.event if state.event is not None else {},
    }
    return {"inputs": dict(state.inputs), "vars": dict(plan.vars), "secrets": dict(secrets or {}), "waterflow": run, "github": run, "run": run,
            "workflow": {"name": plan.name}}


def needs_context(state: RunState, job: JobPlan) -> dict[str, Any]:
    return {
        need: {"result": result_name(state.jobs[need].status), "outputs": dict(state.jobs[need].outputs)}
        for need in job.needs
    }


def workflow_contexts(state: RunState, plan: Plan, secrets: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The run's contexts with the workflow-level ``env`` evaluated (over them: it may not use
    ``needs``, the compiler checks that)."""
    contexts = run_context(state, plan, secrets)
    contexts["env"] = _evaluated_env(plan.env, contexts)
    return contexts


def job_contexts(
    state: RunState, plan: Plan, job_plan: JobPlan, job: JobState | None = None, secrets: Mapping[str, str] | None = None,
    base: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """For job-level fields (``if``, ``runs-on``, matrix): no ``steps`` yet. ``base``: the
    :func:`workflow_contexts` if already built (see :class:`EventContexts`)."""
    contexts = dict(base) if base is not None else workflow_contexts(state, plan, secrets)
    contexts["needs"] = needs_context(state, job_plan)
    if job is not None and job.matrix is not None:
        contexts["matrix"] = dict(job.matrix)
        contexts["strategy"] = {"fail-fast": job_plan.fail_fast, "max-parallel": job_plan.max_parallel}
    else:
        contexts["matrix"] = {}
    return contexts


def steps_context(job: JobState, before: int) -> dict[str, Any]:
    steps: dict[str, Any] = {}
    for step in job.steps[:before]:
        if step.id:
            steps[step.id] = {"outputs": dict(step.outputs), "outcome": step.outcome, "conclusion": step.conclusion}
    return steps


def step_contexts(
    state: RunState, plan: Plan, job: JobState, step: StepState, secrets: Mapping[str, str] | None = None,
    base: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """For step-level fields (``if``, ``with``, ``env``, the ``run`` script)."""
    job_plan = plan.jobs[job.job]
    return step_contexts_in_job(job_contexts(state, plan, job_plan, job, secrets, base), job_plan, job, step.index)


def step_contexts_in_job(job_ctx: Mapping[str, Any], job_plan: JobPlan, job: JobState, index: int) -> dict[str, Any]:
    """A step's contexts from its job's (:func:`job_contexts`) and the job's steps so far: what
    the scheduler builds from the run's state, and the agent running the job from its job task."""
    contexts = dict(job_ctx)
    contexts["env"] = {**contexts["env"], **_evaluated_env(job_plan.env, contexts)}
    contexts["steps"] = steps_context(job, index)
    contexts["job"] = {"status": job_result_so_far(job).lower()}
    step_plan: StepPlan = job_plan.steps[index]
    # A step's env may use hashFiles(): computed by the agent, in the workspace (hashfiles.py).
    contexts["env"] = {**contexts["env"], **_evaluated_env(step_plan.env, contexts, hashfiles.deferred)}
    if job.agent:
        contexts["agent"] = {"name": job.agent, "group": job.runs_on}
    return contexts


class EventContexts:
    """The contexts of one run while one event is applied.

    The run level (inputs, vars, secrets, ``github``, the workflow's ``env``) cannot change while
    an event is applied, so it is evaluated once per event and shared; the job and step levels
    are built on it when asked, because they depend on what the event has changed so far (the
    results and outputs of needed jobs and of earlier steps). A run retry renumbers the attempt
    (``github.run_attempt``): it calls :meth:`reset`.
    """

    def __init__(self, state: RunState, plan: Plan, secrets: Mapping[str, str]) -> None:
        self.state = state
        self.plan = plan
        self.secrets = secrets
        self._workflow: dict[str, Any] | None = None

    def reset(self) -> None:
        self._workflow = None

    def workflow(self) -> dict[str, Any]:
        if self._workflow is None:
            self._workflow = workflow_contexts(self.state, self.plan, self.secrets)
        return dict(self._workflow)

    def job(self, job_plan: JobPlan, job: JobState | None = None) -> dict[str, Any]:
        return job_contexts(self.state, self.plan, job_plan, job, self.secrets, self.workflow())

    def step(self, job: JobState, step: StepState) -> dict[str, Any]:
        return step_contexts(self.state, self.plan, job, step, self.secrets, self.workflow())


def job_result_so_far(job: JobState) -> str:
    if job.cancelled or job.error:
        return "cancelled"
    if any(s.conclusion == "failure" for s in job.steps):
        return "failure"
    return "success"


def step_status(job: JobState) -> JobStatus:
    """What success()/failure()/cancelled() mean for the next step of ``job``."""
    return JobStatus.from_result(job_result_so_far(job))  # type: ignore[arg-type]


def continues_on_error(state: RunState, plan: Plan, job: JobState) -> bool:
    """The job's ``continue-on-error``: a boolean, or an expression over the job's contexts (for
    a matrix instance, its ``matrix``). An expression that cannot be evaluated counts as false."""
    value = plan.jobs[job.job].continue_on_error
    if not isinstance(value, str):
        return value
    try:
        return is_truthy(evaluate_value(value, job_contexts(state, plan, plan.jobs[job.job], job)))
    except ExpressionError:
        return False


def job_status(state: RunState, plan: Plan, job_plan: JobPlan) -> JobStatus:
    """What success()/failure()/cancelled() mean for a job about to start (over its needs).

    A needed job that failed with ``continue-on-error`` counts as succeeded here.
    """
    if state.cancel_requested:
        return JobStatus.from_result("cancelled")
    results = [
        "succeeded" if state.jobs[n].status == "failed" and continues_on_error(state, plan, state.jobs[n]) else state.jobs[n].status
        for n in job_plan.needs
    ]
    if any(r in ("failed", "cancelled") for r in results):
        return JobStatus(success=False, failure=True, cancelled=False)
    if all(r == "succeeded" for r in results):
        return JobStatus()
    return JobStatus(success=False, failure=False, cancelled=False)


_SECRET_REFERENCE = re.compile(r"secrets\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*'([A-Za-z_][A-Za-z0-9_]*)'\s*\])")


def referenced_secrets(plan_json: bytes) -> set[str]:
    """Secret names a plan mentions (``secrets.NAME`` or ``secrets['NAME']`` in any field)."""
    return {a or b for a, b in _SECRET_REFERENCE.findall(plan_json.decode(errors="replace"))}
