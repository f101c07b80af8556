"""Every REST call of the SDK, written once: its method, path, body and the model its answer
decodes to. :class:`waterflow.Client` runs a :class:`Call` with urllib and
:class:`waterflow.AsyncClient` with aiohttp; neither spells a path or decodes an answer itself,
so the two clients cannot drift apart (a test also holds their method sets equal).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Generic, TypeVar
from urllib.parse import quote, urlencode

import msgspec

from waterflow_common.triggers import SIGNATURE_HEADERS, webhook_signature

from . import models as m

T = TypeVar("T")

JSON = "application/json"


@cache
def _envelope(member: str, result: Any) -> Any:
    """A Struct type ``{member: result}`` (other members ignored): most answers wrap their list."""
    return msgspec.defstruct(f"_{member}_answer", [(member, result)], kw_only=True)


@dataclass(frozen=True)
class Call(Generic[T]):
    """One HTTP request and how to read its answer: ``result`` is the model (None: no body);
    ``member``: the answer is ``{member: <result>, ...}``."""

    method: str
    path: str
    result: Any = None
    member: str | None = None
    body: bytes | None = None
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    post: Callable[[Any], Any] | None = None
    """Applied to the decoded value (e.g. ``secrets()``: the names out of ``[{name}]``)."""

    def decode(self, raw: bytes) -> T:
        """The typed result of an answer; raises :class:`msgspec.ValidationError` if it does not fit."""
        if self.result is None:
            return None  # type: ignore[return-value]
        if self.member is None:
            value = msgspec.json.decode(raw, type=self.result)
        else:
            value = getattr(msgspec.json.decode(raw, type=_envelope(self.member, self.result)), self.member)
        return self.post(value) if self.post else value  # type: ignore[no-any-return]


def run_path(run_id: str, suffix: str = "") -> str:
    """``/v1/workflows/<id><suffix>``: the one place a run's URL is spelled."""
    return f"/v1/workflows/{quote(run_id, safe='')}{suffix}"


def _query(**params: Any) -> str:
    present = {k: v for k, v in params.items() if v is not None}
    return f"?{urlencode(present)}" if present else ""


def _json_body(document: Any) -> bytes:
    return json.dumps(document).encode()


def _workflow_body(workflow: str, filename: str, inputs: dict[str, Any] | None, workflows: dict[str, str] | None) -> bytes:
    return _json_body({"workflow": workflow, "filename": filename, "inputs": inputs or {}, "workflows": workflows or {}})


# --- runs ------------------------------------------------------------------------------------------
def submit(workflow: str, filename: str, inputs: dict[str, Any] | None, workflows: dict[str, str] | None) -> Call[m.Submitted]:
    return Call("POST", "/v1/workflows", m.Submitted, body=_workflow_body(workflow, filename, inputs, workflows), content_type=JSON)


def validate(workflow: str, filename: str) -> Call[m.Validation]:
    return Call("POST", "/v1/validate", m.Validation, body=_json_body({"workflow": workflow, "filename": filename}), content_type=JSON)


def get(run_id: str) -> Call[m.Run]:
    return Call("GET", run_path(run_id), m.Run)


def page(limit: int, before: str | None) -> Call[m.RunPage]:
    return Call("GET", "/v1/workflows" + _query(limit=limit, before=before), m.RunPage)


def cancel(run_id: str) -> Call[m.Accepted]:
    return Call("POST", run_path(run_id, "/cancel"), m.Accepted, body=b"")


def retry(run_id: str) -> Call[m.Accepted]:
    return Call("POST", run_path(run_id, "/retry"), m.Accepted, body=b"")


def logs(run_id: str) -> Call[list[m.LogLine]]:
    return Call("GET", run_path(run_id, "/logs"), list[m.LogLine], member="lines")


def events(run_id: str) -> Call[list[m.Event]]:
    return Call("GET", run_path(run_id, "/events"), list[m.Event], member="events")


# --- agents, groups, nodes -------------------------------------------------------------------------
def agents(group: str | None) -> Call[list[m.Agent]]:
    return Call("GET", "/v1/agents" + _query(group=group), list[m.Agent], member="agents")


def agent(name: str) -> Call[m.Agent]:
    return Call("GET", f"/v1/agents/{quote(name, safe='')}", m.Agent)


def groups() -> Call[m.GroupList]:
    return Call("GET", "/v1/groups", m.GroupList)


def group(name: str) -> Call[m.Group]:
    return Call("GET", group_path(name), m.Group)


def create_group(name: str, description: str, agents: Sequence[str], labels: dict[str, str] | None,
                 include: Sequence[str]) -> Call[m.Group]:
    definition = {"description": description, "agents": list(agents), "labels": labels or {}, "include": list(include)}
    return Call("PUT", group_path(name), m.Group, body=_json_body(definition), content_type=JSON)


def delete_group(name: str) -> Call[m.GroupDeletion]:
    return Call("DELETE", group_path(name), m.GroupDeletion)


def add_to_group(name: str, agent: str) -> Call[m.Group]:
    return Call("POST", group_path(name, "/agents"), m.Group, body=_json_body({"agent": agent}), content_type=JSON)


def remove_from_group(name: str, agent: str) -> Call[m.Group]:
    return Call("DELETE", group_path(name, f"/agents/{quote(agent, safe='')}"), m.Group)


def remove_agent(name: str, force: bool) -> Call[m.AgentRemoval]:
    return Call("DELETE", f"/v1/agents/{quote(name, safe='')}" + _query(force="true" if force else None), m.AgentRemoval)


def group_path(name: str, suffix: str = "") -> str:
    """``/v1/groups/<name><suffix>``."""
    return f"/v1/groups/{quote(name, safe='')}{suffix}"


def nodes(group: str | None) -> Call[list[m.Node]]:
    return Call("GET", "/v1/nodes" + _query(group=group), list[m.Node], member="nodes")


def node(name: str) -> Call[list[m.Node]]:
    return Call("GET", f"/v1/nodes/{quote(name, safe='@/')}", list[m.Node], member="versions")


# --- files, triggers, secrets ----------------------------------------------------------------------
def object_path(object_name: str) -> str:
    return f"/v1/files/{quote(object_name, safe='/')}"


def files() -> Call[list[m.StoredFile]]:
    return Call("GET", "/v1/files", list[m.StoredFile], member="files")


def add_trigger(workflow: str, filename: str, inputs: dict[str, Any] | None, workflows: dict[str, str] | None) -> Call[m.Trigger]:
    return Call("POST", "/v1/triggers", m.Trigger, body=_workflow_body(workflow, filename, inputs, workflows), content_type=JSON)


def triggers() -> Call[list[m.Trigger]]:
    return Call("GET", "/v1/triggers", list[m.Trigger], member="triggers")


def trigger_path(trigger_id: str, suffix: str = "") -> str:
    return f"/v1/triggers/{quote(trigger_id, safe='')}{suffix}"


def fire_trigger(trigger_id: str, inputs: dict[str, Any] | None, payload: dict[str, Any] | None, secret: str | None) -> Call[m.Fired]:
    body = _json_body({**(payload or {}), "inputs": inputs or {}})
    headers = {SIGNATURE_HEADERS[0]: webhook_signature(secret, body)} if secret else {}
    return Call("POST", trigger_path(trigger_id, "/fire"), m.Fired, body=body, content_type=JSON, headers=headers)


def delete_trigger(trigger_id: str) -> Call[None]:
    return Call("DELETE", trigger_path(trigger_id))


def set_secret(name: str, value: str) -> Call[None]:
    return Call("PUT", f"/v1/secrets/{quote(name, safe='')}", body=_json_body({"value": value}), content_type=JSON)


def secrets() -> Call[list[m.Secret]]:
    return Call("GET", "/v1/secrets", list[m.Secret], member="secrets")


def delete_secret(name: str) -> Call[None]:
    return Call("DELETE", f"/v1/secrets/{quote(name, safe='')}")


# --- dead letters ---------------------------------------------------------------------------------
def dead_letters(limit: int, before: int | None, run_id: str | None) -> Call[m.DeadLetterPage]:
    return Call("GET", "/v1/dead-letters" + _query(limit=limit, before=before, run_id=run_id), m.DeadLetterPage)


def dead_letter(seq: int) -> Call[m.DeadLetter]:
    return Call("GET", f"/v1/dead-letters/{int(seq)}", m.DeadLetter)


# --- the live stream -------------------------------------------------------------------------------
_watch_item = msgspec.json.Decoder(dict[str, Any])


def watch_item(line: bytes) -> m.Event | m.LogLine | None:
    """One line of ``/watch`` as a model (None: a keepalive or an empty line)."""
    if not line.strip():
        return None
    item = _watch_item.decode(line)
    kind = item.get("kind")
    if kind == "keepalive":
        return None
    if kind == "log":
        return msgspec.convert(item, m.LogLine)
    return msgspec.convert(item, m.Event, strict=False)
