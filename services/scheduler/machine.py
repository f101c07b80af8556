"""The run state machine: (state, plan, event) -> new state + messages to publish.

Pure code, no I/O: the service around it does the reading, writing and publishing, so every rule
of how a run advances can be tested in microseconds and reasoned about on one page.

``apply`` is idempotent: an event that was already applied (a redelivery, a duplicate result
from a second agent that ran a redelivered task) changes nothing and asks for nothing. That is
what makes at-least-once delivery safe.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from waterflow_common import subjects
from waterflow_common.messages import (
    Event,
    JobCompleted,
    JobStarted,
    RunCompleted,
    RunCreated,
    StepDispatched,
    StepFailed,
    StepStarted,
    StepSucceeded,
    StepTask,
    encode,
    utcnow,
)
from waterflow_common.plan import JobPlan, Plan
from waterflow_common.state import TERMINAL, JobState, Outgoing, RunState, StepState


class Effects:
    """Messages decided while applying one event, in the order they must be published."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.outgoing: list[Outgoing] = []

    def event(self, event: Event) -> None:
        self.outgoing.append(Outgoing(
            subject=subjects.event(event.run_id, event.type), msg_id=event.msg_id(), data=encode(event), at=self.now,
        ))

    def task(self, task: StepTask) -> None:
        self.outgoing.append(Outgoing(
            subject=subjects.group_tasks(task.group), msg_id=f"{task.key}:task", data=encode(task), at=self.now,
        ))


def apply(state: RunState, plan: Plan, event: Event, now: datetime | None = None) -> list[Outgoing]:
    """Apply ``event`` to ``state`` in place; return what must be published because of it."""
    effects = Effects(now or utcnow())
    if isinstance(event, RunCreated):
        if state.status == "queued":
            state.status = "running"
            state.started_at = effects.now
            _advance(state, plan, effects)
    elif isinstance(event, StepStarted):
        step = _step(state, event.job_id, event.step_index)
        if step is not None and step.attempt == event.attempt and step.status == "dispatched":
            step.status = "running"
            step.agent = event.agent
            step.started_at = event.at
    elif isinstance(event, (StepSucceeded, StepFailed)):
        step = _step(state, event.job_id, event.step_index)
        if step is not None and step.attempt == event.attempt and step.status not in TERMINAL:
            _finish_step(state, plan, step, event, effects)
            _advance(state, plan, effects)
    return effects.outgoing


def _step(state: RunState, job_id: str, index: int) -> StepState | None:
    job = state.jobs.get(job_id)
    if job is None or not 0 <= index < len(job.steps):
        return None
    return job.steps[index]


def _finish_step(
    state: RunState, plan: Plan, step: StepState, event: StepSucceeded | StepFailed, effects: Effects
) -> None:
    job_state = state.jobs[event.job_id]
    job_plan = plan.jobs[event.job_id]
    step.status = "succeeded" if isinstance(event, StepSucceeded) else "failed"
    step.agent = event.agent
    step.exit_code = event.exit_code
    step.error = event.error
    step.outputs = dict(event.outputs)
    step.started_at = step.started_at or event.started_at
    step.finished_at = event.at
    failed = step.status == "failed" and not job_plan.steps[step.index].continue_on_error
    next_index = step.index + 1
    if failed:
        for later in job_state.steps[next_index:]:
            later.status = "skipped"
        _complete_job(state, job_state, "failed", effects)
    elif next_index < len(job_state.steps):
        _dispatch(state, plan, job_plan, job_state.steps[next_index], effects)
    else:
        _complete_job(state, job_state, "succeeded", effects)


def _complete_job(state: RunState, job: JobState, result: str, effects: Effects) -> None:
    job.status = result  # type: ignore[assignment]
    job.finished_at = effects.now
    effects.event(JobCompleted(run_id=state.run_id, job_id=job.id, result=result, at=effects.now))


def _dispatch(state: RunState, plan: Plan, job: JobPlan, step: StepState, effects: Effects) -> None:
    step.attempt += 1
    step.status = "dispatched"
    step.dispatched_at = effects.now
    step_plan = job.steps[step.index]
    timeout = step_plan.timeout_minutes or job.timeout_minutes or plan.timeout_minutes
    task = StepTask(
        run_id=state.run_id,
        job_id=job.id,
        step=step_plan,
        attempt=step.attempt,
        group=job.runs_on,
        env={**plan.env, **job.env, **step_plan.env},
        timeout_seconds=None if timeout is None else float(timeout) * 60,
    )
    effects.task(task)
    effects.event(StepDispatched(
        run_id=state.run_id, job_id=job.id, step_index=step.index, attempt=step.attempt, group=job.runs_on,
        at=effects.now,
    ))


def _advance(state: RunState, plan: Plan, effects: Effects) -> None:
    """Start every job whose needs are met, skip those whose needs failed, finish the run."""
    changed = True
    while changed:
        changed = False
        for job_id, job in state.jobs.items():
            if job.status != "pending":
                continue
            needs = [state.jobs[n] for n in job.needs]
            if any(n.status not in TERMINAL for n in needs):
                continue
            changed = True
            if all(n.status == "succeeded" or plan.jobs[n.id].continue_on_error for n in needs):
                job.status = "running"
                job.started_at = effects.now
                effects.event(JobStarted(run_id=state.run_id, job_id=job_id, at=effects.now))
                _dispatch(state, plan, plan.jobs[job_id], job.steps[0], effects)
            else:
                for step in job.steps:
                    step.status = "skipped"
                _complete_job(state, job, "skipped", effects)
    if state.status == "running" and all(j.status in TERMINAL for j in state.jobs.values()):
        failed = any(j.status == "failed" and not plan.jobs[j.id].continue_on_error for j in state.jobs.values())
        state.status = "failed" if failed else "succeeded"
        state.finished_at = effects.now
        effects.event(RunCompleted(run_id=state.run_id, status=state.status, at=effects.now))


def snapshot(state: RunState) -> bytes:
    """Bytes that change exactly when the state changes (to skip no-op writes)."""
    return msgspec.json.encode(state)
