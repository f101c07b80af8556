"""HTTP routes for agents (KV ``wf_agents``) and server groups (also KV ``wf_groups``).

- ``GET /v1/agents``: every registered agent with ``status`` (healthy | unhealthy | offline);
  ``?group=G`` and ``?status=S`` filter.
- ``GET /v1/agents/{name}``
- ``DELETE /v1/agents/{name}[?force=true]``: forget an agent (409 while it is online unless
  forced); the work only it could run is failed with the reason (``agents.remove_agent``).
- ``GET /v1/groups``: every group (declared by agents, defined in server-groups.yml or through
  the API) with member counts by status.
- ``GET /v1/groups/{name}``: one group, its definition and its members.
- ``PUT /v1/groups/{name}``, ``DELETE /v1/groups/{name}``: define a group through the API (201
  created, 200 replaced) or delete that definition;
- ``POST /v1/groups/{name}/agents`` ``{"agent": A}``, ``DELETE /v1/groups/{name}/agents/{agent}``:
  name an agent in the definition (the definition is created if missing) or take it out.

Precedence and concurrency are decided in ``waterflow_common.group_store``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import msgspec
from aiohttp import web
from nats.js import JetStreamContext
from waterflow_common import subjects
from waterflow_common.agents import AgentRecord, AgentRemoval, get_agent as find_agent, list_agents, remove_agent, removals
from waterflow_common.group_store import (
    GroupConflict,
    GroupNotFound,
    StoredGroupProvider,
    membership_reasons,
)
from waterflow_common.groups import GroupDefinition, ServerGroupProvider
from waterflow_common.errors import UserError

from .bodies import parse_json

GROUPS = web.AppKey("groups", StoredGroupProvider)
SOURCE = web.AppKey("agents_source", object)
"""Whatever holds the JetStream context as ``.js`` (the API's Runs), read at request time."""


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), status=status, content_type="application/json")


def _js(request: web.Request) -> JetStreamContext:
    return request.app[SOURCE].js  # type: ignore[attr-defined, no-any-return]


async def _records(request: web.Request) -> list[AgentRecord]:
    return await list_agents(_js(request))


async def _groups(request: web.Request) -> StoredGroupProvider:
    """The group provider with the stored definitions read now (another API may have written)."""
    provider = request.app[GROUPS]
    await provider.refresh(_js(request))
    return provider


def _http_error(error: UserError) -> web.HTTPException:
    if isinstance(error, GroupNotFound):
        return web.HTTPNotFound(text=str(error))
    if isinstance(error, GroupConflict):
        return web.HTTPConflict(text=str(error))
    return web.HTTPBadRequest(text=str(error))


def _checked(value: str, what: str, check: Callable[[str, str], str] = subjects.check_group) -> str:
    """``value`` if ``check`` accepts it, else a 400 saying why."""
    try:
        return check(value, what)
    except ValueError as error:
        raise web.HTTPBadRequest(text=str(error)) from None


async def get_agents(request: web.Request) -> web.Response:
    records = await _records(request)
    group = request.query.get("group")
    if group:
        members = {a.name for a in (await _groups(request)).members(group, [r.info for r in records])}
        records = [r for r in records if r.info.name in members]
    status = request.query.get("status")
    if status:
        records = [r for r in records if r.status == status]
    removed = await removals(_js(request))
    return _json({"agents": [_agent_body(r, removed) for r in records]})


def _agent_body(record: AgentRecord, removed: dict[str, AgentRemoval]) -> dict[str, object]:
    """An agent as listed; ``removed_at`` if it registered again after an administrator removed it."""
    body = record.to_builtins()
    removal = removed.get(record.info.name)
    if removal is not None and record.seen_at >= removal.removed_at:
        body["removed_at"] = removal.removed_at.isoformat()
    return body


async def get_agent(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    for record in await _records(request):
        if record.info.name == name:
            provider = await _groups(request)
            body = _agent_body(record, await removals(_js(request)))
            body["member_of"] = [
                g for g in provider.group_names([record.info]) if provider.members(g, [record.info])
            ]
            return _json(body)
    removal = (await removals(_js(request))).get(name)
    if removal is not None:
        raise web.HTTPNotFound(text=f"agent {name!r} was removed by an administrator at "
                                    f"{removal.removed_at:%Y-%m-%d %H:%M:%S} UTC")
    raise web.HTTPNotFound(text=f"no agent named {name!r} is registered (or its record expired)")


def _group_body(name: str, provider: StoredGroupProvider, records: list[AgentRecord], with_members: bool) -> dict[str, object]:
    definition = provider.definitions().get(name)
    member_names = {a.name for a in provider.members(name, [r.info for r in records])}
    members = [r for r in records if r.info.name in member_names]
    counts = Counter(r.status for r in members)
    body: dict[str, object] = {
        "name": name,
        "defined": definition is not None,
        "defined_by": provider.origin(name),
        "description": definition.description if definition else "",
        "agents": len(members),
        "healthy": counts.get("healthy", 0),
        "unhealthy": counts.get("unhealthy", 0),
        "offline": counts.get("offline", 0),
    }
    if with_members:
        body["definition"] = msgspec.to_builtins(definition) if definition else None
        shadowed = provider.shadowed(name)
        if shadowed is not None:
            body["shadowed"] = msgspec.to_builtins(shadowed)
        body["members"] = [
            {"name": r.info.name, "status": r.status, "running": r.info.running, "capacity": r.info.capacity,
             "labels": r.info.labels}
            for r in members
        ]
    return body


async def get_groups(request: web.Request) -> web.Response:
    provider = await _groups(request)
    records = await _records(request)
    names = provider.group_names([r.info for r in records])
    return _json({
        "groups": [_group_body(n, provider, records, False) for n in names],
        "source": provider.source,
        "error": provider.error,
    })


async def get_group(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    provider = await _groups(request)
    records = await _records(request)
    if name not in provider.group_names([r.info for r in records]):
        raise web.HTTPNotFound(text=f"no group {name!r}: no agent declares it and {provider.source} does not define it")
    return _json(_group_body(name, provider, records, True))


class GroupBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The body of ``PUT /v1/groups/{name}`` (``name`` may be repeated, as GET returns it)."""

    name: str | None = None
    description: str = ""
    agents: list[str] = []
    labels: dict[str, str] = {}
    include: list[str] = []


async def _json_object(request: web.Request) -> dict[str, object]:
    raw = await request.read()
    body = parse_json(raw) if raw.strip() else {}
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text=f"expected a JSON object, got {type(body).__name__}")
    return body


async def put_group(request: web.Request) -> web.Response:
    """Create or replace the stored definition: 201 created, 200 replaced."""
    name = _checked(request.match_info["name"], "group name")
    body = await _json_object(request)
    if isinstance(body.get("labels"), dict):  # ``{gpu: null}`` means "has the key", as in the file
        body["labels"] = {k: "" if v is None else v for k, v in body["labels"].items()}  # type: ignore[union-attr]
    try:
        given = msgspec.convert(body, GroupBody)
    except msgspec.ValidationError as error:
        raise web.HTTPBadRequest(text=f"invalid group definition: {error}") from None
    if given.name is not None and given.name != name:
        raise web.HTTPBadRequest(text=f"the body names group {given.name!r} but the URL names {name!r}")
    definition = GroupDefinition(name=name, description=given.description, agents=tuple(dict.fromkeys(given.agents)),
                                 labels=given.labels, include=tuple(dict.fromkeys(given.include)))
    provider = request.app[GROUPS]
    try:
        created = await provider.put(_js(request), definition)
    except UserError as error:
        raise _http_error(error) from None
    return _json(_group_body(name, provider, await _records(request), True), 201 if created else 200)


async def delete_group(request: web.Request) -> web.Response:
    name = _checked(request.match_info["name"], "group name")
    provider = request.app[GROUPS]
    try:
        deleted = await provider.delete(_js(request), name)
    except UserError as error:
        raise _http_error(error) from None
    declaring = [r.info.name for r in await _records(request) if name in r.info.groups]
    return _json({
        "name": name, "deleted": msgspec.to_builtins(deleted), "declared_by": declaring,
        "note": (f"agents that declare group {name!r} themselves stay its members: {', '.join(declaring)}"
                 if declaring else f"no agent declares group {name!r}: it no longer exists"),
    })


async def add_group_agent(request: web.Request) -> web.Response:
    """Name an agent in a stored definition, creating the definition if there is none."""
    name = _checked(request.match_info["name"], "group name")
    body = await _json_object(request)
    agent = body.get("agent")
    if not isinstance(agent, str) or set(body) != {"agent"}:
        raise web.HTTPBadRequest(text='expected {"agent": "<agent name>"}')
    agent = _checked(agent, "agent name", subjects.check_token)

    def add(current: GroupDefinition | None) -> GroupDefinition | None:
        if current is None:
            return GroupDefinition(name=name, agents=(agent,))
        if agent in current.agents:
            return None
        return msgspec.structs.replace(current, agents=(*current.agents, agent))

    provider = request.app[GROUPS]
    try:
        _, changed = await provider.edit(_js(request), name, add)
    except UserError as error:
        raise _http_error(error) from None
    records = await _records(request)
    body_out = _group_body(name, provider, records, True)
    body_out["added"] = changed
    if not any(r.info.name == agent for r in records):
        body_out["warning"] = f"no agent named {agent!r} is registered yet: it becomes a member when it starts"
    return _json(body_out)


async def remove_group_agent(request: web.Request) -> web.Response:
    """Take an agent out of a stored definition; 409 if it is a member for another reason only."""
    name = _checked(request.match_info["name"], "group name")
    agent = _checked(request.match_info["agent"], "agent name", subjects.check_token)
    provider = await _groups(request)
    records = await _records(request)
    info = next((r.info for r in records if r.info.name == agent), None)
    reasons = membership_reasons(name, info, provider.definitions())

    def remove(current: GroupDefinition | None) -> GroupDefinition | None:
        if current is None or agent not in current.agents:
            if reasons:
                raise GroupConflict(f"agent {agent!r} is not listed in group {name!r}, it is a member because "
                                    f"{'; '.join(reasons)}: change the agent or the group's labels instead")
            if current is None:
                raise GroupNotFound(f"no group {name!r} is defined through the API")
            raise GroupNotFound(f"agent {agent!r} is not a member of group {name!r}")
        return msgspec.structs.replace(current, agents=tuple(a for a in current.agents if a != agent))

    try:
        await provider.edit(_js(request), name, remove)
    except UserError as error:
        raise _http_error(error) from None
    body = _group_body(name, provider, await _records(request), True)
    body["removed"] = agent
    if reasons:
        body["still_member_because"] = reasons
    return _json(body)


def _online(record: AgentRecord) -> bool:
    return record.status != "offline"


async def delete_agent(request: web.Request) -> web.Response:
    """Forget an agent; refused while it heartbeats unless ``?force=true``."""
    name = _checked(request.match_info["name"], "agent name", subjects.check_token)
    force = request.query.get("force", "false").lower()
    if force not in ("true", "false", "1", "0"):
        raise web.HTTPBadRequest(text=f"force must be true or false, got {force!r}")
    record = await find_agent(_js(request), name)
    if record is None:
        raise web.HTTPNotFound(text=f"no agent named {name!r} is registered (or its record expired)")
    if _online(record) and force not in ("true", "1"):
        raise web.HTTPConflict(text=(
            f"agent {name!r} is online ({record.status}, last heartbeat {record.age_seconds:.1f}s ago): stop it "
            f"first, or remove it anyway (waterflow agent remove {name} --force, or ?force=true); "
            "one that keeps running registers again at its next heartbeat"
        ))
    reason = (f"agent {name} was removed by an administrator ({record.status}, last heartbeat "
              f"{record.age_seconds:.0f}s before)")
    removal = await remove_agent(_js(request), record, request.app[SOURCE].signer, reason)  # type: ignore[attr-defined]
    body: dict[str, object] = msgspec.to_builtins(removal)
    body["removed_at"] = removal.removed_at.isoformat()
    body["note"] = ("the agent is forgotten; if it runs again it registers anew at its next heartbeat" +
                    (" — it is still running now, so it will be back within seconds" if _online(record) else ""))
    return _json(body)


def add_agent_routes(app: web.Application, source: object, groups: ServerGroupProvider | None = None) -> None:
    """Register the routes; ``source.js`` is the JetStream context and ``source.signer`` the
    event signer (the API's Runs object); ``groups`` (server-groups.yml, a plugin) defaults to
    agents' own groups only, and groups defined through the API come on top of it."""
    app[SOURCE] = source
    app[GROUPS] = groups if isinstance(groups, StoredGroupProvider) else StoredGroupProvider(groups)
    app.router.add_get("/v1/agents", get_agents)
    app.router.add_get("/v1/agents/{name}", get_agent)
    app.router.add_delete("/v1/agents/{name}", delete_agent)
    app.router.add_get("/v1/groups", get_groups)
    app.router.add_get("/v1/groups/{name}", get_group)
    app.router.add_put("/v1/groups/{name}", put_group)
    app.router.add_delete("/v1/groups/{name}", delete_group)
    app.router.add_post("/v1/groups/{name}/agents", add_group_agent)
    app.router.add_delete("/v1/groups/{name}/agents/{agent}", remove_group_agent)
