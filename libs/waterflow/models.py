"""The typed results of the SDK: what :class:`waterflow.Client` and :class:`waterflow.AsyncClient`
return, and the JSON/YAML shape the ``waterflow`` command prints with ``-o json|yaml``.

    >>> run = client.get("r18f3c2a1b2c3d4e5")
    >>> run.status, [step.name for step in run.jobs["build"].steps]
    ('succeeded', ['Checkout', 'Build'])
    >>> msgspec.to_builtins(run)          # the same document the API sent, as plain data

Every model is a frozen ``msgspec.Struct`` decoded once, where the answer enters the client.
Fields a newer server adds are ignored, so an older client keeps working; a field it drops takes
the default shown here. The API's own description of these shapes is ``services/api/openapi.yaml``
(a test keeps the two in step).

Scripts written against the dict results of earlier versions keep working: a model also answers
``model["field"]`` and ``model.get("field", default)``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec


__all__ = [
    "Accepted", "Agent", "AgentNode", "AgentRemoval", "Annotation", "Attempt", "DeadLetter", "DeadLetterPage", "Diagnostic", "Event", "Fired", "Group",
    "GroupDefinition", "GroupDeletion", "GroupList", "GroupMember", "InstanceResult", "JobInfo", "LogLine", "Model", "Node",
    "NodeFailure", "Run", "RunPage", "RunSummary", "Secret", "StepInfo", "StoredFile", "Submitted", "Trigger",
    "Validation", "ValidationReport",
]

RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JobStatus = Literal["pending", "running", "succeeded", "failed", "skipped", "cancelled"]
TERMINAL: tuple[str, ...] = ("succeeded", "failed", "cancelled")
"""The run statuses after which nothing changes (until a retry)."""


class Model(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every result: a frozen Struct that also reads like the dict it was decoded from."""

    def __getitem__(self, name: str) -> Any:
        try:
            return getattr(self, name)
        except AttributeError:
            raise KeyError(name) from None

    def get(self, name: str, default: Any = None) -> Any:
        """``model.get("field")``: the field's value, or ``default`` when the model has no such field."""
        return getattr(self, name, default)


class Diagnostic(Model, frozen=True, kw_only=True, omit_defaults=True):
    """A problem found in a workflow, positioned in its file (``line`` and ``col`` are 1-based):
    a compile warning, or why a workflow was rejected (:attr:`waterflow.ApiError.diagnostics`)."""

    path: str
    line: int
    col: int
    rule: str
    """Which check found it (``syntax``, ``unknown-key``, ``expression``, …)."""
    message: str
    hint: str | None = None
    """What to do about it."""
    key: str | None = None
    """The offending key as a dotted path, e.g. ``jobs.build.steps[0].run``."""
    severity: str = "error"
    """error, warning or info."""


# --- runs ------------------------------------------------------------------------------------------
class Annotation(Model, frozen=True, kw_only=True, omit_defaults=True):
    """A ``::error``/``::warning``/``::notice`` a step printed (GitHub's annotations)."""

    level: str
    """error, warning or notice."""
    message: str
    title: str | None = None
    file: str | None = None
    line: int | None = None
    col: int | None = None
    end_line: int | None = None
    end_column: int | None = None


class Attempt(Model, frozen=True, kw_only=True):
    """One earlier try of a step (a retry, a lost agent): the step's own fields show the latest."""

    attempt: int
    status: str
    agent: str | None = None
    exit_code: int | None = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    interrupted: bool = False
    """The attempt died with its agent or by a restart, not by its own exit code."""
    run_attempt: int = 0
    """The run's attempt it belongs to (each run retry gives a step its ``retry:`` budget again)."""


class StepInfo(Model, frozen=True, kw_only=True):
    """One step of a job: its status, where it ran, how it ended."""

    index: int
    """0-based position in the job (log lines name a step by it)."""
    name: str
    """The step's name, expressions evaluated (``Check web-1``)."""
    id: str | None = None
    """The step's ``id:`` (for ``steps.<id>.outputs``)."""
    status: str = "pending"
    """pending, dispatched, running, succeeded, failed, skipped or cancelled."""
    attempt: int = 0
    agent: str | None = None
    exit_code: int | None = None
    error: str | None = None
    outputs: dict[str, str] = {}
    outcome: str | None = None
    conclusion: str | None = None
    dispatched_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: list[Attempt] = []
    cancel_requested: bool = False
    annotations: list[Annotation] = []
    """``::error file=…::`` and friends, as the step printed them."""
    summary: str | None = None
    """Markdown the step wrote to ``$GITHUB_STEP_SUMMARY``."""


class InstanceResult(Model, frozen=True, kw_only=True):
    """One line of a matrix or fan-out job's report: one combination or one server."""

    job: str
    agent: str | None = None
    matrix: dict[str, Any] | None = None
    status: str
    exit_code: int | None = None
    outputs: dict[str, Any] = {}
    error: str | None = None


class JobInfo(Model, frozen=True, kw_only=True):
    """One job of a run (a matrix or fan-out job also has one JobInfo per instance)."""

    id: str
    job: str = ""
    """The plan job this is, or is an instance of."""
    name: str
    runs_on: str
    """The server group whose agents run it."""
    needs: list[str] = []
    status: str = "pending"
    """pending, running, succeeded, failed, skipped or cancelled."""
    parent: str | None = None
    instances: list[str] = []
    matrix: dict[str, Any] | None = None
    agent: str | None = None
    """The agent that runs every step of the job."""
    affinity: bool = False
    waiting: str | None = None
    """Why its queued job task has not started (no healthy agent in its group)."""
    lost_agent: str | None = None
    task: int = 0
    """The number of its latest job task (each resumption after a durable wait is a new one)."""
    task_out: bool = False
    """An agent has (or is about to take) the job: it runs the steps until it hands the job back."""
    handed_back: dict[str, Any] | None = None
    """A hand-back (``job.ran``) waiting for step events still on their way."""
    outputs: dict[str, Any] = {}
    error: str | None = None
    cancelled: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    steps: list[StepInfo] = []
    results: list[InstanceResult] = []
    """Matrix or fan-out job: one line per instance."""


class RunSummary(Model, frozen=True, kw_only=True):
    """A run as ``list`` shows it: no jobs."""

    id: str
    workflow: str
    """The workflow's ``name:``."""
    status: str
    """queued, running, succeeded, failed or cancelled."""
    attempt: int = 1
    """1, then 2, 3… after each retry."""
    inputs: dict[str, Any] = {}
    event_name: str = "api"
    """What started it: api, schedule or webhook."""
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cancel_requested: bool = False
    error: str | None = None
    """Why it failed, when the run itself failed (not one of its steps)."""

    @property
    def done(self) -> bool:
        """True once the run has finished (succeeded, failed or cancelled)."""
        return self.status in TERMINAL


class Run(RunSummary, frozen=True, kw_only=True):
    """A run with its jobs and steps (``waterflow status``)."""

    timed_out: bool = False
    concurrency_group: str | None = None
    queued_behind: str | None = None
    """The run it waits for (``concurrency:``)."""
    event: Any = None
    """The webhook's JSON body (``github.event``), for a run a webhook started."""
    jobs: dict[str, JobInfo] = {}
    """Job id -> job, in the order of the plan."""


class RunPage(Model, frozen=True, kw_only=True):
    """One page of ``GET /v1/workflows``: ``next`` is the ``before`` of the next page (None: last)."""

    runs: list[RunSummary]
    next: str | None = None


class Submitted(Model, frozen=True, kw_only=True):
    """The answer to a submission: the new run's id (follow it with ``wait`` or ``watch``)."""

    id: str
    status: str = "queued"
    url: str = ""
    warnings: list[Diagnostic] = []


class Accepted(Model, frozen=True, kw_only=True):
    """The answer to a cancel or a retry: asked for, done asynchronously."""

    id: str
    status: str
    """cancelling or retrying."""
    attempt: int | None = None
    """The attempt a retry starts."""


class LogLine(Model, frozen=True, kw_only=True):
    """One line a step printed."""

    job: str
    step: int
    """The step's index in its job."""
    attempt: int = 1
    at: float = 0.0
    """Unix time in seconds."""
    stream: str = "stdout"
    """stdout, stderr or system (Waterflow's own notes)."""
    text: str
    kind: Literal["log"] = "log"
    """``log``: tells a LogLine from an Event in :meth:`Client.watch`."""


class Event(Model, frozen=True, kw_only=True, omit_defaults=True):
    """One event of a run's history; ``type`` tells which (``run.created``, ``step.started``, …,
    see docs/architecture.md), and which of the other fields it has."""

    seq: int | None = None
    """Sequence number in the event stream."""
    type: str
    run_id: str
    at: datetime
    job_id: str | None = None
    step_index: int | None = None
    attempt: int | None = None
    run_attempt: int | None = None
    agent: str | None = None
    status: str | None = None
    result: str | None = None
    exit_code: int | None = None
    error: str | None = None
    reason: str | None = None
    group: str | None = None
    queue_timeout_minutes: float | None = None
    delay: float | None = None
    outputs: dict[str, str] | None = None
    annotations: list[Annotation] | None = None
    summary: str | None = None
    started_at: datetime | None = None
    retryable: bool | None = None
    cancelled: bool | None = None
    retry_delay: float | None = None
    continue_on_error: bool | None = None
    agent_lost: bool | None = None
    interrupted: bool | None = None
    task: int | None = None
    """The job task an agent's event belongs to."""
    name: str | None = None
    next_step: int | None = None
    outcomes: list[Any] | None = None
    """``job.ran``: how each step of the job task ended, ``[index, attempt, status]``."""
    workflow: str | None = None
    inputs: dict[str, Any] | None = None
    event_name: str | None = None
    event: Any = None
    timer_id: str | None = None
    due_at: datetime | None = None
    released_by: str | None = None
    kind: str = "event"
    """``event`` in :meth:`Client.watch` (a timer event: the timer's kind)."""


# --- agents and groups -----------------------------------------------------------------------------
class AgentNode(Model, frozen=True, kw_only=True):
    """A node an agent loaded (or failed to load)."""

    name: str
    version: str = ""
    status: str = "ok"
    error: str | None = None
    description: str = ""
    outputs: dict[str, str] = {}
    source: str = ""
    schema: dict[str, Any] | None = None


class Agent(Model, frozen=True, kw_only=True):
    """A registered agent and its health."""

    name: str
    status: str
    """healthy, unhealthy (late heartbeats) or offline."""
    groups: list[str] = []
    """The groups the agent declares."""
    labels: dict[str, str] = {}
    version: str = ""
    os: str = ""
    arch: str = ""
    hostname: str = ""
    capacity: int = 1
    running: int = 0
    running_steps: list[str] = []
    """``run:job:step:attempt`` keys."""
    started_at: datetime | None = None
    heartbeat_at: datetime | None = None
    heartbeat_interval: float = 5.0
    stopped: bool = False
    nodes: list[AgentNode] = []
    seen_at: datetime | None = None
    age_seconds: float = 0.0
    """Seconds since its latest heartbeat."""
    member_of: list[str] = []
    """``agent show``: every group it belongs to (declared or defined)."""
    removed_at: datetime | None = None
    """Set when the agent registered again after an administrator removed it (within a day)."""


class GroupDefinition(Model, frozen=True, kw_only=True):
    """A group as the server defines it: its members are the union of the three rules."""

    name: str
    description: str = ""
    agents: list[str] = []
    labels: dict[str, str] = {}
    """Agents having all these labels (an empty value means "has the key")."""
    include: list[str] = []
    """Other groups whose members are members of this one."""


class GroupMember(Model, frozen=True, kw_only=True):
    """An agent of a group, as ``group show`` lists it."""

    name: str
    status: str
    running: int = 0
    capacity: int = 1
    labels: dict[str, str] = {}


class Group(Model, frozen=True, kw_only=True):
    """A server group with its members counted by health (``show``: also the members)."""

    name: str
    defined: bool = False
    """Defined by the server's group definitions, not only declared by agents."""
    description: str = ""
    agents: int = 0
    healthy: int = 0
    unhealthy: int = 0
    offline: int = 0
    defined_by: str | None = None
    """``file`` (server-groups.yml or a plugin: it wins), ``api`` (``create_group``) or None."""
    definition: GroupDefinition | None = None
    shadowed: GroupDefinition | None = None
    """A definition made through the API that server-groups.yml overrides (it has the same name)."""
    members: list[GroupMember] = []
    added: bool | None = None
    """``add_to_group``: False if the definition named the agent already."""
    warning: str | None = None
    """``add_to_group``: the agent is not registered (yet)."""
    removed: str | None = None
    """``remove_from_group``: the agent taken out of the definition."""
    still_member_because: list[str] = []
    """``remove_from_group``: why the agent is still a member (it declares the group, its labels)."""


class GroupDeletion(Model, frozen=True, kw_only=True):
    """What ``delete_group`` deleted; agents that declare the group themselves stay its members."""

    name: str
    deleted: GroupDefinition
    declared_by: list[str] = []
    note: str = ""


class AgentRemoval(Model, frozen=True, kw_only=True):
    """What ``remove_agent`` did: the work only that agent could run, failed with the reason."""

    name: str
    status: str
    """Its health when it was removed."""
    failed_tasks: int = 0
    """Steps queued on its own subject, failed before they started."""
    failed_steps: int = 0
    """Pinned steps (fan-out) it was running, failed."""
    removed_at: datetime | None = None
    note: str = ""


class DeadLetter(Model, frozen=True, kw_only=True):
    """A message a consumer moved aside instead of applying it (an event the scheduler could not
    apply, a trigger fire that could not start a run), and why. ``payload`` (the message, cut at
    16 KiB) comes only with :meth:`Client.dead_letter`."""

    seq: int
    """Its number in the dead-letter stream: ``dead_letter(seq)`` shows it."""
    subject: str
    reason: str
    consumer: str
    """Who moved it aside: ``scheduler`` or ``triggers``."""
    run_id: str | None = None
    delivered: int = 1
    at: datetime | None = None
    payload_bytes: int = 0
    truncated: bool = False
    stream_seq: int | None = None
    payload: str | None = None


class DeadLetterPage(Model, frozen=True, kw_only=True):
    """One page of ``GET /v1/dead-letters``: ``next`` is the ``before`` of the next page (None: last)."""

    dead_letters: list[DeadLetter]
    next: int | None = None


class GroupList(Model, frozen=True, kw_only=True):
    """Every group, and where the definitions come from (``error``: they could not be read)."""

    groups: list[Group]
    source: str = ""
    error: str | None = None


# --- nodes, files, triggers, secrets, validation -------------------------------------------------------
class NodeFailure(Model, frozen=True, kw_only=True):
    """An agent on which a node failed to load, and why."""

    agent: str
    error: str | None = None


class Node(Model, frozen=True, kw_only=True):
    """A node (``uses: NAME@VERSION``) and where agents provide it."""

    name: str
    version: str = ""
    description: str = ""
    status: str = "ok"
    """ok (some agent loads it) or failed."""
    source: str = ""
    """builtin, an entry point or a plugin file."""
    outputs: dict[str, str] = {}
    agents: list[str] = []
    groups: list[str] = []
    failed_on: list[NodeFailure] = []
    schema: dict[str, Any] | None = None
    """JSON Schema of its ``with:`` (only from :meth:`Client.node`)."""


class StoredFile(Model, frozen=True, kw_only=True):
    """An object in the file store (``file/download`` and ``file/upload`` steps)."""

    object: str
    size: int
    sha256: str | None = None
    """Only in the answer to an upload."""


class Trigger(Model, frozen=True, kw_only=True):
    """A registered workflow started by its cron schedules and its webhook."""

    id: str
    name: str
    filename: str = ""
    inputs: dict[str, Any] = {}
    crons: list[str] = []
    created_at: datetime | None = None
    webhook: str = ""
    """The webhook's path (POST)."""
    webhook_secret: str | None = None
    """Only in the answer to the registration: signs webhook calls."""
    next_fire_at: datetime | None = None


class Fired(Model, frozen=True, kw_only=True):
    """The answer to firing a trigger."""

    trigger: str
    status: str = "fired"
    run_id: str | None = None


class Secret(Model, frozen=True, kw_only=True):
    """A secret's name (values are never shown)."""

    name: str


class Validation(Model, frozen=True, kw_only=True):
    """The server's verdict on a workflow: ``valid`` unless some diagnostic is an error."""

    valid: bool
    errors: list[Diagnostic] = []


class ValidationReport(Model, frozen=True, kw_only=True):
    """``waterflow validate -o json``: checked on this machine, every file at once."""

    ok: bool
    """False if any diagnostic is an error."""
    diagnostics: list[Diagnostic] = []
    """Sorted by file and position; each ``{path, line, col, rule, message, hint, key, severity}``."""
