"""HTTP routes for agents and server groups (read-only views of KV ``wf_agents``).

- ``GET /v1/agents``: every registered agent with ``status`` (healthy | unhealthy | offline);
  ``?group=G`` and ``?status=S`` filter.
- ``GET /v1/agents/{name}``
- ``GET /v1/groups``: every group (declared by agents or defined by the ServerGroupProvider)
  with member counts by status.
- ``GET /v1/groups/{name}``: one group, its definition and its members.
"""

from __future__ import annotations

from collections import Counter

import msgspec
from aiohttp import web
from waterflow_common.agents import AgentRecord, list_agents
from waterflow_common.groups import ServerGroupProvider

GROUPS = web.AppKey("groups", ServerGroupProvider)
SOURCE = web.AppKey("agents_source", object)
"""Whatever holds the JetStream context as ``.js`` (the API's Runs), read at request time."""


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), status=status, content_type="application/json")


async def _records(request: web.Request) -> list[AgentRecord]:
    return await list_agents(request.app[SOURCE].js)  # type: ignore[attr-defined]


async def get_agents(request: web.Request) -> web.Response:
    records = await _records(request)
    group = request.query.get("group")
    if group:
        members = {a.name for a in request.app[GROUPS].members(group, [r.info for r in records])}
        records = [r for r in records if r.info.name in members]
    status = request.query.get("status")
    if status:
        records = [r for r in records if r.status == status]
    return _json({"agents": [r.to_builtins() for r in records]})


async def get_agent(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    for record in await _records(request):
        if record.info.name == name:
            provider = request.app[GROUPS]
            body = record.to_builtins()
            body["member_of"] = [
                g for g in provider.group_names([record.info]) if provider.members(g, [record.info])
            ]
            return _json(body)
    raise web.HTTPNotFound(text=f"no agent named {name!r} is registered (or its record expired)")


def _group_body(name: str, provider: ServerGroupProvider, records: list[AgentRecord], with_members: bool) -> dict[str, object]:
    definition = provider.definitions().get(name)
    member_names = {a.name for a in provider.members(name, [r.info for r in records])}
    members = [r for r in records if r.info.name in member_names]
    counts = Counter(r.status for r in members)
    body: dict[str, object] = {
        "name": name,
        "defined": definition is not None,
        "description": definition.description if definition else "",
        "agents": len(members),
        "healthy": counts.get("healthy", 0),
        "unhealthy": counts.get("unhealthy", 0),
        "offline": counts.get("offline", 0),
    }
    if with_members:
        body["definition"] = msgspec.to_builtins(definition) if definition else None
        body["members"] = [
            {"name": r.info.name, "status": r.status, "running": r.info.running, "capacity": r.info.capacity,
             "labels": r.info.labels}
            for r in members
        ]
    return body


async def get_groups(request: web.Request) -> web.Response:
    provider = request.app[GROUPS]
    records = await _records(request)
    names = provider.group_names([r.info for r in records])
    return _json({
        "groups": [_group_body(n, provider, records, False) for n in names],
        "source": provider.source,
        "error": provider.error,
    })


async def get_group(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    provider = request.app[GROUPS]
    records = await _records(request)
    if name not in provider.group_names([r.info for r in records]):
        raise web.HTTPNotFound(text=f"no group {name!r}: no agent declares it and {provider.source} does not define it")
    return _json(_group_body(name, provider, records, True))


def add_agent_routes(app: web.Application, source: object, groups: ServerGroupProvider | None = None) -> None:
    """Register the routes; ``source.js`` is the JetStream context (the API's Runs object);
    ``groups`` defaults to agents' own groups only."""
    app[SOURCE] = source
    app[GROUPS] = groups or ServerGroupProvider()
    app.router.add_get("/v1/agents", get_agents)
    app.router.add_get("/v1/agents/{name}", get_agent)
    app.router.add_get("/v1/groups", get_groups)
    app.router.add_get("/v1/groups/{name}", get_group)
