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
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

import msgspec

from waterflow_common import hashfiles, subjects
from waterflow_common.durations import DURATION_HINT, parse_duration
from waterflow_common.groups import Fleet
from waterflow_common.matrix import from_value as matrix_from_value
from waterflow_common.expressions import ExpressionError, evaluate_condition, evaluate_value, is_truthy, render
from waterflow_common.messages import (
    CancelStep,
    Event,
    JobCompleted,
    JobStarted,
    JobWaiting,
    RunCancelRequested,
    RunCompleted,
    RunCreated,
    RunRetryRequested,
    RunUnblocked,
    StepDispatched,
    StepFailed,
    StepRetrying,
    StepSkipped,
    StepStarted,
    StepSucceeded,
    StepTask,
    TimerFired,
    TimerSet,
    encode,
    utcnow,
)
from waterflow_common.plan import JobPlan, Plan, RetryPolicy, StepPlan
from waterflow_common.secrets import mask
from waterflow_common.signing import Signer
from waterflow_common.state import TERMINAL, AttemptRecord, JobState, Outgoing, RunState, StepState

from . import contexts

IN_PROGRESS = frozenset({"dispatched", "running", "retrying"})
MAX_INTERRUPTIONS = 5
"""New attempts a step gets for redeliveries (agents dying under it) before it fails."""
SLEEP_NODE = "sleep"

Directory = Fleet | Mapping[str, Sequence[str]]
"""Healthy agents, as the scheduler last saw them (a Fleet; a mapping group -> names in tests)."""
DEFAULT_QUEUE_TIMEOUT_MINUTES = 24 * 60.0
"""How long a job waits for an agent of its group before it fails (GitHub queues 24 h)."""


class Decisions(list[Outgoing]):
    """What applying one event decided: the messages to publish, in order, plus the events among
    them as typed values (``events``), so nobody has to decode a message again to learn what
    happened (tracing: which jobs and the run just finished)."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Event] = []


class Effects:
    """Messages decided while applying one event, in the order they must be published."""

    def __init__(self, state: RunState, now: datetime, signer: Signer | None = None) -> None:
        self.state = state
        self.now = now
        self.signer = signer
        self.outgoing = Decisions()

    def _signed(self, event: Event) -> Event:
        return self.signer.sign(event) if self.signer is not None else event  # type: ignore[return-value]

    def task_token(self, task_key: str) -> str:
        return self.signer.task_token(task_key) if self.signer is not None else ""

    def event(self, event: Event) -> None:
        event = self._signed(event)
        self.outgoing.events.append(event)
        self.outgoing.append(Outgoing(
            subject=subjects.event(event.run_id, event.type), msg_id=event.msg_id(), data=encode(event), at=self.now,
        ))

    def task(self, task: StepTask, agent: str | None) -> None:
        subject = subjects.agent_tasks(agent) if agent else subjects.group_tasks(task.group)
        self.outgoing.append(Outgoing(subject=subject, msg_id=f"{task.key}:task", data=encode(task), at=self.now))

    def timer(self, kind: str, due: datetime, job: str | None = None, step: int | None = None, attempt: int | None = None) -> None:
        run_id = self.state.run_id
        timer_id = "-".join(str(p) for p in (kind, job, step, attempt, self.state.attempt) if p is not None)
        due = due.replace(microsecond=0) + timedelta(seconds=1) if due.microsecond else due  # @at has second precision
        fired = self._signed(TimerFired(run_id=run_id, timer_id=timer_id, kind=kind, job_id=job, step_index=step,
                                        attempt=attempt, due_at=due))
        self.outgoing.append(Outgoing(
            subject=subjects.timer_schedule(run_id, timer_id), msg_id=f"{run_id}:timer:{timer_id}", data=encode(fired),
            at=self.now, headers={
                subjects.SCHEDULE_HEADER: f"@at {due.strftime('%Y-%m-%dT%H:%M:%SZ')}",
                subjects.SCHEDULE_TARGET_HEADER: subjects.event(run_id, fired.type),
            },
        ))
        self.event(TimerSet(run_id=run_id, timer_id=timer_id, kind=kind, due_at=due, at=self.now))

    def cancel_step(self, agent: str, job: JobState, step: StepState, reason: str) -> None:
        command = CancelStep(run_id=self.state.run_id, job_id=job.id, step_index=step.index, attempt=step.attempt, reason=reason)
        self.outgoing.append(Outgoing(
            subject=subjects.agent_control(agent), msg_id=f"{command.key}:cancel", data=encode(command), at=self.now, stored=False,
        ))


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


class _Run:
    defined_groups: frozenset[str] = frozenset()
    queue_timeout_minutes: float = DEFAULT_QUEUE_TIMEOUT_MINUTES

    def __init__(self, state: RunState, plan: Plan, effects: Effects, fleet: Fleet | None, secrets: Mapping[str, str]) -> None:
        self.state = state
        self.plan = plan
        self.effects = effects
        self.fleet = fleet
        self.secrets = secrets

    def healthy(self, group: str, job_plan: JobPlan) -> list[str]:
        """The healthy agents of ``group`` with the job's labels (none if unknown)."""
        return self.fleet.healthy(group, job_plan.labels) if self.fleet is not None else []

    @property
    def now(self) -> datetime:
        return self.effects.now

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

    def _find(self, job_id: str, index: int | None) -> tuple[JobState, StepState] | None:
        job = self.state.jobs.get(job_id)
        if job is None or index is None or not 0 <= index < len(job.steps):
            return None
        return job, job.steps[index]

    def _step_started(self, event: StepStarted) -> None:
        found = self._find(event.job_id, event.step_index)
        if found is None:
            return
        job, step = found
        if step.attempt != event.attempt:
            return
        if step.status == "dispatched":
            step.status = "running"
            step.agent = event.agent
            step.started_at = event.at
            job.waiting = None
            if step.cancel_requested:
                self.effects.cancel_step(event.agent, job, step, "run cancelled")
        elif step.status in TERMINAL and step.cancel_requested and step.agent is None:
            # Ended while queued (cancel, queue timeout), but an agent took the task anyway.
            step.agent = event.agent
            self.effects.cancel_step(event.agent, job, step, step.error or "run cancelled")

    def _step_result(self, event: StepSucceeded | StepFailed) -> None:
        found = self._find(event.job_id, event.step_index)
        if found is None:
            return
        job, step = found
        if step.attempt != event.attempt or step.status not in ("dispatched", "running"):
            return
        if isinstance(event, StepFailed) and event.interrupted:
            self._interrupted(job, step, event)
            return
        step.agent = event.agent
        step.exit_code = event.exit_code
        step.error = event.error
        step.annotations = list(event.annotations)
        step.summary = event.summary
        step.started_at = step.started_at or event.started_at
        step.finished_at = event.at
        if job.agent is None and event.agent != "scheduler":
            # Job affinity: the agent that ran the first step runs the rest (its workspace).
            job.agent, job.affinity = event.agent, True
        if isinstance(event, StepFailed) and event.agent_lost:
            self._conclude(job, step, "failure")
            job.lost_agent = event.agent
            self._fail_job(job, f"lost communication with agent {event.agent!r}, which held this job's "
                                "workspace; retry the run to run the job again")
        elif isinstance(event, StepSucceeded):
            step.outputs = dict(event.outputs)
            self._conclude(job, step, "success")
        elif event.cancelled or step.cancel_requested:
            self._conclude(job, step, "cancelled")
        elif not self._maybe_retry(job, step, event.retryable):
            self._conclude(job, step, "failure")
        self.continue_job(job)
        self.advance()

    def _interrupted(self, job: JobState, step: StepState, event: StepFailed) -> None:
        """The attempt was delivered a second time: record it as interrupted, run a new one."""
        step.attempts.append(AttemptRecord(
            attempt=step.attempt, status="failed", agent=step.agent, error=event.error,
            started_at=step.started_at, finished_at=event.at, interrupted=True,
        ))
        interruptions = sum(1 for a in step.attempts if a.interrupted)
        if interruptions > MAX_INTERRUPTIONS:
            step.error = f"interrupted {interruptions} times; giving up"
            step.finished_at = self.now
            self._conclude(job, step, "failure")
        elif self._dispatch(job, step):
            return
        self.continue_job(job)
        self.advance()

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
            for step in job.steps:
                if step.status != "succeeded" or rerun_whole_job:
                    step.status = "pending"
                    step.outcome = step.conclusion = None
                    step.cancel_requested = False
        self.advance()

    # --- job level ---------------------------------------------------------------------------
    def _start_or_skip_job(self, job: JobState) -> None:
        job_plan = self.plan.jobs[job.job]
        try:
            ctx = contexts.job_contexts(self.state, self.plan, job_plan, secrets=self.secrets)
        except ExpressionError as error:
            self._fail_job(job, mask(f"env: {error}", self.secrets.values()))
            return
        try:
            run_it = evaluate_condition(job_plan.if_ or "", ctx, status=contexts.job_status(self.state, self.plan, job_plan))
        except ExpressionError as error:
            self._fail_job(job, mask(f"job 'if' could not be evaluated: {error}", self.secrets.values()))
            return
        if not run_it:
            self._skip_job(job, "cancelled" if self.state.cancel_requested else "skipped")
            return
        per_combination = job.is_aggregate and not job_plan.each and "matrix" in job_plan.runs_on
        try:  # ``runs-on: ${{ matrix.os }}`` names a group per combination: resolved in _expand
            group = job_plan.runs_on if per_combination else self._resolve_group(job_plan, ctx)
        except (ExpressionError, ValueError) as error:
            self._fail_job(job, f"runs-on: {error}")
            return
        job.runs_on = group
        if group in self.defined_groups and not job_plan.each and not job.is_aggregate:
            members = self.healthy(group, job_plan)
            if not members:
                self._fail_job(job, f"no healthy agent in server group {group!r}")
                return
            job.agent = members[hash_index(f"{self.state.run_id}/{job.id}", len(members))]
        if job.is_aggregate:
            self._expand(job, job_plan, ctx)
        else:
            self._start_job(job)

    def _resolve_group(self, job_plan: JobPlan, ctx: dict[str, object]) -> str:
        value = evaluate_value(job_plan.runs_on, ctx)
        if isinstance(value, Mapping):
            value = value.get("group")
        if not isinstance(value, str) or not value:
            raise ValueError(f"evaluated to {value!r}, expected a server group name")
        return subjects.check_group(value)

    def _expand(self, job: JobState, job_plan: JobPlan, ctx: dict[str, object]) -> None:
        """Turn a matrix or fan-out job into its instances, and start as many as allowed."""
        if job.instances:  # a run retry: the instances exist, the failed ones are pending again
            job.status = "running"
            job.started_at = self.now
            self.effects.event(JobStarted(run_id=self.state.run_id, job_id=job.id, run_attempt=self.state.attempt, at=self.now))
            self._fill_slots(job)
            return
        if job_plan.each:
            agents = self.healthy(job.runs_on, job_plan)
            if not agents:
                self._fail_job(job, f"no healthy agent in server group {job.runs_on!r} to fan out to")
                return
            combos: list[tuple[str, dict[str, object] | None, str | None, str]] = [
                (f"{job.id}-{agent}", {"agent": agent}, agent, job.runs_on) for agent in agents
            ]
        else:
            matrix = list(job_plan.matrix)
            dynamic = job_plan.matrix_expression or job_plan.matrix_template
            if dynamic:
                try:
                    matrix = matrix_from_value(_with_evaluated_keys(evaluate_value(dynamic, ctx), dynamic, ctx))
                except (ExpressionError, ValueError) as error:
                    self._fail_job(job, f"strategy.matrix: {error}")
                    return
            if not matrix:
                self._fail_job(job, "strategy.matrix expanded to no combinations")
                return
            combos = []
            for i, combo in enumerate(matrix):
                instance_id = f"{job.id}-{i + 1}"
                try:
                    group = (self._resolve_group(job_plan, {**ctx, "matrix": combo}) if "matrix" in job_plan.runs_on
                             else job.runs_on)
                except (ExpressionError, ValueError) as error:
                    self._fail_job(job, f"runs-on of {instance_id}: {error}")
                    return
                members = self.healthy(group, job_plan) if group in self.defined_groups else []
                if group in self.defined_groups and not members:
                    self._fail_job(job, f"no healthy agent in server group {group!r}")
                    return
                agent = members[hash_index(f"{self.state.run_id}/{instance_id}", len(members))] if members else None
                combos.append((instance_id, combo, agent, group))
        job.status = "running"
        job.started_at = self.now
        self.effects.event(JobStarted(run_id=self.state.run_id, job_id=job.id, run_attempt=self.state.attempt, at=self.now))
        for instance_id, combo, agent, group in combos:
            label = ", ".join(str(v) for v in (combo or {}).values())
            self.state.jobs[instance_id] = JobState(
                id=instance_id, job=job.id, name=f"{job.name} ({label})", runs_on=group, parent=job.id,
                matrix=combo, agent=agent,
                steps=[StepState(index=s.index, name=s.name, id=s.id) for s in job_plan.steps],
            )
            job.instances.append(instance_id)
        self._fill_slots(job)

    def _fill_slots(self, aggregate: JobState) -> None:
        limit = self.plan.jobs[aggregate.job].max_parallel or len(aggregate.instances)
        instances = [self.state.jobs[i] for i in aggregate.instances]
        running = sum(1 for i in instances if i.status == "running")
        for instance in instances:
            if running >= limit:
                break
            if instance.status == "pending":
                self._start_job(instance)
                running += 1

    def _start_job(self, job: JobState) -> None:
        job.status = "running"
        job.started_at = self.now
        self.effects.event(JobStarted(run_id=self.state.run_id, job_id=job.id, run_attempt=self.state.attempt, at=self.now))
        try:
            minutes = self._job_timeout(job)
        except ValueError as error:
            self._fail_job(job, f"timeout-minutes: {error}")
            return
        if minutes:
            self.effects.timer("job-timeout", self.now + timedelta(minutes=minutes), job=job.id)
        self.continue_job(job)

    def _job_timeout(self, job: JobState) -> float | None:
        """The job's ``timeout-minutes`` (an expression is evaluated over the job's contexts)."""
        job_plan = self.plan.jobs[job.job]
        return _minutes(job_plan.timeout_minutes, lambda: contexts.job_contexts(self.state, self.plan, job_plan, job, self.secrets))

    def continue_job(self, job: JobState) -> None:
        """Run the job's next step whose ``if`` holds; finish the job when no step is left."""
        if job.status != "running" or job.is_aggregate:
            return
        job_plan = self.plan.jobs[job.job]
        for step in job.steps:
            if step.status in TERMINAL:
                continue
            if step.status in IN_PROGRESS:
                return
            step_plan = job_plan.steps[step.index]
            try:
                ctx = contexts.step_contexts(self.state, self.plan, job, step, self.secrets)
            except ExpressionError as error:
                self._fail_without_running(job, step, f"env: {error}")
                continue
            try:
                run_it = evaluate_condition(step_plan.if_ or "", ctx, status=contexts.step_status(self.state, job))
            except ExpressionError as error:
                self._fail_without_running(job, step, f"step 'if' could not be evaluated: {error}")
                continue
            if not run_it:
                step.status = "skipped"
                step.outcome = step.conclusion = "skipped"
                self.effects.event(StepSkipped(run_id=self.state.run_id, job_id=job.id, step_index=step.index,
                                               reason="condition false", at=self.now))
                continue
            if self._start_step(job, step, step_plan, ctx):
                return
        self._finish_job(job)

    def _finish_job(self, job: JobState) -> None:
        job_plan = self.plan.jobs[job.job]
        if job.error:
            result = "failed"
        elif any(s.conclusion == "failure" for s in job.steps):
            result = "failed"
        elif job.cancelled:
            result = "cancelled"
        else:
            result = "succeeded"
        try:
            ctx = contexts.job_contexts(self.state, self.plan, job_plan, job, self.secrets)
            ctx["steps"] = contexts.steps_context(job, len(job.steps))
        except ExpressionError as error:
            job.error = job.error or f"env: {error}"
            self._complete_job(job, "failed")
            return
        for name, template in job_plan.outputs.items():
            try:
                job.outputs[name] = evaluate_value(template, ctx)
            except ExpressionError as error:
                job.error = job.error or f"output {name!r}: {error}"
                result = "failed"
        self._complete_job(job, result)

    def _complete_job(self, job: JobState, result: str) -> None:
        job.status = result  # type: ignore[assignment]
        job.finished_at = self.now
        self.effects.event(JobCompleted(
            run_id=self.state.run_id, job_id=job.id, result=result, run_attempt=self.state.attempt, at=self.now,
        ))
        if job.parent is not None:
            self._instance_done(self.state.jobs[job.parent], job)

    def _instance_done(self, aggregate: JobState, instance: JobState) -> None:
        job_plan = self.plan.jobs[aggregate.job]
        instances = [self.state.jobs[i] for i in aggregate.instances]
        if (instance.status == "failed" and job_plan.fail_fast and not job_plan.each
                and not contexts.continues_on_error(self.state, self.plan, instance)):
            for sibling in instances:
                if sibling.status == "pending":
                    self._skip_job(sibling, "cancelled")
                elif sibling.status == "running" and sibling is not instance:
                    sibling.error = sibling.error or f"cancelled by fail-fast: {instance.name} failed"
                    self._stop_current_step(sibling, "fail-fast")
        self._fill_slots(aggregate)
        if all(i.status in TERMINAL for i in instances) and aggregate.status == "running":
            for i in instances:
                aggregate.outputs.update(i.outputs)
            failed = any(
                i.status == "cancelled" or (i.status == "failed" and not contexts.continues_on_error(self.state, self.plan, i))
                for i in instances
            )
            result = "failed" if failed else ("cancelled" if self.state.cancel_requested else "succeeded")
            self._complete_job(aggregate, result)

    def _skip_job(self, job: JobState, result: str) -> None:
        for step in job.steps:
            step.status = "skipped"
            step.outcome = step.conclusion = "skipped"
        self._complete_job(job, result)

    def _fail_job(self, job: JobState, error: str) -> None:
        job.error = error
        for step in job.steps:
            if step.status not in TERMINAL:
                step.status = "skipped"
        self._complete_job(job, "failed")

    def _queue_timed_out(self, job: JobState, step: StepState) -> None:
        """No agent took the job's queued step in time: fail the job with the waiting reason."""
        waited = (self.now - (step.dispatched_at or self.now)).total_seconds() / 60
        reason = (f"{job.waiting or f'no agent of group {job.runs_on!r} took the job'}; "
                  f"gave up after {waited:.3g} minutes in the queue")
        step.cancel_requested = True  # an agent that takes the task after all is told to stop
        step.error = reason
        step.finished_at = self.now
        self._conclude(job, step, "failure")
        job.waiting = None
        self._fail_job(job, reason)
        self.continue_job(job)
        self.advance()

    def _job_timed_out(self, job: JobState) -> None:
        try:
            minutes = self._job_timeout(job)
        except ValueError:
            minutes = None
        job.error = f"job timed out after {minutes:g} minutes" if minutes else "job timed out"
        self._stop_current_step(job, "job timed out")
        self.continue_job(job)
        self.advance()

    def _stop_current_step(self, job: JobState, reason: str) -> None:
        for step in job.steps:
            if step.status == "dispatched":
                # Still queued: never let it start; if an agent takes it anyway it is told to stop.
                step.cancel_requested = True
                step.status = "cancelled"
                step.outcome = step.conclusion = "cancelled"
                step.finished_at = self.now
            elif step.status == "running" and step.agent and step.agent != "scheduler":
                step.cancel_requested = True
                self.effects.cancel_step(step.agent, job, step, reason)
            elif step.status in ("retrying", "running"):  # waiting on a timer (backoff or sleep)
                step.status = "cancelled"
                step.outcome = step.conclusion = "cancelled"
                step.finished_at = self.now

    # --- step level --------------------------------------------------------------------------
    def _conclude(self, job: JobState, step: StepState, outcome: str) -> None:
        step.outcome = outcome
        continue_on_error = self.plan.jobs[job.job].steps[step.index].continue_on_error
        if outcome == "failure" and isinstance(continue_on_error, str):
            try:
                continue_on_error = is_truthy(evaluate_value(
                    continue_on_error, contexts.step_contexts(self.state, self.plan, job, step, self.secrets),
                ))
            except ExpressionError as error:
                step.error = f"{step.error or 'failed'}; continue-on-error: {error}"
                continue_on_error = False
        step.conclusion = "success" if outcome == "failure" and continue_on_error else outcome
        step.status = {"success": "succeeded", "failure": "failed", "cancelled": "cancelled"}[outcome]  # type: ignore[assignment]
        step.attempts.append(AttemptRecord(
            attempt=step.attempt, status=step.status, agent=step.agent, exit_code=step.exit_code, error=step.error,
            started_at=step.started_at, finished_at=step.finished_at,
        ))

    def _fail_without_running(self, job: JobState, step: StepState, error: str) -> None:
        step.error = mask(error, self.secrets.values())
        step.finished_at = self.now
        self._conclude(job, step, "failure")

    def _maybe_retry(self, job: JobState, step: StepState, retryable: bool) -> bool:
        policy = self.plan.jobs[job.job].steps[step.index].retry
        if policy is None or not retryable or job.cancelled or job.error:
            return False
        tried = sum(1 for a in step.attempts if a.attempt > 0) + 1
        if tried >= policy.attempts:
            return False
        step.attempts.append(AttemptRecord(
            attempt=step.attempt, status="failed", agent=step.agent, exit_code=step.exit_code, error=step.error,
            started_at=step.started_at, finished_at=step.finished_at,
        ))
        delay = backoff_delay(policy, tried)
        step.status = "retrying"
        self.effects.event(StepRetrying(run_id=self.state.run_id, job_id=job.id, step_index=step.index,
                                        attempt=step.attempt, delay=delay, at=self.now))
        if delay <= 0:
            self._dispatch(job, step)
        else:
            self.effects.timer("retry", self.now + timedelta(seconds=delay), job=job.id, step=step.index, attempt=step.attempt)
        return True

    def _start_step(self, job: JobState, step: StepState, step_plan: StepPlan, ctx: dict[str, object]) -> bool:
        """Begin a step; False if it could not start (it is then failed and the walk goes on)."""
        if step_plan.uses and step_plan.uses.split("@")[0] == SLEEP_NODE:
            try:
                seconds = _seconds(evaluate_value(dict(step_plan.with_), ctx).get("seconds", 0))  # type: ignore[union-attr]
            except (ExpressionError, ValueError) as error:
                self._fail_without_running(job, step, f"sleep: {error}")
                return False
            step.attempt += 1
            step.status = "running"
            step.agent = "scheduler"
            step.started_at = self.now
            self.effects.timer("sleep", self.now + timedelta(seconds=seconds), job=job.id, step=step.index, attempt=step.attempt)
            return True
        return self._dispatch(job, step, ctx)

    def _dispatch(self, job: JobState, step: StepState, ctx: dict[str, object] | None = None) -> bool:
        job_plan = self.plan.jobs[job.job]
        step_plan = job_plan.steps[step.index]
        try:
            ctx = ctx or contexts.step_contexts(self.state, self.plan, job, step, self.secrets)
            concrete = msgspec.structs.replace(  # hashFiles(): left for the agent (hashfiles.py)
                step_plan,
                run=None if step_plan.run is None else render(step_plan.run, ctx, hash_files=hashfiles.deferred),
                with_=evaluate_value(dict(step_plan.with_), ctx, hash_files=hashfiles.deferred) if step_plan.with_ else {},
            )
        except ExpressionError as error:
            self._fail_without_running(job, step, f"expression error: {error}")
            return False
        try:
            timeout = (
                _minutes(step_plan.timeout_minutes, lambda: ctx) or self._job_timeout(job) or self.plan.timeout_minutes
            )
        except ValueError as error:
            self._fail_without_running(job, step, f"timeout-minutes: {error}")
            return False
        if "${{" in step_plan.name:  # a name with expressions is shown evaluated, as on GitHub
            try:
                step.name = render(step_plan.name, ctx)
            except ExpressionError:
                pass  # keep the name as written: the step itself still runs
        step.attempt += 1
        step.status = "dispatched"
        step.dispatched_at = self.now
        step.started_at = step.finished_at = None
        step.exit_code = None
        step.error = None
        step.agent = None
        task = StepTask(
            run_id=self.state.run_id, job_id=job.id, step=concrete, attempt=step.attempt, group=job.runs_on,
            env=dict(ctx["env"]),  # type: ignore[arg-type]
            timeout_seconds=None if timeout is None else float(timeout) * 60,
            mask=sorted(set(self.secrets.values())),
        )
        task = msgspec.structs.replace(task, token=self.effects.task_token(task.key))
        self.effects.task(task, job.agent)
        self.effects.event(StepDispatched(run_id=self.state.run_id, job_id=job.id, step_index=step.index,
                                          attempt=step.attempt, group=job.runs_on, at=self.now))
        if job.agent is None and self.fleet is not None and not self.healthy(job.runs_on, job_plan):
            self._wait_for_agent(job, step)
        return True

    def _wait_for_agent(self, job: JobState, step: StepState) -> None:
        """The task is queued for a group with no healthy agent: say so, and bound the wait."""
        job.waiting = f"no healthy agent in group {job.runs_on!r}"
        self.effects.event(JobWaiting(
            run_id=self.state.run_id, job_id=job.id, step_index=step.index, attempt=step.attempt, group=job.runs_on,
            reason=job.waiting, queue_timeout_minutes=self.queue_timeout_minutes, at=self.now,
        ))
        self.effects.timer("queue-timeout", self.now + timedelta(minutes=self.queue_timeout_minutes),
                           job=job.id, step=step.index, attempt=step.attempt)


def _minutes(value: float | str | None, contexts_of: Callable[[], Mapping[str, object]]) -> float | None:
    """A ``timeout-minutes`` value: a number, or an expression evaluated now (ValueError names
    what is wrong with it; 0 or an empty result means no timeout)."""
    if not isinstance(value, str):
        return value
    try:
        result = evaluate_value(value, contexts_of())
    except ExpressionError as error:
        raise ValueError(str(error)) from error
    if result in (None, ""):
        return None
    try:
        minutes = float(result)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{value} evaluated to {result!r}, not a number of minutes") from None
    if minutes < 0:
        raise ValueError(f"{value} evaluated to {minutes:g}, a negative number of minutes")
    return minutes or None


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
        for step in job.steps:
            if not keep_history:
                step.attempts = []
            if step.status in IN_PROGRESS:
                if step.agent and step.agent != "scheduler":
                    effects.cancel_step(step.agent, job, step, reason)
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


def hash_index(key: str, size: int) -> int:
    """A stable choice among ``size`` members (the same on every scheduler and every replay)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % size


def backoff_delay(policy: RetryPolicy, failed_attempts: int) -> float:
    """Seconds before the next attempt after ``failed_attempts`` failures (1 = first retry)."""
    return min(policy.initial_interval * policy.backoff_coefficient ** (failed_attempts - 1), policy.max_interval)


def _seconds(value: object) -> float:
    seconds = parse_duration(value)
    if seconds is None:
        raise ValueError(f"'seconds' must be a duration ({DURATION_HINT}), got {value!r}")
    return seconds


def _with_evaluated_keys(value: object, template: object, ctx: Mapping[str, object]) -> object:
    """A matrix mapping's keys evaluated too, as GitHub does: ``"${{ 'os' }}": [...]`` is key
    ``os``, and ``${{ insert }}: ${{ fromJSON(...) }}`` merges the mapping it evaluates to."""
    if not isinstance(value, dict) or not isinstance(template, dict):
        return value
    out: dict[str, object] = {}
    for key, item in value.items():
        if isinstance(key, str) and key.replace(" ", "") == "${{insert}}":
            if not isinstance(item, dict):
                raise ValueError(f"'${{{{ insert }}}}' must evaluate to an object, got {type(item).__name__}")
            out.update(item)
        elif isinstance(key, str) and "${{" in key:
            out[str(evaluate_value(key, ctx))] = item
        else:
            out[key] = item
    return out


def snapshot(state: RunState) -> bytes:
    """Bytes that change exactly when the state changes (to skip no-op writes)."""
    return msgspec.json.encode(state)
