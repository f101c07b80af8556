"""What every layer of the run state machine shares: the state being changed, the effects
being decided, and the few values and helpers all layers use.

The machine is one object per applied event (``machine._Run``), written in layers that call each
other freely: the run (``machine.py``: events, starting jobs, cancel, retry, ending the run),
its jobs and their matrix/fan-out instances (``job_rules.py``), and each job's steps
(``step_rules.py``: dispatch, results, retries, timeouts). This module is what they have in common.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from waterflow_common import subjects
from waterflow_common.groups import Fleet
from waterflow_common.messages import (
    CancelJob,
    Event,
    TimerFired,
    TimerSet,
    encode,
)
from waterflow_common.plan import JobPlan, Plan
from waterflow_common.signing import Signer
from waterflow_common.state import JobState, Outgoing, RunState, StepState
from waterflow_common.tasks import JobTask

from waterflow_common import contexts


IN_PROGRESS = frozenset({"dispatched", "running", "retrying"})
"""Step statuses of an attempt under way (queued for an agent, running, or waiting to retry)."""
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

    def task(self, task: JobTask, agent: str | None, data: bytes) -> None:
        """Send a job task to ``agent`` (or its group's queue); ``data``: ``task`` encoded (its
        size was checked against the limit)."""
        subject = subjects.agent_tasks(agent) if agent else subjects.group_tasks(task.group)
        self.outgoing.append(Outgoing(subject=subject, msg_id=f"{task.key}:task", data=data, at=self.now))

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

    def cancel_job(self, agent: str, job: JobState, reason: str, task: int | None = None, withdraw: bool = False) -> None:
        """Tell ``agent`` to stop the job task it runs (``withdraw``: and run nothing more of it)."""
        command = CancelJob(run_id=self.state.run_id, job_id=job.id, task=task or job.task, reason=reason, withdraw=withdraw)
        self.outgoing.append(Outgoing(
            subject=subjects.agent_control(agent), msg_id=f"{command.key}:cancel:{withdraw}:{reason}", data=encode(command),
            at=self.now, stored=False,
        ))


class RunRules:
    """State and helpers of one event's application, shared by the run, job and step layers."""

    defined_groups: frozenset[str] = frozenset()
    """Groups that exist only as definitions: their jobs go to one member agent's own subject."""
    queue_timeout_minutes: float = DEFAULT_QUEUE_TIMEOUT_MINUTES

    def __init__(self, state: RunState, plan: Plan, effects: Effects, fleet: Fleet | None, secrets: Mapping[str, str]) -> None:
        self.state = state
        self.plan = plan
        self.effects = effects
        self.fleet = fleet
        self.secrets = secrets
        self.contexts = contexts.EventContexts(state, plan, secrets)
        """Contexts for expressions, the run level built once for this event."""

    def healthy(self, group: str, job_plan: JobPlan) -> list[str]:
        """The healthy agents of ``group`` with the job's labels (none if unknown)."""
        return self.fleet.healthy(group, job_plan.labels) if self.fleet is not None else []

    @property
    def now(self) -> datetime:
        return self.effects.now

    def _find(self, job_id: str, index: int | None) -> tuple[JobState, StepState] | None:
        job = self.state.jobs.get(job_id)
        if job is None or index is None or not 0 <= index < len(job.steps):
            return None
        return job, job.steps[index]
