"""The step layer of the run state machine.

A job's steps run on one agent, sent as one job task (``waterflow_common.tasks``): the scheduler
dispatches the task at the first step it decides to run, the agent walks the job from there and
reports every step (started, succeeded, failed — with its own retry and ``continue-on-error``
decisions —, skipped), and the scheduler records those events until the agent hands the job
back (``job.ran``). Only then does the scheduler walk the job again: to end it, to wait on a
durable timer (``sleep``, a long retry backoff) and resume it on the same agent, or to run the
job's remaining ``always()`` steps after a cancel. A task delivered twice (its agent died) is
reported ``interrupted``: the step runs again as a new attempt on the agent holding the job's
workspace, or the job fails when that agent is gone.
"""

from __future__ import annotations

from datetime import timedelta

import msgspec

from waterflow_common import steps as step_policy
from waterflow_common.expressions import ExpressionError, evaluate_value
from waterflow_common.limits import MAX_JOB_TASK_BYTES
from waterflow_common.messages import (
    JobRan,
    StepOutcome,
    JobWaiting,
    StepDispatched,
    StepFailed,
    StepSkipped,
    StepStarted,
    StepSucceeded,
    encode,
)
from waterflow_common.plan import StepPlan
from waterflow_common.secrets import mask
from waterflow_common.state import TERMINAL, AttemptRecord, JobState, StepState
from waterflow_common.tasks import JobTask, for_agent

from .rules import IN_PROGRESS, RunRules

_ENDED = TERMINAL | {"retrying"}
"""Step statuses a ``job.ran`` outcome may be shown by."""
MAX_INTERRUPTIONS = 5
"""New attempts a step gets for redeliveries (agents dying under it) before it fails."""


class StepRules(RunRules):
    """Step life cycle (mixed into ``machine._Run``)."""

    def _reported(self, job: JobState, step: StepState, event: StepStarted | StepSucceeded | StepFailed) -> bool:
        """Is this an event of the job's current task about the step's current (or next) attempt?"""
        if event.task != job.task or not job.task_out:
            return False
        if step.status in ("dispatched", "running"):
            # (a later attempt: the agent retried the step, and this attempt's failure is late)
            return event.attempt >= step.attempt
        # A later step of the task, or the next attempt of a step the agent retries itself.
        return step.status in ("pending", "retrying") and event.attempt > step.attempt

    def _step_started(self, event: StepStarted) -> None:
        found = self._find(event.job_id, event.step_index)
        if found is None:
            return
        job, step = found
        if event.task and event.task <= job.task and not (event.task == job.task and job.task_out):
            # A task given up while queued (cancel, queue timeout) was taken anyway: stop it.
            self.effects.cancel_job(event.agent, job, "the scheduler withdrew this job task", task=event.task, withdraw=True)
            return
        if not self._reported(job, step, event):
            return
        step.attempt = event.attempt
        step.status = "running"
        step.agent = event.agent
        step.started_at = event.at
        step.finished_at = step.exit_code = step.error = None
        if event.name:
            step.name = event.name
        job.waiting = None
        if job.agent is None:  # job affinity: the agent that took the task keeps the job's workspace
            job.agent, job.affinity = event.agent, True

    def _step_result(self, event: StepSucceeded | StepFailed) -> None:
        found = self._find(event.job_id, event.step_index)
        if found is None:
            return
        job, step = found
        if isinstance(event, StepFailed) and event.agent_lost:
            if event.task == job.task and job.task_out:
                self._agent_lost(job, event)
            return
        if not self._reported(job, step, event):
            return
        step.attempt = event.attempt
        step.agent = event.agent
        step.exit_code = event.exit_code
        step.error = event.error
        step.annotations = list(event.annotations)
        step.summary = event.summary
        step.started_at = step.started_at or event.started_at
        step.finished_at = event.at
        if job.agent is None:
            job.agent, job.affinity = event.agent, True
        if isinstance(event, StepSucceeded):
            step.outputs = dict(event.outputs)
            self._conclude(job, step, "success")
        elif event.cancelled or step.cancel_requested:
            self._conclude(job, step, "cancelled")
        elif event.retry_delay is not None:  # the agent runs the next attempt (now, or after a timer)
            self._record_attempt(step, "failed")
            step.status = "retrying"
        else:
            self._conclude(job, step, "failure", event.continue_on_error)
        self._hand_back_if_due(job)

    def _agent_lost(self, job: JobState, event: StepFailed) -> None:
        """The agent holding the job's task was lost (a scheduler saw it stop heartbeating, or
        drained its queued task): its workspace is gone, so the job fails at once, naming it.
        Whatever step the report names, the job's current step is the one that fails."""
        job.task_out = False
        self._lose_workspace(job, event.agent, event.error or f"agent {event.agent!r} lost")
        self.continue_job(job)
        self.advance()

    def _lose_workspace(self, job: JobState, agent: str, step_error: str) -> None:
        """``agent``, which held the job's workspace, is gone: the step it was at and the job
        fail, naming it (a run retry runs the whole job again, anywhere)."""
        job.lost_agent = agent
        step = next((s for s in job.steps if s.status in IN_PROGRESS), None)
        if step is not None:
            step.agent = step.agent or agent
            self._fail_without_running(job, step, step_error)
        self._fail_job(job, f"lost communication with agent {agent!r}, which held this job's workspace; "
                            "retry the run to run the job again")

    def _step_skipped(self, event: StepSkipped) -> None:
        """A step whose ``if`` the agent running the job found false."""
        found = self._find(event.job_id, event.step_index)
        if found is None or not event.task:
            return  # the scheduler's own skips are already applied
        job, step = found
        if event.task != job.task or not job.task_out or step.status != "pending":
            return
        step.status = "skipped"
        step.outcome = step.conclusion = "skipped"
        self._hand_back_if_due(job)

    def _job_ran(self, event: JobRan) -> None:
        """The agent hands the job back: end it, wait, or run it again after an interruption.
        Not before every step event it follows is in the state (see ``JobRan.outcomes``)."""
        job = self.state.jobs.get(event.job_id)
        if job is None or job.status != "running" or event.task != job.task or not job.task_out:
            return
        if not all(self._shows(job, outcome) for outcome in event.outcomes):
            job.handed_back = event  # a step event is still on its way: act when it is in
            return
        job.task_out = False
        job.handed_back = None
        if event.interrupted:
            self._interrupted(job, event.agent)
            return
        if event.retry_delay is not None and event.next_step is not None:
            found = self._find(job.id, event.next_step)
            if found is not None and found[1].status == "retrying":
                step = found[1]
                if step.cancel_requested or job.cancelled or job.error:  # stopped meanwhile: no next attempt
                    step.status = "cancelled"
                    step.outcome = step.conclusion = "cancelled"
                    step.finished_at = self.now
                else:
                    self.effects.timer("retry", self.now + timedelta(seconds=event.retry_delay), job=job.id,
                                       step=step.index, attempt=step.attempt)
                    return
        self.continue_job(job)
        self.advance()

    def _shows(self, job: JobState, outcome: StepOutcome) -> bool:
        """Does the state show the step as the agent's hand-back says it ended?"""
        if not 0 <= outcome.index < len(job.steps):
            return True
        step = job.steps[outcome.index]
        # Ended at that attempt (as the agent said, or as the scheduler concluded it: a step
        # with a cancel requested ends cancelled whatever it reported), or moved on since.
        return step.attempt > outcome.attempt or (step.attempt == outcome.attempt and step.status in _ENDED)

    def _hand_back_if_due(self, job: JobState) -> None:
        """A step event came in: act on a hand-back that was waiting for it."""
        if job.handed_back is not None:
            self._job_ran(job.handed_back)

    def _interrupted(self, job: JobState, agent: str) -> None:
        """The job task was delivered again (to ``agent``): whoever had it stopped answering.

        If earlier steps ran on another agent, the job's workspace went with that agent: the job
        fails, saying so (a run retry runs the whole job again). Otherwise the step it was at
        runs again as a new attempt (its interrupted one kept in the history), on ``agent``."""
        step = next((s for s in job.steps if s.status in IN_PROGRESS), None)
        ran_elsewhere = job.agent is not None and job.agent != agent and any(
            s.status in TERMINAL and s.agent not in (None, "scheduler") for s in job.steps
        )
        if ran_elsewhere:
            assert job.agent is not None
            self._lose_workspace(job, job.agent, f"interrupted: agent {job.agent!r} stopped answering")
        elif step is not None:
            if job.affinity and job.agent != agent:
                job.agent, job.affinity = None, False  # nothing ran there: any agent of the group may take it
            if step.status != "retrying":  # (a retrying step's last attempt is already recorded)
                step.error = (f"interrupted: the job task was delivered again (agent {step.agent or '?'} "
                              "stopped answering or handed it back)")
                step.finished_at = self.now
                if sum(1 for a in step.attempts if a.interrupted) >= MAX_INTERRUPTIONS:
                    self._fail_without_running(job, step, f"interrupted {MAX_INTERRUPTIONS + 1} times; giving up")
                    self.continue_job(job)
                    self.advance()
                    return
                self._record_attempt(step, "failed", interrupted=True)
            self._dispatch(job, step)
            return
        self.continue_job(job)
        self.advance()

    def _record_attempt(self, step: StepState, status: str, interrupted: bool = False) -> None:
        step.attempts.append(AttemptRecord(
            attempt=step.attempt, status=status, agent=step.agent, exit_code=step.exit_code,  # type: ignore[arg-type]
            error=step.error, started_at=step.started_at, finished_at=step.finished_at, interrupted=interrupted,
            run_attempt=self.state.attempt,
        ))

    def _conclude(self, job: JobState, step: StepState, outcome: str, continue_on_error: bool | None = None) -> None:
        """End the step with ``outcome``; a failure's ``continue-on-error`` is the agent's answer
        when it ran the step, else evaluated here."""
        step.outcome = outcome
        if outcome == "failure" and continue_on_error is None:
            step_plan = self.plan.jobs[job.job].steps[step.index]
            try:
                continue_on_error, problem = step_policy.continues_on_error(
                    step_plan, self.contexts.step(job, step) if isinstance(step_plan.continue_on_error, str) else {},
                )
            except ExpressionError as error:  # the step's contexts themselves (its env) failed
                continue_on_error, problem = False, f"continue-on-error: {error}"
            if problem:
                step.error = f"{step.error or 'failed'}; {problem}"
        step.conclusion = "success" if outcome == "failure" and continue_on_error else outcome
        step.status = {"success": "succeeded", "failure": "failed", "cancelled": "cancelled"}[outcome]  # type: ignore[assignment]
        self._record_attempt(step, step.status)

    def _fail_without_running(self, job: JobState, step: StepState, error: str) -> None:
        step.error = mask(error, self.secrets.values())
        step.finished_at = self.now
        self._conclude(job, step, "failure")

    def _start_step(self, job: JobState, step: StepState, step_plan: StepPlan, ctx: dict[str, object]) -> bool:
        """Begin a step whose ``if`` held; False if it could not start (it is then failed and the
        walk goes on)."""
        step.name = step_policy.display_name(step_plan, ctx) or step.name
        if step_policy.is_sleep(step_plan):
            try:
                seconds = step_policy.sleep_seconds(evaluate_value(dict(step_plan.with_), ctx).get("seconds", 0))  # type: ignore[union-attr]
            except (ExpressionError, ValueError) as error:
                self._fail_without_running(job, step, f"sleep: {error}")
                return False
            step.attempt += 1
            step.status = "running"
            step.agent = "scheduler"
            step.started_at = self.now
            self.effects.timer("sleep", self.now + timedelta(seconds=seconds), job=job.id, step=step.index, attempt=step.attempt)
            return True
        return self._dispatch(job, step)

    def _dispatch(self, job: JobState, step: StepState) -> bool:
        """Send the job, from ``step`` on, as a new job task (to its agent, or its group's queue)."""
        job_plan = self.plan.jobs[job.job]
        try:
            ctx = self.contexts.job(job_plan, job)
        except ExpressionError as error:
            self._fail_without_running(job, step, f"env: {error}")
            return False
        try:
            timeout = self._job_timeout(job) or self.plan.timeout_minutes
        except ValueError as error:
            self._fail_without_running(job, step, f"timeout-minutes: {error}")
            return False
        task = JobTask(
            run_id=self.state.run_id, job=for_agent(job), plan=job_plan, contexts=ctx, task=job.task + 1,
            from_step=step.index, attempt=step.attempt + 1, tried=step_policy.tried(step, self.state.attempt),
            timeout_minutes=timeout, mask=sorted(set(self.secrets.values())),
        )
        task = msgspec.structs.replace(task, token=self.effects.task_token(task.key))
        data = encode(task)
        size = len(data)
        if size > MAX_JOB_TASK_BYTES:
            self._fail_without_running(job, step, (
                f"the job's task is {size} bytes encoded, over the limit of {MAX_JOB_TASK_BYTES} (its plan, contexts "
                "and the outputs of its earlier steps with an id): pass large data as files (file/upload), not outputs"))
            return False
        step.attempt += 1
        step.status = "dispatched"
        step.dispatched_at = self.now
        step.started_at = step.finished_at = None
        step.exit_code = None
        step.error = None
        step.agent = None
        job.task += 1
        job.task_out = True
        job.handed_back = None
        self.effects.task(task, job.agent, data)
        self.effects.event(StepDispatched(run_id=self.state.run_id, job_id=job.id, step_index=step.index,
                                          attempt=step.attempt, group=job.runs_on, task=job.task, at=self.now))
        if self.fleet is not None:
            healthy = self.healthy(job.runs_on, job_plan)
            if job.agent is None and not healthy:
                self._wait_for_agent(job, step, f"no healthy agent in group {job.runs_on!r}")
            elif job.agent is not None and job.agent not in healthy:
                self._wait_for_agent(job, step, f"agent {job.agent!r}, which this job runs on, is not healthy")
        return True

    def _wait_for_agent(self, job: JobState, step: StepState, reason: str) -> None:
        """The task is queued for agents that are not there: say so, and bound the wait."""
        job.waiting = reason
        self.effects.event(JobWaiting(
            run_id=self.state.run_id, job_id=job.id, step_index=step.index, attempt=step.attempt, group=job.runs_on,
            reason=job.waiting, queue_timeout_minutes=self.queue_timeout_minutes, at=self.now,
        ))
        self.effects.timer("queue-timeout", self.now + timedelta(minutes=self.queue_timeout_minutes),
                           job=job.id, step=step.index, attempt=step.attempt)


backoff_delay = step_policy.backoff_delay
