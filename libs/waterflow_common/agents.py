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

The scheduler calls :func:`healthy_agents` to fan a job out to every healthy agent of a group::

    agents = await healthy_agents(js, "web", labels=("env=prod",), provider=groups)
    for agent in agents:
        subject = subjects.agent_tasks(agent.name)   # consumed only by that agent
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Literal

import msgspec
from nats.js import JetStreamContext

from . import subjects
from .streams import read_stored

__all__ = [
    "AgentInfo",
    "AgentRecord",
    "AgentStatus",
    "NodeSpec",
    "OFFLINE_AFTER",
    "UNHEALTHY_AFTER",
    "agent_status",
    "decode_agent",
    "get_agent",
    "healthy_agents",
    "labels_match",
    "list_agents",
]

AgentStatus = Literal["healthy", "unhealthy", "offline"]

UNHEALTHY_AFTER = 3
"""Missed heartbeat intervals after which an agent is unhealthy."""
OFFLINE_AFTER = 12
"""Missed heartbeat intervals after which an agent is offline."""

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
    """Keys of the step attempts it is running (``run:job:step:attempt``)."""
    started_at: datetime
    heartbeat_at: datetime
    """The agent's own clock at this heartbeat (health uses the server's timestamp instead)."""
    heartbeat_interval: float = 5.0
    stopped: bool = False
    """True in the last record of an agent that shut down cleanly: offline at once."""
    nodes: tuple[NodeSpec, ...] = ()


class AgentRecord(msgspec.Struct, frozen=True, kw_only=True):
    """An agent's latest registration with the health derived from its age."""

    info: AgentInfo
    status: AgentStatus
    seen_at: datetime
    """When NATS stored the latest heartbeat."""
    age_seconds: float

    def to_builtins(self) -> dict[str, object]:
        """The JSON shape of ``GET /v1/agents``: the AgentInfo fields plus status and age."""
        body = msgspec.to_builtins(self.info)
        body.update(status=self.status, seen_at=self.seen_at.isoformat(), age_seconds=round(self.age_seconds, 3))
        return body


_decoder = msgspec.json.Decoder(AgentInfo)


def decode_agent(data: bytes) -> AgentInfo:
    """Decode a registration; raises msgspec.DecodeError/ValidationError when malformed."""
    return _decoder.decode(data)


def agent_status(info: AgentInfo, age_seconds: float) -> AgentStatus:
    """Health from the age of the latest heartbeat, in units of the agent's own interval."""
    if info.stopped:
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
        latest[info.name] = AgentRecord(info=info, status=agent_status(info, age), seen_at=seen_at, age_seconds=age)
    return [latest[name] for name in sorted(latest)]


async def get_agent(js: JetStreamContext, name: str) -> AgentRecord | None:
    """One agent's record, or None if it never registered (or expired)."""
    for record in await list_agents(js):
        if record.info.name == name:
            return record
    return None


async def healthy_agents(
    js: JetStreamContext,
    group: str,
    labels: Sequence[str] = (),
    provider: object | None = None,
) -> list[AgentInfo]:
    """The healthy agents of ``group`` having every label in ``labels``, sorted by name.

    ``provider`` is a :class:`waterflow_common.groups.ServerGroupProvider` (server-groups.yml,
    a CMDB); without one, only the groups agents declare themselves count.
    """
    from .groups import ServerGroupProvider

    groups = provider if isinstance(provider, ServerGroupProvider) else ServerGroupProvider()
    records = [r for r in await list_agents(js) if r.status == "healthy"]
    members = groups.members(group, [r.info for r in records])
    return [a for a in members if labels_match(a.labels, labels)]
