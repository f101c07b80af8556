"""Settings: one Struct per service, built once from defaults <- environment <- flags.

Nothing below the entry points reads ``os.environ``; tests build these objects directly.
Environment variables are ``WATERFLOW_<FIELD>`` in upper case (``WATERFLOW_NATS_URL``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec

T = TypeVar("T", bound=msgspec.Struct)

SECRET_FIELDS = frozenset({"nats_password", "nats_token", "api_key"})


class NatsSettings(msgspec.Struct, kw_only=True):
    nats_url: str = "nats://127.0.0.1:4222"
    """One URL or several separated by commas (a cluster)."""
    nats_user: str | None = None
    nats_password: str | None = None
    nats_token: str | None = None
    nats_creds: str | None = None
    """Path to a .creds file (JWT + nkey seed)."""
    nats_tls_ca: str | None = None
    """CA bundle that signed the NATS server's certificate (turns TLS on)."""
    nats_tls_cert: str | None = None
    """Client certificate, for servers that verify clients (mutual TLS)."""
    nats_tls_key: str | None = None
    server_groups: str | None = None
    """Path to server-groups.yml (nested groups, label selectors); read by api and scheduler."""
    stream_replicas: int = 1
    """Replicas of each JetStream stream and KV bucket: 3 on a production NATS cluster."""
    log_level: str = "info"
    log_format: str = "console"
    """``console`` for people, ``json`` for log shippers."""


class ApiSettings(NatsSettings, kw_only=True):
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    api_key: str | None = None
    """When set, every request must carry ``Authorization: Bearer <key>``."""
    compile_timeout: float = 10.0


class CompilerSettings(NatsSettings, kw_only=True):
    pass


class SchedulerSettings(NatsSettings, kw_only=True):
    batch_size: int = 64
    lost_agent_check_interval: float = 5.0
    """Seconds between checks for agents that went silent with steps only they could run."""
    queue_timeout_minutes: float = 24 * 60.0
    """How long a job waits for a healthy agent of its group before it fails (GitHub: 24 h)."""
    otel_endpoint: str | None = None
    """OTLP/HTTP endpoint for traces, e.g. ``http://tempo:4318`` (spans go to ``/v1/traces``)."""
    otel_file: str | None = None
    """Write spans as JSON lines to this file instead (debugging, tests)."""


class AgentSettings(NatsSettings, kw_only=True):
    agent_name: str = msgspec.field(default_factory=socket.gethostname)
    groups: list[str] = msgspec.field(default_factory=lambda: ["default"])
    work_dir: str = msgspec.field(
        default_factory=lambda: os.path.join(os.path.expanduser("~"), ".waterflow", "work")
    )
    max_concurrent_steps: int = 4
    plugin_dir: str | None = None
    """Directory of custom node plugins (.py files/packages), watched; default: ``plugins``
    beside the work dir."""
    ack_wait: float = 30.0
    """Seconds a task may go without an in-progress signal before it is redelivered."""
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    """Free key=value tags (``env=prod``, ``role=web``); groups in server-groups.yml select by them."""
    heartbeat_interval: float = 5.0
    """Seconds between registrations in KV wf_agents; 3 missed = unhealthy, 12 = offline."""
    local_wait_seconds: float = 30.0
    """A step's retry backoff up to this long is waited on the agent, which keeps the job; a
    longer one hands the job back to the scheduler's durable timer (it resumes on this agent)."""
    config: str | None = None
    """The agent.yml these settings were read from (informational; see waterflow_agent.config)."""


def environment_values(cls: type[msgspec.Struct], environ: Mapping[str, str]) -> dict[str, Any]:
    """The ``WATERFLOW_<FIELD>`` variables that set fields of ``cls``, lists and labels split."""
    values: dict[str, Any] = {}
    for field in msgspec.structs.fields(cls):
        raw = environ.get(f"WATERFLOW_{field.name.upper()}")
        if raw is not None and raw != "":
            values[field.name] = raw
    if "groups" in values:
        values["groups"] = [g.strip() for g in values["groups"].split(",") if g.strip()]
    if "labels" in values:
        values["labels"] = parse_labels(values["labels"].split(","))
    return values


def load(cls: type[T], overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> T:
    """Build settings: defaults, then ``WATERFLOW_*`` variables, then non-None ``overrides``."""
    values = environment_values(cls, os.environ if environ is None else environ)
    values.update({key: value for key, value in (overrides or {}).items() if value is not None})
    return msgspec.convert(values, cls, strict=False)


def parse_labels(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["env=prod", "gpu"]`` -> ``{"env": "prod", "gpu": ""}`` (a bare key is a flag label)."""
    labels: dict[str, str] = {}
    for item in items:
        key, _, value = item.strip().partition("=")
        if key.strip():
            labels[key.strip()] = value.strip()
    return labels


def masked(settings: msgspec.Struct) -> dict[str, Any]:
    """The settings as a dict with secrets replaced by ``***`` (for ``config show`` and logs)."""
    shown = msgspec.structs.asdict(settings)
    for name in SECRET_FIELDS & shown.keys():
        if shown[name]:
            shown[name] = "***"
    return shown


def to_environ(settings: NatsSettings) -> dict[str, str]:
    """The NATS part of settings as ``WATERFLOW_*`` variables, to pass to a child process."""
    env: dict[str, str] = {}
    for field in msgspec.structs.fields(NatsSettings):
        value = getattr(settings, field.name)
        if value is not None:
            env[f"WATERFLOW_{field.name.upper()}"] = str(value)
    return env
