"""One job task on this agent: the job's steps walked in order, as a GitHub runner does.

The scheduler sends a job once (``waterflow_common.tasks.JobTask``); this walks its steps on
this agent, so the workspace, files, ``$WATERFLOW_ENV`` and checked-out code carry from step to
step. For each step it decides, with the scheduler's own rules (``waterflow_common.steps`` over
``contexts.step_contexts_in_job``): ``if``, ``with``, the script, the timeout, retries with
backoff and ``continue-on-error``; and it publishes the step's events (proved with the task's
token) for the scheduler to record. It hands the job back (``job.ran``) at its end, or before a
wait that must outlive this process: a ``sleep`` step, or a retry backoff longer than the
agent's ``local_wait_seconds`` (30 s) — the scheduler holds those on durable timers and sends the
job back here when they fire.

A ``CancelJob`` stops the running step; the later steps then see ``cancelled()``, so only those
that ask for it (``always()``) run. A withdrawn task stops at once.
"""

from __future__ import annotations

import asyncio
import enum
import os
import platform
from typing import TYPE_CHECKING

import msgspec

from waterflow_common import contexts
from waterflow_common import steps as step_policy
from waterflow_common.expressions import ExpressionError
from waterflow_common.limits import MAX_STEP_RESULT_BYTES
from waterflow_common.log import get_logger
from waterflow_common.messages import (
    JobRan,
    StepFailed,
    StepRetrying,
    StepSkipped,
    StepStarted,
    StepSucceeded,
    StepOutcome,
    StepTask,
    encode,
    step_key,
    utcnow,
)
from waterflow_common.plan import StepPlan
from waterflow_common.secrets import mask
from waterflow_common.signing import sign_with_token
from waterflow_common.state import TERMINAL, StepState
from waterflow_common.tasks import JobTask

from .executor import execute_step
from .logsink import LogSink
from .nodes.registry import agent_registry, default_plugin_dir
from .runner import step_environment

if TYPE_CHECKING:
    from .service import Agent

log = get_logger("waterflow.agent.job")
MAX_ERROR_CHARS = 4000
"""Characters of a step's error message kept in its result (the log has the rest)."""


class Ended(enum.Enum):
    """How a walk ended."""

    HANDED_BACK = "handed back"
    """``job.ran`` published: the job is the scheduler's again (done, or waiting on a timer)."""
    WITHDRAWN = "withdrawn"
    """The scheduler gave the task up: nothing more was published."""
    SHUTDOWN = "shutdown"
    """This agent is stopping: the task goes back to the queue unfinished."""


class JobRun:
    """Walks one job task's steps on this agent (see the module docstring)."""

    def __init__(self, agent: Agent, task: JobTask, pinned: bool) -> None:
        self.agent = agent
        self.task = task
        self.job = task.job
        """This agent's copy of the job's state, updated as its steps end (for ``steps.*``)."""
        self.pinned = pinned
        """Came on this agent's own subject: nobody else can take it over if this agent dies."""
        self.ran_a_step = False
        """A step of it has run here: from now on the job's workspace is on this agent."""
        if self.job.agent is None:
            self.job.agent = agent.name  # the ``agent`` context of its steps
        self.current: str | None = None
        """The step attempt running now (``messages.step_key``), for heartbeats."""
        self._cancel = asyncio.Event()
        self._reasons: list[str] = []
        self._withdrawn = False
        self._outcomes: list[StepOutcome] = []
        """How each step ended here, for ``job.ran`` (the scheduler acts on it once it has them all)."""
        self._publishing: list[asyncio.Task[None]] = []
        """Events published and not yet known to be stored (see :meth:`_publish`)."""
        self.log = log.bind(run_id=task.run_id, job=task.job.id, task=task.task)

    @property
    def holds_workspace(self) -> bool:
        """Only this agent can finish the job: it came on its own subject, or a step of it ran
        here. Its running step is then listed in the heartbeat (``pinned_steps``), so that if
        this agent is lost the scheduler fails the job at once, naming it, instead of the task
        waiting for ``ack_wait`` and another agent of the group (``agents.fail_lost_steps``)."""
        return self.pinned or self.ran_a_step

    def cancel(self, reason: str, withdraw: bool) -> None:
        """A CancelJob from the scheduler: stop the running step (and, withdrawn, everything);
        the later steps see ``cancelled()``."""
        self.job.cancelled = True
        self._reasons.append(reason)
        self._withdrawn = self._withdrawn or withdraw
        self._cancel.set()

    async def run(self) -> Ended:
        try:
            return await self._walk()
        finally:
            await self._stored()

    async def _walk(self) -> Ended:
        task, job, plan = self.task, self.job, self.task.plan
        for index in range(task.from_step, len(job.steps)):
            step, step_plan = job.steps[index], plan.steps[index]
            if self._withdrawn:
                return Ended.WITHDRAWN
            if step.status in TERMINAL and index != task.from_step:
                continue
            if index != task.from_step and step_policy.is_sleep(step_plan):
                return await self._hand_job_back(next_step=index)  # a durable timer's, not this process's
            attempt = task.attempt if index == task.from_step else step.attempt + 1
            try:
                ctx = contexts.step_contexts_in_job(task.contexts, plan, job, index)
                ctx["agent"] = {**ctx["agent"], "os": platform.system().lower(), "arch": platform.machine().lower()}
            except ExpressionError as error:
                await self._fail_unrun(step, step_plan, attempt, f"env: {error}", None)
                continue
            if index != task.from_step:  # the scheduler decided the first step's ``if``
                try:
                    run_it = step_policy.should_run(job, step_plan, ctx)
                except ExpressionError as error:
                    await self._fail_unrun(step, step_plan, attempt, f"step 'if' could not be evaluated: {error}", ctx)
                    continue
                if not run_it:
                    step.status = "skipped"
                    step.outcome = step.conclusion = "skipped"
                    self._outcomes.append(StepOutcome(index, step.attempt, "skipped"))
                    await self._publish(StepSkipped(run_id=task.run_id, job_id=job.id, step_index=index,
                                                    reason="condition false", task=task.task))
                    continue
            ended = await self._run_step(step, step_plan, ctx, attempt)
            if ended is not None:
                return ended
        return await self._hand_job_back(next_step=None)

    async def _run_step(self, step: StepState, step_plan: StepPlan, ctx: dict[str, object], attempt: int) -> Ended | None:
        """Run a step's attempts until it ends here (None) or the walk must stop."""
        task = self.task
        failed_before = task.tried if step.index == task.from_step else 0
        name = step_policy.display_name(step_plan, ctx)
        if name:
            step.name = name
        while True:
            try:
                concrete = step_policy.concrete(step_plan, ctx)
            except ExpressionError as error:
                await self._fail_unrun(step, step_plan, attempt, f"expression error: {error}", ctx)
                return None
            try:
                timeout = step_policy.timeout_seconds(step_plan, ctx, task.timeout_minutes)
            except ValueError as error:
                await self._fail_unrun(step, step_plan, attempt, f"timeout-minutes: {error}", ctx)
                return None
            step_task = StepTask(
                run_id=task.run_id, job_id=self.job.id, step=concrete, attempt=attempt, group=task.group,
                env=dict(ctx["env"]), timeout_seconds=timeout, mask=task.mask, token=task.token, task=task.task,  # type: ignore[arg-type]
            )
            result = await self._attempt(step_task, name)
            if result is None:
                return Ended.SHUTDOWN
            if self._withdrawn:
                return Ended.WITHDRAWN
            step.attempt = attempt
            if isinstance(result, StepFailed) and not result.cancelled:
                delay = step_policy.retry_delay(step_plan.retry, failed_before + 1, result.retryable)
                if delay is not None:
                    failed_before += 1
                    await self._publish(msgspec.structs.replace(result, retry_delay=delay))
                    await self._publish(StepRetrying(run_id=task.run_id, job_id=self.job.id, step_index=step.index,
                                                     attempt=attempt, delay=delay, task=task.task))
                    if delay > self.agent.settings.local_wait_seconds:
                        step.status = "retrying"
                        self._outcomes.append(StepOutcome(step.index, attempt, "retrying"))
                        return await self._hand_job_back(next_step=step.index, retry_delay=delay)
                    if await self._wait_or_cancel(delay):
                        if self.agent.stopping.is_set():
                            return Ended.SHUTDOWN
                        await self._end(step, StepFailed(
                            run_id=task.run_id, job_id=self.job.id, step_index=step.index, attempt=attempt + 1,
                            agent=self.agent.name, task=task.task, cancelled=True, retryable=False,
                            error=f"cancelled: {self._reasons[0]}",
                        ), step_plan, ctx)
                        return None
                    attempt += 1
                    continue
            await self._end(step, result, step_plan, ctx)
            return None

    async def _end(self, step: StepState, result: StepSucceeded | StepFailed, step_plan: StepPlan,
                   ctx: dict[str, object] | None) -> None:
        """Publish the step's last result (with its ``continue-on-error``) and keep its outcome
        for the later steps' contexts."""
        step.attempt = result.attempt
        if isinstance(result, StepSucceeded):
            step.outputs = dict(result.outputs)
            step.status, step.outcome = "succeeded", "success"
        elif result.cancelled:
            step.status, step.outcome = "cancelled", "cancelled"
        else:
            continue_on_error, problem = (step_policy.continues_on_error(step_plan, ctx) if ctx is not None
                                          else (False, None))
            if problem:
                result = msgspec.structs.replace(result, error=f"{result.error or 'failed'}; {problem}")
            result = msgspec.structs.replace(result, continue_on_error=continue_on_error)
            step.status, step.outcome = "failed", "failure"
        step.conclusion = "success" if isinstance(result, StepFailed) and result.continue_on_error else step.outcome
        self._outcomes.append(StepOutcome(step.index, result.attempt, step.status))
        await self._publish(result)

    async def _fail_unrun(self, step: StepState, step_plan: StepPlan, attempt: int, error: str,
                          ctx: dict[str, object] | None) -> None:
        """A step that cannot start (an expression that fails): it fails, and the walk goes on."""
        await self._end(step, StepFailed(
            run_id=self.task.run_id, job_id=self.job.id, step_index=step.index, attempt=attempt, agent=self.agent.name,
            task=self.task.task, retryable=False, error=mask(error, self.task.mask),
        ), step_plan, ctx)

    async def _attempt(self, task: StepTask, name: str | None) -> StepSucceeded | StepFailed | None:
        """Run one attempt: ``step.started``, the step with its live log, and its result (not yet
        published). None when this agent is shutting down (the task goes back to the queue)."""
        agent = self.agent
        if self._cancel.is_set():
            # A cancel that came before this step started was weighed by its ``if`` (an
            # ``always()`` step runs after a cancel): only a cancel from now on stops it.
            self._cancel, self._reasons = asyncio.Event(), []
        self.current = step_key(task.run_id, task.job_id, task.step.index, task.attempt, task.task)
        if self.holds_workspace:
            agent.on_pinned_step()
        bound = self.log.bind(step=task.step.index, attempt=task.attempt)
        await self._publish(StepStarted(run_id=task.run_id, job_id=task.job_id, step_index=task.step.index,
                                        attempt=task.attempt, agent=agent.name, task=task.task, name=name))
        bound.info("step.started")
        started_at = utcnow()
        sink = LogSink(agent.js, task)
        workspace = agent.work_dir / task.run_id / task.job_id
        extra = {
            "CI": "true",
            "WATERFLOW": "true",
            "WATERFLOW_RUN_ID": task.run_id,
            "WATERFLOW_JOB": task.job_id,
            "WATERFLOW_STEP": str(task.step.index),
            "WATERFLOW_ATTEMPT": str(task.attempt),
            "WATERFLOW_AGENT": agent.name,
            "WATERFLOW_GROUP": task.group,
            "WATERFLOW_WORKSPACE": str(workspace),
        }
        stop_on_shutdown = asyncio.create_task(_relay(agent.stopping, self._cancel))
        try:
            result = await execute_step(
                task, workspace=workspace, temp_dir=agent.work_dir / "_temp",
                env=step_environment(os.environ, task, extra), emit=sink.emit, cancel=self._cancel,
                js=agent.js, registry=agent_registry(default_plugin_dir(agent.settings)), masker=sink.masker,
            )
        finally:
            stop_on_shutdown.cancel()
            await sink.close()
            self.current = None
            self.ran_a_step = True
        if agent.stopping.is_set() and not self._reasons:
            bound.info("step.handed_back")
            return None
        masked = sink.masker  # the task's secrets and every ::add-mask:: of the step
        reasons = self._reasons
        event: StepSucceeded | StepFailed = (StepSucceeded if result.succeeded else StepFailed)(
            run_id=task.run_id, job_id=task.job_id, step_index=task.step.index, attempt=task.attempt, task=task.task,
            agent=agent.name, exit_code=result.exit_code, outputs={k: masked(v) for k, v in result.outputs.items()},
            error=f"cancelled: {reasons[0]}" if reasons else (result.error and masked(result.error[:MAX_ERROR_CHARS])),
            started_at=started_at, cancelled=bool(reasons),
            annotations=tuple(msgspec.structs.replace(a, message=masked(a.message)) for a in result.annotations),
            summary=masked(result.summary) if result.summary else None,
            **({} if result.succeeded else {"retryable": result.retryable}),
        )
        size = len(encode(event))
        if size > MAX_STEP_RESULT_BYTES:
            # Too big for one NATS message: it would never be stored and the run would hang.
            event = StepFailed(
                run_id=task.run_id, job_id=task.job_id, step_index=task.step.index, attempt=task.attempt, task=task.task,
                agent=agent.name, exit_code=result.exit_code, started_at=started_at, retryable=False,
                error=(f"the step's outputs are {size} bytes encoded, over the limit of {MAX_STEP_RESULT_BYTES}: "
                       "pass large data as a file (file/upload) and its name as the output"),
            )
        bound.info("step.finished", exit_code=result.exit_code, ok=result.succeeded)
        return event

    async def _wait_or_cancel(self, seconds: float) -> bool:
        """Wait a retry backoff here; True if the job was cancelled (or the agent stops) meanwhile."""
        stop = asyncio.create_task(self._cancel.wait())
        shutdown = asyncio.create_task(self.agent.stopping.wait())
        try:
            done, _ = await asyncio.wait({stop, shutdown}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            shutdown.cancel()
        return bool(done)

    async def _hand_job_back(self, next_step: int | None, retry_delay: float | None = None) -> Ended:
        await self._stored()  # the scheduler acts on job.ran: every step event must be in before it
        await self._publish(JobRan(run_id=self.task.run_id, job_id=self.job.id, task=self.task.task, agent=self.agent.name,
                                   next_step=next_step, retry_delay=retry_delay, outcomes=tuple(self._outcomes)))
        await self._stored()
        return Ended.HANDED_BACK

    async def _publish(self, event: StepStarted | StepSucceeded | StepFailed | StepSkipped | StepRetrying | JobRan) -> None:
        """Publish without waiting for the stream's answer: the step's process starts while its
        ``step.started`` is on the wire, and the next step while the last result is (messages of
        one connection are stored in the order they were sent). What was published is known to
        be stored before the job is handed back (:meth:`_stored`)."""
        if self._withdrawn:
            return
        self._publishing = [p for p in self._publishing if not p.done()]
        self._publishing.append(asyncio.create_task(self.agent.publish(sign_with_token(self.task.token, event))))

    async def _stored(self) -> None:
        """Wait until every event published so far is stored (each is retried until it is)."""
        publishing, self._publishing = self._publishing, []
        await asyncio.gather(*publishing)


async def _relay(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()
