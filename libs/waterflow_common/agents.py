"""Agents as the rest of Waterflow sees them: their registration record, health and group lookup.

Each agent rewrites its :class:`AgentInfo` under its name in the KV bucket ``wf_agents`` every
``heartbeat_interval`` seconds. Nobody deletes records: health is derived from the age of the
latest record, measured with the *NATS server's* timestamp of that record (so an agent's clock
being wrong does not make it look dead or alive)::

    age < 3 intervals             healthy
    3 ... 12 intervals            unhealthy   (missed heartbeats: busy, partitioned, dying)
    > 12 intervals, or stopped    offline     (stopped = it said goodbye on a clean shutdown)

and the bucket's ``max_age`` (``bus.AGENT_RECORD_MAX_AGE``, one day) finally expires a record
that nobody refreshes, so a decommissioned server disappears by itself.

The scheduler reads the healthy ones with :func:`list_agents` into one
:class:`waterflow_common.groups.Fleet` every couple of seconds, and asks it who is in a group::

    fleet = Fleet([r.info for r in await list_agents(js) if r.status == "healthy"], provider)
    fleet.healthy("web", labels=("env=prod",))   # sorted agent names
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyWrongLastSequenceError, NotFoundError

from . import subjects
from .bus import publish_event
from .messages import StepFailed, parse_step_key
from .streams import read_stored

if TYPE_CHECKING:
    from .signing import Signer

__all__ = [
    "OFFLINE_AFTER",
    "UNHEALTHY_AFTER",
    "AgentInfo",
    "AgentRecord",
    "AgentRemoval",
    "AgentStatus",
    "NodeSpec",
    "agent_status",
    "decode_agent",
    "fail_lost_steps",
    "fail_lost_tasks",
    "get_agent",
    "is_lost",
    "labels_match",
    "list_agents",
    "removals",
    "remove_agent",
    "lost_step_failures",
]

AgentStatus = Literal["healthy", "unhealthy", "offline"]

UNHEALTHY_AFTER = 3
"""Missed heartbeat intervals after which an agent is unhealthy."""
OFFLINE_AFTER = 12
"""Missed heartbeat intervals after which an agent is offline."""
LOST_AFTER = 6
"""Missed heartbeat intervals after which the steps only this agent could run are reported lost."""

KV_OPERATION_HEADER = "KV-Operation"


class NodeSpec(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A node (``uses:``) this agent can run, as its node catalog describes it."""

    name: str
    version: str = ""
    schema: dict[str, object] | None = None
    """JSON Schema of the node's ``with:`` inputs."""
    status: Literal["ok", "failed"] = "ok"
    error: str | None = None
    """Why the node failed to load (status ``failed``)."""
    description: str = ""
    outputs: dict[str, str] = {}
    """Output name -> description."""
    source: str = ""
    """Where it comes from: builtin, an entry point, or a plugin file."""


class AgentInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One agent's registration, rewritten by its every heartbeat (KV ``wf_agents``, key = name)."""

    record_version: int = 1
    name: str
    groups: tuple[str, ...] = ()
    labels: dict[str, str] = {}
    version: str = ""
    """Waterflow version the agent runs."""
    os: str = ""
    arch: str = ""
    hostname: str = ""
    capacity: int = 1
    """Steps it runs at once (``max_concurrent_steps``)."""
    running: int = 0
    running_steps: tuple[str, ...] = ()
    """Keys of the step attempts it is running (``messages.step_key``: ``run:job:step:attempt:task``)."""
    pinned_steps: tuple[str, ...] = ()
    """The running steps of jobs only this agent can finish (their task came on its own subject,
    or an earlier step of the job ran here: the workspace is here): nobody else can take them
    over, so if the agent is lost they are reported failed (:func:`fail_lost_steps`)."""
    started_at: datetime
    heartbeat_at: datetime
    """The agent's own clock at this heartbeat (health uses the server's timestamp instead)."""
    heartbeat_interval: float = 5.0
    stopped: bool = False
    """True in the last record of an agent that shut down cleanly: offline at once."""
    nodes: tuple[NodeSpec, ...] = ()
    lost_at: datetime | None = None
    """Set by :func:`fail_lost_steps` when it reported this agent's pinned steps as lost; the
    agent's next heartbeat (if it ever comes back) clears it."""


class AgentRecord(msgspec.Struct, frozen=True, kw_only=True):
    """An agent's latest registration with the health derived from its age."""

    info: AgentInfo
    status: AgentStatus
    seen_at: datetime
    """When NATS stored the latest heartbeat."""
    age_seconds: float
    revision: int = 0
    """KV revision of the record (for a revision-checked rewrite)."""

    def to_builtins(self) -> dict[str, object]:
        """The JSON shape of ``GET /v1/agents``: the AgentInfo fields plus status and age."""
        body: dict[str, object] = msgspec.to_builtins(self.info)
        body.update(status=self.status, seen_at=self.seen_at.isoformat(), age_seconds=round(self.age_seconds, 3))
        return body


_decoder = msgspec.json.Decoder(AgentInfo)


def decode_agent(data: bytes) -> AgentInfo:
    """Decode a registration; raises msgspec.DecodeError/ValidationError when malformed."""
    return _decoder.decode(data)


def agent_status(info: AgentInfo, age_seconds: float) -> AgentStatus:
    """Health from the age of the latest heartbeat, in units of the agent's own interval."""
    if info.stopped or info.lost_at is not None:
        return "offline"
    interval = max(info.heartbeat_interval, 0.1)
    if age_seconds < UNHEALTHY_AFTER * interval:
        return "healthy"
    if age_seconds <= OFFLINE_AFTER * interval:
        return "unhealthy"
    return "offline"


def labels_match(labels: dict[str, str], required: Iterable[str]) -> bool:
    """True if ``labels`` has every requirement: ``key=value`` (equal) or ``key`` (present).

    >>> labels_match({"env": "prod", "gpu": ""}, ["env=prod", "gpu"])
    True
    """
    for requirement in required:
        key, sep, value = requirement.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def kv_stream(bucket: str) -> str:
    """The stream behind a KV bucket (NATS's own naming rule)."""
    return f"KV_{bucket}"


async def list_agents(js: JetStreamContext, now: datetime | None = None) -> list[AgentRecord]:
    """Every registered agent with its health, sorted by name (one ephemeral consumer read)."""
    messages = await read_stored(
        js, kv_stream(subjects.AGENTS_BUCKET), subjects.kv_key_subject(subjects.AGENTS_BUCKET, ">")
    )
    now = now or datetime.now(UTC)
    latest: dict[str, AgentRecord] = {}
    for msg in messages:
        if msg.headers and msg.headers.get(KV_OPERATION_HEADER) in ("DEL", "PURGE"):
            key = msg.subject.split(".", 2)[2]
            latest.pop(key, None)
            continue
        try:
            info = decode_agent(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue  # a foreign or broken record must not hide every other agent
        seen_at = msg.metadata.timestamp
        if seen_at.tzinfo is None:
            seen_at = seen_at.replace(tzinfo=UTC)
        age = max((now - seen_at).total_seconds(), 0.0)
        latest[info.name] = AgentRecord(
            info=info, status=agent_status(info, age), seen_at=seen_at, age_seconds=age,
            revision=msg.metadata.sequence.stream,
        )
    return [latest[name] for name in sorted(latest)]


async def get_agent(js: JetStreamContext, name: str) -> AgentRecord | None:
    """One agent's record, or None if it never registered (or expired)."""
    for record in await list_agents(js):
        if record.info.name == name:
            return record
    return None


def lost_step_failures(records: Iterable[AgentRecord]) -> list[tuple[AgentRecord, StepFailed]]:
    """For every agent silent for more than LOST_AFTER intervals, a ``step.failed`` for each
    step only it could run (its own subject), naming the agent and how long it has been silent.

    Steps it took from a group subject are not in the list: JetStream hands those to another
    agent of the group after ``ack_wait`` by itself.
    """
    failures: list[tuple[AgentRecord, StepFailed]] = []
    for record in records:
        info = record.info
        if info.lost_at is not None or not info.pinned_steps or not is_lost(record):
            continue
        for key in info.pinned_steps:
            event = lost_step(key, info.name, f"{_silence(record)} while running this step")
            if event is not None:
                failures.append((record, event))
    return failures


def lost_step(key: str, agent: str, error: str) -> StepFailed | None:
    """The ``step.failed`` (``agent_lost``) of a step attempt an agent held when it was lost,
    from the key its heartbeat listed (``messages.step_key``); None for a malformed key."""
    try:
        run_id, job_id, index, attempt, task = parse_step_key(key)
    except ValueError:
        return None
    return StepFailed(run_id=run_id, job_id=job_id, step_index=index, attempt=attempt, task=task, agent=agent,
                      error=error, agent_lost=True)


def is_lost(record: AgentRecord) -> bool:
    """Silent for more than LOST_AFTER heartbeat intervals, or said goodbye: what it held is gone."""
    return record.info.stopped or record.age_seconds > LOST_AFTER * max(record.info.heartbeat_interval, 0.1)


def _silence(record: AgentRecord) -> str:
    return (f"agent {record.info.name} lost: no heartbeat for {record.age_seconds:.0f}s "
            f"(last seen {record.seen_at:%Y-%m-%d %H:%M:%S} UTC)")


async def fail_lost_tasks(js: JetStreamContext, record: AgentRecord, signer: Signer, reason: str | None = None) -> int:
    """Fail the tasks queued on a lost agent's own subject (the next steps of jobs it held, or
    fan-out instances sent to it): nobody else may take them, so without this they would wait
    forever. ``reason`` says what happened to the agent (default: how long it has been silent).
    Returns how many were failed."""
    from . import bus
    from .tasks import JobTask

    config = bus.agent_consumer_config(record.info.name, LOST_TASK_ACK_WAIT)
    assert config.durable_name is not None
    try:
        info = await js.consumer_info(subjects.TASKS_STREAM, config.durable_name)
        if info.num_pending == 0 and not info.num_ack_pending:
            return 0  # (a task it took and never acked is fetched again once its ack_wait is over)
    except NotFoundError:
        # Never pulled (or its consumer was removed): look at the stream before creating one.
        stream = await js.stream_info(subjects.TASKS_STREAM, subjects_filter=config.filter_subject)
        if not stream.state.subjects:
            return 0
        await bus.ensure_consumer(js, subjects.TASKS_STREAM, config)
    psub = await js.pull_subscribe_bind(config.durable_name, subjects.TASKS_STREAM)
    failed = 0
    try:
        while True:
            try:
                msgs = await psub.fetch(64, timeout=0.5)
            except asyncio.TimeoutError:
                break
            for msg in msgs:
                try:
                    task = msgspec.json.decode(msg.data, type=JobTask)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    await msg.term()
                    continue
                event = signer.sign(StepFailed(
                    run_id=task.run_id, job_id=task.job.id, step_index=task.from_step, attempt=task.attempt,
                    task=task.task, agent=record.info.name, agent_lost=True,
                    error=f"{reason or _silence(record)} before it could start this step",
                ))
                await publish_event(js, event)
                await msg.ack()
                failed += 1
    finally:
        await psub.unsubscribe()
    return failed


LOST_TASK_ACK_WAIT = 30.0
"""Ack wait of an agent consumer created by the scheduler to drain a lost agent's tasks (the
agent, if it comes back, sets its own)."""


async def fail_lost_steps(js: JetStreamContext, signer: Signer) -> int:
    """Publish ``step.failed`` for the pinned steps of lost agents; returns how many.

    Meant to be called every few seconds by a scheduler (several may: the ``Nats-Msg-Id`` of a
    step.failed is the attempt's, so duplicates are dropped). Afterwards the agent's record is
    marked ``lost_at`` (revision-checked, so a heartbeat that just arrived wins), which keeps the
    next call from reporting the same steps again.
    """
    from .messages import encode

    records = await list_agents(js)
    drained = 0
    for record in records:
        if is_lost(record):
            drained += await fail_lost_tasks(js, record, signer)
    failures = lost_step_failures(records)
    if not failures:
        return drained
    kv = await js.key_value(subjects.AGENTS_BUCKET)
    marked: set[str] = set()
    for record, event in failures:
        event = signer.sign(event)
        await publish_event(js, event)
        if record.info.name in marked:
            continue
        marked.add(record.info.name)
        lost = msgspec.structs.replace(record.info, lost_at=datetime.now(UTC))
        try:
            await kv.update(record.info.name, encode(lost), last=record.revision)
        except KeyWrongLastSequenceError:
            pass  # the agent came back (or another scheduler marked it first): its record wins
    return drained + len(failures)


class AgentRemoval(msgspec.Struct, frozen=True, kw_only=True):
    """What :func:`remove_agent` did: the work it failed so that nothing waits for the agent.

    Also kept in KV ``wf_removed_agents`` (for a day, as agent records), so that an agent that
    registers again after its removal is shown as such (``removed_at`` in ``GET /v1/agents``)."""

    name: str
    status: AgentStatus
    """The agent's health when it was removed."""
    removed_at: datetime
    failed_tasks: int = 0
    """Steps queued on its own subject, failed before they started."""
    failed_steps: int = 0
    """Steps it was running that only it could finish (fan-out, pinned), failed."""


async def remove_agent(js: JetStreamContext, record: AgentRecord, signer: Signer, reason: str) -> AgentRemoval:
    """Forget an agent: fail what only it could run, delete its task consumer and its record.

    The work it held is failed the way a lost agent's is (:func:`fail_lost_tasks`, and a
    ``step.failed`` per pinned step), with ``reason`` as the error, so no run waits for it. Steps
    it took from a group subject go to another member after their ``ack_wait``. An agent that is
    still running re-registers at its next heartbeat (and re-creates its consumer): stop it first.
    """
    name = record.info.name
    failed_tasks = await fail_lost_tasks(js, record, signer, reason)
    failed_steps = 0
    for key in record.info.pinned_steps:
        event = lost_step(key, name, f"{reason} while running this step")
        if event is None:
            continue
        await publish_event(js, signer.sign(event))
        failed_steps += 1
    try:
        await js.delete_consumer(subjects.TASKS_STREAM, subjects.agent_consumer(name))
    except NotFoundError:
        pass
    removal = AgentRemoval(name=name, status=record.status, removed_at=datetime.now(UTC), failed_tasks=failed_tasks,
                           failed_steps=failed_steps)
    await (await js.key_value(subjects.REMOVED_AGENTS_BUCKET)).put(name, msgspec.json.encode(removal))
    await (await js.key_value(subjects.AGENTS_BUCKET)).purge(name)
    return removal


async def removals(js: JetStreamContext) -> dict[str, AgentRemoval]:
    """The agents removed in the last day (:func:`remove_agent`), by name."""
    messages = await read_stored(js, kv_stream(subjects.REMOVED_AGENTS_BUCKET),
                                 subjects.kv_key_subject(subjects.REMOVED_AGENTS_BUCKET, ">"))
    found: dict[str, AgentRemoval] = {}
    for msg in messages:
        if msg.headers and msg.headers.get(KV_OPERATION_HEADER) in ("DEL", "PURGE"):
            continue
        try:
            removal = msgspec.json.decode(msg.data, type=AgentRemoval)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        found[removal.name] = removal
    return found
