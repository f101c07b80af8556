"""Every message that crosses NATS, as frozen msgspec Structs, decoded once at the boundary.

Events form one tagged union (:data:`Event`): the tag is the event type and also the last two
tokens of its subject (``wf.events.<run>.step.succeeded``), so a user subscribing for
notifications filters by subject and a service decodes by tag, and both say the same thing.
Every event names its own deduplication id (:meth:`EventBase.msg_id`) so a replayed publish is
dropped by JetStream instead of becoming a second event.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import msgspec

from .plan import StepPlan


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- compile (request/reply) -----------------------------------------------------------------
class CompileRequest(msgspec.Struct, frozen=True, kw_only=True):
    source: str
    filename: str = "workflow.yml"
    workflows: dict[str, str] = {}
    """Files the workflow calls with job-level ``uses:``, by key (``templates/deploy.yml`` relative
    to ``filename``'s directory, or ``name@v1``); see ``waterflow_compiler.reuse.collect``."""


class CompileReply(msgspec.Struct, frozen=True, kw_only=True):
    plan: bytes | None = None
    """The encoded Plan (JSON) when there is no error."""
    diagnostics: list[object] = []
    """Diagnostics as builtins; see waterflow_common.diagnostics.Diagnostic."""


# --- tasks (scheduler -> agent) --------------------------------------------------------------
def job_task_key(run_id: str, job_id: str, task: int) -> str:
    """Names one job task (``tasks.JobTask``): what its token proves and its events carry."""
    return f"{run_id}:{job_id}:task:{task}"


class StepTask(msgspec.Struct, frozen=True, kw_only=True):
    """One attempt of one step, as the agent running its job task hands it to the executor
    (the scheduler sends whole jobs: ``tasks.JobTask``)."""

    run_id: str
    job_id: str
    step: StepPlan
    attempt: int
    group: str
    env: dict[str, str] = {}
    """Workflow, job and step env already merged (step wins)."""
    timeout_seconds: float | None = None
    mask: list[str] = []
    """Secret values this step can see: the agent replaces them with *** in logs and outputs."""
    token: str = ""
    """The job task's token: proves this attempt's events and logs came from the agent that got
    the task (``signing.py``)."""
    task: int = 0
    """The job task this attempt runs in (``job_task_key``)."""

    @property
    def key(self) -> str:
        return f"{self.run_id}:{self.job_id}:{self.step.index}:{self.attempt}"


def step_key(run_id: str, job_id: str, index: int, attempt: int, task: int) -> str:
    """How an agent names a step attempt it runs (heartbeats: ``running_steps``)."""
    return f"{run_id}:{job_id}:{index}:{attempt}:{task}"


def parse_step_key(key: str) -> tuple[str, str, int, int, int]:
    """(run, job, step index, attempt, task) of a :func:`step_key`; ValueError if malformed."""
    run_id, job_id, index, attempt, task = key.rsplit(":", 4)
    return run_id, job_id, int(index), int(attempt), int(task)


# --- logs (agent -> anyone) ------------------------------------------------------------------
class LogLine(msgspec.Struct, frozen=True, array_like=True):
    at: float
    """Unix time in seconds."""
    stream: Literal["stdout", "stderr", "system"]
    text: str


class LogBatch(msgspec.Struct, frozen=True, kw_only=True):
    """Consecutive output lines of one step attempt; batched to keep message rates sane."""

    run_id: str
    job_id: str
    step_index: int
    attempt: int
    seq: int
    """Per attempt, from 0: lets a reader order batches and notice a gap."""
    lines: list[LogLine]
    proof: str = ""
    """``HMAC(task token, msg_id())`` (``signing.py``): the API shows a batch only if it came from
    the agent the task was given to, so an agent cannot write into another run's log."""
    task: int = 0
    """The job task the attempt ran in (whose token signs the batch)."""

    def msg_id(self) -> str:
        """Deduplication id, and what the proof signs: the step attempt and the batch's number."""
        return f"{self.run_id}:{self.job_id}:{self.step_index}:{self.attempt}:log:{self.seq}"


# --- events ----------------------------------------------------------------------------------
class EventBase(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    run_id: str
    at: datetime = msgspec.field(default_factory=utcnow)
    proof: str = ""
    """Who may have published this (see ``signing.py``): the scheduler ignores an event it acts
    on whose proof does not check out."""

    @property
    def type(self) -> str:
        return str(self.__struct_config__.tag)

    def msg_id(self) -> str:
        """Deduplication id: the same fact published twice has the same id."""
        return f"{self.run_id}:{self.type}"


class RunCreated(EventBase, frozen=True, kw_only=True, tag="run.created"):
    """The run exists: appended by the API once its plan is stored. It is the commit point of a
    submit, so it carries what the run's first state is made of; the API then stores that state,
    and a scheduler that finds none (the API died in between) stores it itself. An API that dies
    earlier leaves only an unused plan — never a run stuck ``queued``."""

    workflow: str
    inputs: dict[str, object] = {}
    event_name: str = "api"
    event: object = None


class JobStarted(EventBase, frozen=True, kw_only=True, tag="job.started"):
    job_id: str
    run_attempt: int = 1
    """The run's attempt (a run retry starts failed jobs again: a new fact, a new msg-id)."""

    def msg_id(self) -> str:
        return f"{self.run_id}:{self.job_id}:{self.run_attempt}:{self.type}"


class JobCompleted(EventBase, frozen=True, kw_only=True, tag="job.completed"):
    job_id: str
    result: str
    run_attempt: int = 1
    error: str | None = None
    """Why the job itself failed, when it did not fail by a step's own result: its agent lost with
    its workspace, a timeout, fail-fast, an expression, no agent in time (a step's failure is in
    its ``step.failed``)."""

    def msg_id(self) -> str:
        return f"{self.run_id}:{self.job_id}:{self.run_attempt}:{self.type}"


class JobWaiting(EventBase, frozen=True, kw_only=True, tag="job.waiting"):
    """History: a job's step is queued for a group that has no healthy agent now; it runs when
    one comes, or fails when ``queue_timeout_minutes`` pass first."""

    job_id: str
    step_index: int
    attempt: int
    group: str
    reason: str
    queue_timeout_minutes: float

    def msg_id(self) -> str:
        return f"{self.run_id}:{self.job_id}:{self.step_index}:{self.attempt}:{self.type}"


class _StepAttemptEvent(EventBase, frozen=True, kw_only=True):
    job_id: str
    step_index: int
    attempt: int
    task: int = 0
    """The job task this attempt belongs to (``job_task_key``); an agent's event is proved with
    that task's token, and the scheduler ignores one of a task it has since withdrawn."""

    def msg_id(self) -> str:
        return f"{self.run_id}:{self.job_id}:{self.step_index}:{self.attempt}:{self.type}"


class StepDispatched(_StepAttemptEvent, frozen=True, kw_only=True, tag="step.dispatched"):
    group: str


class StepStarted(_StepAttemptEvent, frozen=True, kw_only=True, tag="step.started"):
    agent: str
    name: str | None = None
    """The step's name evaluated, when it has expressions."""


class Annotation(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A ``::error``/``::warning``/``::notice`` a step printed (GitHub's annotations)."""

    level: Literal["error", "warning", "notice"]
    message: str
    title: str | None = None
    file: str | None = None
    line: int | None = None
    col: int | None = None
    end_line: int | None = None
    end_column: int | None = None


class _StepResult(_StepAttemptEvent, frozen=True, kw_only=True):
    agent: str
    exit_code: int | None = None
    outputs: dict[str, str] = {}
    error: str | None = None
    started_at: datetime | None = None
    retryable: bool = True
    """False when the step said no retry can help (a NonRetryableError from a node)."""
    cancelled: bool = False
    """The step was stopped because its run was cancelled or its job timed out."""
    annotations: tuple[Annotation, ...] = ()
    summary: str | None = None
    """What the step wrote to ``$GITHUB_STEP_SUMMARY`` (Markdown, at most 1 MiB)."""


class StepSucceeded(_StepResult, frozen=True, kw_only=True, tag="step.succeeded"):
    pass


class StepFailed(_StepResult, frozen=True, kw_only=True, tag="step.failed"):
    retryable: bool = True
    """False when no retry can help (unknown node, invalid ``with:``, NonRetryableError from a
    node): the scheduler then fails the step without using its remaining ``retry:`` attempts."""
    retry_delay: float | None = None
    """Set by the agent running the job when this failure will be retried after so many seconds
    (its ``retry:`` policy): the step waits (``retrying``) instead of ending."""
    continue_on_error: bool = False
    """The step's ``continue-on-error`` held (evaluated by the agent): the job goes on as if the
    step had succeeded (its conclusion is ``success``)."""
    agent_lost: bool = False
    """Reported by a scheduler, not an agent (its own msg-id: the agent's report of the same
    attempt may exist): ``agent`` stopped heartbeating while it held this
    step (running or queued on its own subject). The job's workspace went with it, so the job
    fails at once, without retries (as a GitHub job fails when its runner is lost)."""

    def msg_id(self) -> str:
        return super().msg_id() + (":lost" if self.agent_lost else "")


class StepRetrying(_StepAttemptEvent, frozen=True, kw_only=True, tag="step.retrying"):
    """History: ``attempt`` failed and attempt+1 will be dispatched after ``delay`` seconds."""

    delay: float


class StepSkipped(EventBase, frozen=True, kw_only=True, tag="step.skipped"):
    job_id: str
    step_index: int
    reason: str
    task: int = 0
    """The job task whose agent skipped it (0: the scheduler did)."""

    def msg_id(self) -> str:
        if self.task:
            return f"{self.run_id}:{self.job_id}:{self.step_index}:task:{self.task}:{self.type}"
        return f"{self.run_id}:{self.job_id}:{self.step_index}:{self.type}:{self.at.timestamp()}"


class StepOutcome(msgspec.Struct, frozen=True, array_like=True):
    """How one step ended in a job task (``JobRan.outcomes``): its last attempt and status."""

    index: int
    attempt: int
    status: str
    """succeeded | failed | cancelled | skipped | retrying (handed back to wait for a retry)."""


class JobRan(EventBase, frozen=True, kw_only=True, tag="job.ran"):
    """The agent running a job task hands the job back to the scheduler: it ran (or skipped)
    the job's steps up to ``next_step`` (None: to the end). It stops early at a ``sleep`` step or
    a long retry backoff (``retry_delay``), which the scheduler turns into a durable timer, and
    resumes on the same agent afterwards. ``interrupted``: the task was delivered a second time
    (the agent that had it died or stopped answering); this agent ran nothing of it."""

    job_id: str
    task: int
    agent: str
    next_step: int | None = None
    retry_delay: float | None = None
    interrupted: bool = False
    outcomes: tuple[StepOutcome, ...] = ()
    """How each step the task ended, ended: schedulers may apply a run's events out of order (one
    redelivered after a scheduler died, two schedulers at once), so the job is handed back only
    once the state shows all of them."""

    def msg_id(self) -> str:
        return f"{job_task_key(self.run_id, self.job_id, self.task)}:{self.type}"


class TimerSet(EventBase, frozen=True, kw_only=True, tag="timer.set"):
    """History: a durable timer was scheduled (held by JetStream's message scheduler)."""

    timer_id: str
    kind: str
    due_at: datetime


class TimerFired(EventBase, frozen=True, kw_only=True, tag="timer.fired"):
    """Published by JetStream itself at ``due_at`` (the scheduled copy of the timer message)."""

    timer_id: str
    kind: str
    """retry | sleep | job-timeout | run-timeout"""
    job_id: str | None = None
    step_index: int | None = None
    attempt: int | None = None
    due_at: datetime

    def msg_id(self) -> str:
        return f"{self.run_id}:{self.type}:{self.timer_id}"


class RunCancelRequested(EventBase, frozen=True, kw_only=True, tag="run.cancel_requested"):
    reason: str = "cancelled by user"

    def msg_id(self) -> str:
        return f"{self.run_id}:{self.type}:{self.at.timestamp()}"


class RunRetryRequested(EventBase, frozen=True, kw_only=True, tag="run.retry_requested"):
    """Re-run what failed, was cancelled or skipped; keep what succeeded."""

    def msg_id(self) -> str:
        return f"{self.run_id}:{self.type}:{self.at.timestamp()}"


class RunUnblocked(EventBase, frozen=True, kw_only=True, tag="run.unblocked"):
    """The run that held this run's concurrency group finished: this run may start now."""

    released_by: str

    def msg_id(self) -> str:
        return f"{self.run_id}:{self.type}:{self.released_by}"


class RunCompleted(EventBase, frozen=True, kw_only=True, tag="run.completed"):
    status: str
    attempt: int = 1

    def msg_id(self) -> str:
        return f"{self.run_id}:{self.type}:{self.attempt}"


# --- control (scheduler -> agent, core NATS, not stored) ----------------------------------------
class CancelJob(msgspec.Struct, frozen=True, kw_only=True):
    """Stop this job task if it runs here: its run was cancelled, its job timed out or a matrix
    sibling failed (``fail-fast``). The running step is stopped; the job's later steps see
    ``cancelled()`` (an ``always()`` step still runs). ``withdraw``: the scheduler has given the
    task up (it ended the job without it): stop at once and run nothing more of it."""

    run_id: str
    job_id: str
    task: int
    reason: str
    withdraw: bool = False

    @property
    def key(self) -> str:
        return job_task_key(self.run_id, self.job_id, self.task)


# --- dead letters (any service -> operators) ---------------------------------------------------
class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """A message a consumer moved aside instead of applying it (``wf.dead.<consumer>.<run>``).

    The payload is the original bytes as text, cut at ``limits.DEAD_LETTER_PAYLOAD_BYTES``. Only
    events and trigger fires are ever moved aside, and neither carries secret values (those reach
    only a job task (``tasks.JobTask``), which is never dead-lettered: see docs/troubleshooting.md)."""

    subject: str
    """Where the message was published (``wf.events.<run>.<type>``, ``wf.triggers.fired.<id>``)."""
    payload: str
    """The message as UTF-8 text (bytes that are not UTF-8 shown as U+FFFD), perhaps cut."""
    payload_bytes: int
    """Size of the original message; ``truncated`` when ``payload`` holds less of it."""
    truncated: bool = False
    reason: str
    consumer: str
    """Who moved it aside: ``scheduler`` or ``triggers`` (the API's fire consumer)."""
    run_id: str | None = None
    delivered: int = 1
    """Times it was delivered before it was moved aside."""
    stream_seq: int | None = None
    """Its sequence in its own stream (``WF_EVENTS``, ``WF_TRIGGERS``)."""
    at: datetime = msgspec.field(default_factory=utcnow)


Event = (
    RunCreated
    | JobStarted
    | JobCompleted
    | JobWaiting
    | StepDispatched
    | StepStarted
    | StepSucceeded
    | StepFailed
    | StepRetrying
    | StepSkipped
    | JobRan
    | TimerSet
    | TimerFired
    | RunCancelRequested
    | RunRetryRequested
    | RunUnblocked
    | RunCompleted
)

SCHEDULER_INPUTS = (
    "run.created", "step.started", "step.succeeded", "step.failed", "step.skipped", "job.ran",
    "timer.fired", "run.cancel_requested", "run.retry_requested", "run.unblocked",
)
"""Event types the scheduler reacts to; the others it writes itself, as history."""

_encoder = msgspec.json.Encoder()
_event_decoder = msgspec.json.Decoder(Event)


def encode(message: msgspec.Struct) -> bytes:
    return _encoder.encode(message)


def decode_event(data: bytes) -> Event:
    """Decode an event; raises msgspec.ValidationError/DecodeError on a malformed message."""
    return _event_decoder.decode(data)
