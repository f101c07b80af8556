"""The current state of a run: a projection of its events, kept in the ``wf_runs`` KV bucket.

Only the scheduler changes it (with revision checks, so several schedulers are safe); the API
writes the first version at submit and reads it for ``GET /v1/workflows/{id}``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from .messages import Annotation, JobRan, RunCreated
from .plan import Plan

RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JobStatus = Literal["pending", "running", "succeeded", "failed", "skipped", "cancelled"]
StepStatus = Literal[
    "pending", "dispatched", "running", "retrying", "succeeded", "failed", "skipped", "cancelled"
]
TERMINAL = frozenset({"succeeded", "failed", "skipped", "cancelled"})


class Outgoing(msgspec.Struct, frozen=True, kw_only=True):
    """A message the scheduler decided to publish: kept in the state until published.

    Writing the decision and publishing it cannot be one atomic act; keeping it here means a
    scheduler that dies between the two leaves the decision to whoever handles the run next.
    ``stored`` is False for core-NATS control messages (cancel a step on an agent).
    """

    subject: str
    msg_id: str
    data: bytes
    at: datetime
    headers: dict[str, str] = {}
    stored: bool = True


class AttemptRecord(msgspec.Struct, kw_only=True):
    """One finished attempt of a step, kept for history when the step is retried."""

    attempt: int
    status: StepStatus
    agent: str | None = None
    exit_code: int | None = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    interrupted: bool = False
    """Delivered a second time (its agent died or handed it back): replaced by a new attempt."""
    run_attempt: int = 0
    """The run's attempt it belongs to (each run retry gives a step its ``retry:`` budget again)."""


class StepState(msgspec.Struct, kw_only=True):
    index: int
    name: str
    id: str | None = None
    status: StepStatus = "pending"
    attempt: int = 0
    """The current (or last) attempt number; attempts are numbered across run retries."""
    agent: str | None = None
    exit_code: int | None = None
    error: str | None = None
    outputs: dict[str, str] = {}
    outcome: str | None = None
    """GitHub's steps.<id>.outcome: success | failure | cancelled | skipped (before continue-on-error)."""
    conclusion: str | None = None
    """GitHub's steps.<id>.conclusion: the outcome after continue-on-error."""
    dispatched_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: list[AttemptRecord] = []
    cancel_requested: bool = False
    annotations: list[Annotation] = []
    """``::error``/``::warning``/``::notice`` lines of the last attempt."""
    summary: str | None = None
    """The last attempt's ``$GITHUB_STEP_SUMMARY`` (Markdown)."""


class JobState(msgspec.Struct, kw_only=True):
    id: str
    """Unique in the run: the plan job id, or ``<job>-<n>`` / ``<job>-<agent>`` for instances."""
    job: str
    """The plan job this is (or is an instance of)."""
    name: str
    runs_on: str
    needs: tuple[str, ...] = ()
    status: JobStatus = "pending"
    parent: str | None = None
    """For a matrix or fan-out instance: the aggregate job's id."""
    instances: list[str] = []
    """For an aggregate job: its instances' ids (empty until the job is expanded)."""
    matrix: dict[str, object] | None = None
    agent: str | None = None
    """The one agent that runs this job's steps: the target of a fan-out instance, the member
    chosen in a defined group, or (``affinity``) the agent that took its job task. Every step
    of a job runs on one agent, as on a GitHub runner: workspace, files and env carry over."""
    affinity: bool = False
    """``agent`` was learned when an agent took the job task (not fixed by fan-out or a group
    definition): a run retry may choose another agent if this one was lost."""
    waiting: str | None = None
    """Why the job's queued step has not started (no healthy agent in its group); cleared when
    an agent takes it."""
    lost_agent: str | None = None
    """The agent this job lost (stopped heartbeating with the job's workspace)."""
    task: int = 0
    """The number of the job's latest job task (``tasks.JobTask``), counted across run retries."""
    task_out: bool = False
    """A job task is out (queued or running on an agent): the agent walks the steps, and the
    scheduler only records their events until the agent hands the job back (``job.ran``)."""
    handed_back: JobRan | None = None
    """A ``job.ran`` applied before some of the step events it follows (events of a run may be
    applied out of order): acted on once they are all in."""
    outputs: dict[str, object] = {}
    error: str | None = None
    cancelled: bool = False
    """Stopped by a run cancel while running (an ``always()`` job started later is not)."""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    steps: list[StepState] = []

    @property
    def is_aggregate(self) -> bool:
        """A matrix or fan-out job: its steps run in its instances, not in itself."""
        return self.parent is None and not self.steps


class RunState(msgspec.Struct, kw_only=True):
    run_id: str
    workflow: str
    status: RunStatus = "queued"
    attempt: int = 1
    """Incremented by each retry of the run."""
    inputs: dict[str, object] = {}
    event_name: str = "api"
    """What started the run, as GitHub's ``github.event_name``: ``api`` (a submit), ``schedule``
    (a cron trigger) or ``webhook``."""
    event: object = None
    """``github.event``: the webhook's JSON body; ``{"inputs": ...}`` for a submit."""
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cancel_requested: bool = False
    error: str | None = None
    timed_out: bool = False
    """The run was stopped by its ``timeout-minutes``: it ends ``failed``, not ``cancelled``."""
    concurrency_group: str | None = None
    queued_behind: str | None = None
    """While queued by ``concurrency``: the run holding the group."""
    jobs: dict[str, JobState] = {}
    outbox: list[Outgoing] = []

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


def initial_state(
    run_id: str, plan: Plan, created_at: datetime, inputs: dict[str, object] | None = None,
    event_name: str = "api", event: object = None,
) -> RunState:
    """The state of a run that has just been accepted: every job and step pending.

    Matrix and fan-out jobs start as one pending aggregate without steps; the scheduler expands
    them into instances when they become ready (the matrix may depend on earlier outputs, the
    agents of a group on who is online then).
    """
    jobs = {}
    for job in plan.jobs.values():
        expands = job.expands
        jobs[job.id] = JobState(
            id=job.id,
            job=job.id,
            name=job.name,
            runs_on=job.runs_on,
            needs=job.needs,
            steps=[] if expands else [StepState(index=s.index, name=s.name, id=s.id) for s in job.steps],
        )
    return RunState(run_id=run_id, workflow=plan.name, created_at=created_at, inputs=dict(inputs or {}), jobs=jobs,
                    event_name=event_name, event={"inputs": dict(inputs or {})} if event is None else event)


_encoder = msgspec.json.Encoder()
_state_decoder = msgspec.json.Decoder(RunState)
_plan_decoder = msgspec.json.Decoder(Plan)


def encode_state(state: RunState) -> bytes:
    return _encoder.encode(state)


def decode_state(data: bytes) -> RunState:
    return _state_decoder.decode(data)


def encode_plan(plan: Plan) -> bytes:
    return _encoder.encode(plan)


def decode_plan(data: bytes) -> Plan:
    return _plan_decoder.decode(data)


def state_of(created: RunCreated, plan: Plan) -> RunState:
    """The first state of the run ``created`` announces (the API's and a scheduler's, alike)."""
    return initial_state(created.run_id, plan, created.at, dict(created.inputs), created.event_name, created.event)
