"""The run state machine: (state, plan, event) -> new state + messages to publish.

Pure code, no I/O: the service around it reads, writes and publishes, so every rule of how a run
advances is testable in microseconds. ``apply`` is idempotent: an event that was already applied
(a redelivery, a second result from an agent that ran a redelivered task, a late timer) changes
nothing and asks for nothing. That is what makes at-least-once delivery safe.

Shape of a run: jobs start when their ``needs`` are done and their ``if`` holds; a matrix or
fan-out job expands into instances then; each job (instance) walks its steps in order, deciding
each step's ``if`` just before it would run, so cleanup steps with ``always()`` still run after a
failure or a cancel. Waiting (retry backoff, ``sleep``, timeouts) is a durable timer held by
JetStream, which later delivers a ``timer.fired`` event.

Layers: this module applies events and keeps the run level (start, cancel, retry, end); a job
and its matrix/fan-out instances live in ``job_rules.py``; a job's steps in ``step_rules.py``;
what they share (the state, the :class:`Effects` being decided) in ``rules.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import msgspec

from waterflow_common.groups import Fleet
from waterflow_common.messages import (
    Event,
    JobRan,
    RunCancelRequested,
    RunCompleted,
    RunCreated,
    RunRetryRequested,
    RunUnblocked,
    StepFailed,
    StepSkipped,
    StepStarted,
    StepSucceeded,
    TimerFired,
    utcnow,
)
from waterflow_common.plan import Plan
from waterflow_common.secrets import mask
from waterflow_common.signing import Signer
from waterflow_common.state import TERMINAL, RunState

from waterflow_common import contexts
from .job_rules import JobRules, hash_index
from .rules import DEFAULT_QUEUE_TIMEOUT_MINUTES, IN_PROGRESS, Decisions, Effects
from .step_rules import MAX_INTERRUPTIONS, StepRules, backoff_delay

__all__ = ["Decisions", "Effects", "MAX_INTERRUPTIONS", "apply", "backoff_delay", "fail_oversized", "fail_run", "hash_index", "snapshot"]

Directory = Fleet | Mapping[str, Sequence[str]]
"""Healthy agents, as the scheduler last saw them (a Fleet; a mapping group -> names in tests)."""


def apply(
    state: RunState,
    plan: Plan,
    event: Event,
    now: datetime | None = None,
    directory: Directory | None = None,
    blocked_by: str | None = None,
    secrets: Mapping[str, str] | None = None,
    defined_groups: frozenset[str] = frozenset(),
    queue_timeout_minutes: float = DEFAULT_QUEUE_TIMEOUT_MINUTES,
    signer: Signer | None = None,
) -> Decisions:
    """Apply ``event`` to ``state`` in place; return what must be published because of it.

    ``directory``: the healthy agents (None: unknown, so no job is reported waiting for one).
    ``blocked_by``: for run.created/run.unblocked, the run holding this run's concurrency group
    (the scheduler asked the group's slot before calling). ``defined_groups``: groups that exist
    only as definitions (server-groups.yml): their jobs go to one member agent's own subject.
    """
    fleet = directory if isinstance(directory, Fleet) or directory is None else Fleet.of(dict(directory))
    run = _Run(state, plan, Effects(state, now or utcnow(), signer), fleet, secrets or {})
    run.defined_groups = defined_groups
    run.queue_timeout_minutes = queue_timeout_minutes
    try:
        run.apply(event, blocked_by)
    except Exception as error:  # noqa: BLE001 - no rule may leave a run wedged: end it with the reason
        reason = mask(f"internal error while applying {event.type}: {type(error).__name__}: {error}", (secrets or {}).values())
        return fail_run(state, reason, now, signer=signer)
    return run.effects.outgoing

class _Run(JobRules, StepRules):
    """One event applied to one run: the event handlers and the run level (start, cancel, retry,
    end); jobs in ``job_rules.py``, steps in ``step_rules.py``."""

    # --- events ------------------------------------------------------------------------------
    def apply(self, event: Event, blocked_by: str | None = None) -> None:
        state = self.state
        if isinstance(event, (RunCreated, RunUnblocked)):
            if state.status == "queued" and blocked_by is not None:
                if state.queued_behind != blocked_by:
                    state.queued_behind = blocked_by
                    concurrency = self.plan.concurrency
                    if concurrency is not None and concurrency.cancel_in_progress:
                        self.effects.event(RunCancelRequested(
                            run_id=blocked_by, reason=f"superseded by run {state.run_id} (concurrency group)", at=self.now,
                        ))
            elif state.status == "queued":
                state.queued_behind = None
                state.status = "running"
                state.started_at = self.now
                if self.plan.timeout_minutes:
                    self.effects.timer("run-timeout", self.now + timedelta(minutes=self.plan.timeout_minutes))
                self.advance()
        elif isinstance(event, StepStarted):
            self._step_started(event)
        elif isinstance(event, (StepSucceeded, StepFailed)):
            self._step_result(event)
        elif isinstance(event, StepSkipped):
            self._step_skipped(event)
        elif isinstance(event, JobRan):
            self._job_ran(event)
        elif isinstance(event, TimerFired):
            self._timer(event)
        elif isinstance(event, RunCancelRequested):
            if state.status == "queued":  # never started (e.g. waiting for its concurrency group)
                state.cancel_requested = True
                state.status = "cancelled"
                state.finished_at = self.now
                self.effects.event(RunCompleted(run_id=state.run_id, status="cancelled", attempt=state.attempt, at=self.now))
            elif not state.finished and not state.cancel_requested:
                self.cancel(event.reason)
        elif isinstance(event, RunRetryRequested):
            if state.finished and state.status != "succeeded":
                self._retry_run()

    def _timer(self, event: TimerFired) -> None:
        if event.kind == "run-timeout":
            if not self.state.finished and not self.state.cancel_requested:
                self.state.error = f"workflow timed out after {self.plan.timeout_minutes:g} minutes"
                self.state.timed_out = True
                self.cancel(self.state.error)
            return
        job = self.state.jobs.get(event.job_id or "")
        if job is None or job.status != "running":
            return
        if event.kind == "job-timeout":
            if job.error is None:
                self._job_timed_out(job)
            return
        if event.kind == "queue-timeout":
            found = self._find(job.id, event.step_index)
            if found is not None and found[1].attempt == event.attempt and found[1].status == "dispatched":
                self._queue_timed_out(job, found[1])
            return
        found = self._find(job.id, event.step_index)
        if found is None or found[1].attempt != event.attempt:
            return
        step = found[1]
        if event.kind == "retry" and step.status == "retrying":
            self._dispatch(job, step)
        elif event.kind == "sleep" and step.status == "running":
            step.finished_at = self.now
            self.effects.event(StepSucceeded(run_id=self.state.run_id, job_id=job.id, step_index=step.index,
                                             attempt=step.attempt, agent="scheduler", at=self.now))
            self._conclude(job, step, "success")
            self.continue_job(job)
            self.advance()

    # --- run level ---------------------------------------------------------------------------
    def advance(self) -> None:
        """Start every job whose needs are done, skip those whose ``if`` is false, end the run."""
        if self.state.status != "running":
            return
        changed = True
        while changed:
            changed = False
            for job in list(self.state.jobs.values()):
                if job.status == "pending" and job.parent is None and all(
                    self.state.jobs[n].status in TERMINAL for n in job.needs
                ):
                    self._start_or_skip_job(job)
                    changed = True
        top = [j for j in self.state.jobs.values() if j.parent is None]
        if all(j.status in TERMINAL for j in top):
            if self.state.cancel_requested:
                status = "failed" if self.state.timed_out else "cancelled"
            elif any(j.status in ("failed", "cancelled") and not contexts.continues_on_error(self.state, self.plan, j) for j in top):
                status = "failed"
            else:
                status = "succeeded"
            self.state.status = status  # type: ignore[assignment]
            self.state.finished_at = self.now
            self.effects.event(RunCompleted(run_id=self.state.run_id, status=status, attempt=self.state.attempt, at=self.now))

    def cancel(self, reason: str) -> None:
        """Stop running steps, cancel queued ones; ``always()`` steps and jobs still run."""
        self.state.cancel_requested = True
        for job in list(self.state.jobs.values()):
            if job.status == "pending" and job.parent is not None:
                self._skip_job(job, "cancelled")
            if job.status != "running" or job.is_aggregate:
                continue
            job.cancelled = True
            self._stop_current_step(job, reason)
            self.continue_job(job)
        self.advance()

    def _retry_run(self) -> None:
        state = self.state
        state.attempt += 1
        self.contexts.reset()  # github.run_attempt changed
        state.status = "running"
        state.cancel_requested = False
        state.error = None
        state.timed_out = False
        state.finished_at = None
        for job in state.jobs.values():
            if job.status == "succeeded":
                continue
            # Matrix and fan-out instances are kept: the succeeded ones stay done, the others
            # run again (on the same server for a fan-out), their attempts numbered on.
            job.status = "pending"
            job.error = None
            job.cancelled = False
            job.finished_at = None
            rerun_whole_job = job.lost_agent is not None
            if rerun_whole_job and job.affinity:
                job.agent, job.affinity = None, False  # its workspace is gone: any agent may take it
            job.lost_agent = None
            job.task_out = False
            for step in job.steps:
                if step.status != "succeeded" or rerun_whole_job:
                    step.status = "pending"
                    step.outcome = step.conclusion = None
                    step.cancel_requested = False
        self.advance()


def fail_run(
    state: RunState, reason: str, now: datetime | None = None, keep_history: bool = True, signer: Signer | None = None,
) -> Decisions:
    """End a run that cannot go on (a rule failed, its state outgrew NATS) as failed, with the
    reason: steps running on agents are told to stop, everything unfinished is failed or
    skipped, and ``run.completed`` is published. Whatever the failed attempt had decided is
    dropped (it is the state that could not be advanced)."""
    effects = Effects(state, now or utcnow(), signer)
    state.error = reason
    for job in state.jobs.values():
        if job.status not in TERMINAL:
            job.status = "failed"
            job.error = job.error or reason
            job.finished_at = effects.now
        if job.task_out and job.agent:
            effects.cancel_job(job.agent, job, reason, withdraw=True)
        job.task_out = False
        for step in job.steps:
            if not keep_history:
                step.attempts = []
            if step.status in IN_PROGRESS:
                step.status = "cancelled"
                step.cancel_requested = True
                step.finished_at = effects.now
            elif step.status not in TERMINAL:
                step.status = "skipped"
    state.status = "failed"
    state.finished_at = effects.now
    effects.event(RunCompleted(run_id=state.run_id, status="failed", attempt=state.attempt, at=effects.now))
    return effects.outgoing


def fail_oversized(state: RunState, size: int, limit: int, signer: Signer | None = None) -> Decisions:
    """The run's state no longer fits in one NATS message: end the run as failed, say why, and
    drop the per-attempt history so that this last state fits (running steps are told to stop;
    results that still come are ignored)."""
    return fail_run(state, (
        f"the run's state grew to {size} bytes, over the NATS max_payload of {limit}: split the workflow "
        "(e.g. into called workflows) or raise max_payload in the NATS server configuration"
    ), keep_history=False, signer=signer)


def snapshot(state: RunState) -> bytes:
    """Bytes that change exactly when the state changes (to skip no-op writes)."""
    return msgspec.json.encode(state)
