"""NATS users and permissions: one ``services`` user and one least-privilege user per agent.

``waterflow auth init --agent web-1:web,prod --agent db-1:db`` writes, into one directory:

- ``auth.json``       the source of truth (users, groups, passwords), mode 0600; re-running
                      ``init`` adds agents and keeps existing passwords (``--rotate`` renews them);
- ``nats-auth.conf``  an ``authorization { users = [...] }`` block for ``nats-server -c``;
- ``services.env``    ``WATERFLOW_NATS_USER/PASSWORD`` for api, compiler and scheduler;
- ``agents/<name>.yml`` an ``agent.yml`` to copy to each server (``waterflow agent --config``).

What an agent may do (everything else is denied by the server, see docs/guides/security.md):

========================  =========================================================================
publish                   ``wf.events.*.step.*``, ``job.ran`` (its reports on its job tasks; the scheduler
                          believes one only with the proof of the task's token, see ``signing.py``),
                          ``wf.logs.>`` (logs); ``$KV.wf_agents.<name>``
                          (its own registration); JetStream API calls on *its* consumers only
                          (``group-<g>`` for each of its groups, ``agent-<name>``): create (with the
                          filter in the subject, so it cannot re-point one at another group), info,
                          delete, next message, and acks ``$JS.ACK.WF_TASKS.<consumer>.>``;
                          stream info of the streams it uses
subscribe                 ``_INBOX_<name>.>`` (its own reply inboxes) and ``wf.control.agent.<name>``
========================  =========================================================================

So an agent of group ``dev`` can neither fetch from the ``group-prod`` consumer nor subscribe to
``wf.tasks.>``, nor read anyone else's inbox. Passwords are random (32 bytes, URL-safe) and
stored in the server config as given; protect the directory like any key material.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

import msgspec
import yaml

from . import subjects
from .agents import kv_stream
from .errors import UserError

__all__ = [
    "SERVICES_USER",
    "AgentUser",
    "AuthConfig",
    "agent_inbox_prefix",
    "agent_permissions",
    "ensure_api_key",
    "init_auth",
    "load_auth",
    "parse_agent_spec",
    "render_server_config",
]

SERVICES_USER = "services"
AGENT_EVENT_TYPES = ("step.started", "step.succeeded", "step.failed", "step.skipped", "step.retrying", "job.ran")
AUTH_FILE = "auth.json"
SERVER_CONFIG_FILE = "nats-auth.conf"
SERVICES_ENV_FILE = "services.env"

# NATS's own JetStream API subjects (not Waterflow names, so they live here, next to their use).
_JS_API = "$JS.API"
_JS_ACK = "$JS.ACK"


class AgentUser(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    groups: tuple[str, ...]
    password: str


class AuthConfig(msgspec.Struct, frozen=True, kw_only=True):
    version: int = 1
    services_password: str
    agents: dict[str, AgentUser] = {}

    def agent(self, name: str) -> AgentUser | None:
        return self.agents.get(name)


def agent_inbox_prefix(agent_name: str) -> str:
    """The reply-inbox prefix an agent connects with, so permissions can keep inboxes private."""
    return f"_INBOX_{subjects.check_token(agent_name, 'agent name')}"


def agent_permissions(agent_name: str, groups: Iterable[str]) -> dict[str, object]:
    """The nats-server ``permissions`` block of one agent (allow-lists: the rest is denied)."""
    name = subjects.check_token(agent_name, "agent name")
    tasks = subjects.TASKS_STREAM
    consumers = [(subjects.group_consumer(g), subjects.group_tasks(g)) for g in groups]
    consumers.append((subjects.agent_consumer(name), subjects.agent_tasks(name)))
    publish = [
        *(subjects.events_of_type(t) for t in AGENT_EVENT_TYPES),  # only what an agent reports
        subjects.ALL_LOGS,
        subjects.kv_key_subject(subjects.AGENTS_BUCKET, name),
    ]
    for consumer, task_subject in consumers:
        publish += [
            f"{_JS_API}.CONSUMER.CREATE.{tasks}.{consumer}.{task_subject}",
            f"{_JS_API}.CONSUMER.INFO.{tasks}.{consumer}",
            f"{_JS_API}.CONSUMER.DELETE.{tasks}.{consumer}",
            f"{_JS_API}.CONSUMER.MSG.NEXT.{tasks}.{consumer}",
            f"{_JS_ACK}.{tasks}.{consumer}.>",
        ]
    for stream in (tasks, subjects.EVENTS_STREAM, subjects.LOGS_STREAM, kv_stream(subjects.AGENTS_BUCKET)):
        publish.append(f"{_JS_API}.STREAM.INFO.{stream}")
    subscribe = [f"{agent_inbox_prefix(name)}.>", subjects.agent_control(name)]
    return {"publish": {"allow": publish}, "subscribe": {"allow": subscribe}}


def render_server_config(auth: AuthConfig) -> str:
    """An ``authorization`` block for nats-server (its config syntax accepts JSON values)."""
    users: list[dict[str, object]] = [{"user": SERVICES_USER, "password": auth.services_password}]
    for agent in sorted(auth.agents.values(), key=lambda a: a.name):
        users.append({"user": agent.name, "password": agent.password, "permissions": agent_permissions(agent.name, agent.groups)})
    body = json.dumps({"users": users}, indent=2)
    return (
        "# Generated by `waterflow auth init`: Waterflow's NATS users. Do not edit by hand;\n"
        "# change auth.json with `waterflow auth init` and restart (or reload) nats-server.\n"
        f"authorization {body}\n"
    )


def parse_agent_spec(spec: str) -> tuple[str, tuple[str, ...]]:
    """``"web-1:web,prod"`` -> ``("web-1", ("web", "prod"))``; groups default to ``default``."""
    name, _, groups_text = spec.partition(":")
    groups = tuple(g.strip() for g in groups_text.split(",") if g.strip()) or ("default",)
    try:
        subjects.check_token(name.strip(), "agent name")
        for group in groups:
            subjects.check_group(group)
    except ValueError as error:
        raise UserError(f"--agent {spec!r}: {error}") from None
    return name.strip(), groups


def _password() -> str:
    return secrets.token_urlsafe(32)


def load_auth(directory: str | os.PathLike[str]) -> AuthConfig | None:
    path = Path(directory) / AUTH_FILE
    if not path.exists():
        return None
    try:
        return msgspec.json.decode(path.read_bytes(), type=AuthConfig)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as error:
        raise UserError(f"cannot read {path}: {error}") from None


API_KEY_FILE = "api-key"


def ensure_api_key(directory: str | os.PathLike[str]) -> tuple[Path, str]:
    """The API key kept in ``directory/api-key`` (mode 0600), made on first use."""
    path = Path(directory).expanduser() / API_KEY_FILE
    if path.exists():
        key = path.read_text().strip()
        if key:
            return path, key
    key = secrets.token_urlsafe(32)
    _write_private(path, key + "\n")
    return path, key


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def init_auth(
    directory: str | os.PathLike[str],
    agents: Mapping[str, Iterable[str]],
    *,
    rotate: bool = False,
    nats_url: str | None = None,
) -> AuthConfig:
    """Create or extend the credentials in ``directory`` and (re)write every generated file."""
    root = Path(directory).expanduser()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    existing = None if rotate else load_auth(root)
    users = dict(existing.agents) if existing else {}
    for name, groups in agents.items():
        subjects.check_token(name, "agent name")
        old = users.get(name)
        users[name] = AgentUser(name=name, groups=tuple(groups), password=old.password if old else _password())
    auth = AuthConfig(services_password=existing.services_password if existing else _password(), agents=users)
    _write_private(root / AUTH_FILE, msgspec.json.format(msgspec.json.encode(auth)).decode())
    _write_private(root / SERVER_CONFIG_FILE, render_server_config(auth))
    env = f"WATERFLOW_NATS_USER={SERVICES_USER}\nWATERFLOW_NATS_PASSWORD={auth.services_password}\n"
    if nats_url:
        env += f"WATERFLOW_NATS_URL={nats_url}\n"
    _write_private(root / SERVICES_ENV_FILE, env)
    for agent in users.values():
        config: dict[str, object] = {
            "agent_name": agent.name,
            "groups": list(agent.groups),
            "nats_user": agent.name,
            "nats_password": agent.password,
        }
        if nats_url:
            config["nats_url"] = nats_url
        _write_private(root / "agents" / f"{agent.name}.yml", "# agent.yml generated by `waterflow auth init`\n" + yaml.safe_dump(config, sort_keys=False))
    return auth
