"""The step layer of the run state machine: a step is dispatched to an agent (or, for ``sleep``,
waits on a durable timer), its ``step.started`` and result events are applied, a failure is
retried with backoff when its policy allows, and the outcome is concluded (``continue-on-error``).
A redelivered attempt (its agent died under it) becomes a new attempt.
"""

from __future__ import annotations

from datetime import timedelta

import msgspec

from waterflow_common import hashfiles
from waterflow_common.durations import DURATION_HINT, parse_duration
from waterflow_common.expressions import ExpressionError, evaluate_value, is_truthy, render
from waterflow_common.messages import (
    JobWaiting,
    StepDispatched,
    StepFailed,
    StepRetrying,
    StepStarted,
    StepSucceeded,
    StepTask,
)
from waterflow_common.plan import RetryPolicy, StepPlan
from waterflow_common.secrets import mask
from waterflow_common.state import TERMINAL, AttemptRecord, JobState, StepState

from .rules import RunRules, minutes

MAX_INTERRUPTIONS = 5
"""New attempts a step gets for redeliveries (agents dying under it) before it fails."""
SLEEP_NODE = "sleep"


class StepRules(RunRules):
    """Step life cycle (mixed into ``machine._Run``)."""

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

    def _conclude(self, job: JobState, step: StepState, outcome: str) -> None:
        step.outcome = outcome
        continue_on_error = self.plan.jobs[job.job].steps[step.index].continue_on_error
        if outcome == "failure" and isinstance(continue_on_error, str):
            try:
                continue_on_error = is_truthy(evaluate_value(
                    continue_on_error, self.contexts.step(job, step),
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
            ctx = ctx or self.contexts.step(job, step)
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
                minutes(step_plan.timeout_minutes, lambda: ctx) or self._job_timeout(job) or self.plan.timeout_minutes
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


def backoff_delay(policy: RetryPolicy, failed_attempts: int) -> float:
    """Seconds before the next attempt after ``failed_attempts`` failures (1 = first retry)."""
    return min(policy.initial_interval * policy.backoff_coefficient ** (failed_attempts - 1), policy.max_interval)


def _seconds(value: object) -> float:
    seconds = parse_duration(value)
    if seconds is None:
        raise ValueError(f"'seconds' must be a duration ({DURATION_HINT}), got {value!r}")
    return seconds
