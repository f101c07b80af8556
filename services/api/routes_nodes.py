"""``/v1/nodes``: which nodes (``uses:``) are really available, on which agents and groups.

Built from what healthy agents publish in their registration, so a node installed on one server
only, or a plugin that failed to load there, shows up as exactly that.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from nats.js import JetStreamContext

from waterflow_common.agents import list_agents

_JS = web.AppKey("nodes_js", JetStreamContext)


async def _catalog(request: web.Request) -> dict[str, dict[str, Any]]:
    """``name@version`` -> what it is, and where it loads (or fails)."""
    nodes: dict[str, dict[str, Any]] = {}
    for record in await list_agents(request.app[_JS]):
        if record.status == "offline":
            continue
        for spec in record.info.nodes:
            ref = f"{spec.name}@{spec.version}" if spec.version else spec.name
            node = nodes.setdefault(ref, {
                "name": spec.name, "version": spec.version, "description": spec.description,
                "outputs": dict(spec.outputs), "schema": spec.schema, "source": spec.source,
                "agents": [], "groups": [], "failed_on": [],
            })
            if spec.status == "ok":
                node["agents"].append(record.info.name)
                node["groups"] = sorted(set(node["groups"]) | set(record.info.groups))
            else:
                node["failed_on"].append({"agent": record.info.name, "error": spec.error})
    for node in nodes.values():
        node["status"] = "ok" if node["agents"] else "failed"
    return nodes


async def list_nodes(request: web.Request) -> web.Response:
    nodes = await _catalog(request)
    group = request.query.get("group")
    shown = [
        {k: v for k, v in node.items() if k != "schema"}
        for ref, node in sorted(nodes.items())
        if group is None or group in node["groups"]
    ]
    return web.json_response({"nodes": shown})


async def get_node(request: web.Request) -> web.Response:
    """One node by ``name`` (every version) or ``name@version``."""
    wanted = request.match_info["name"]
    nodes = await _catalog(request)
    found = [node for ref, node in sorted(nodes.items()) if wanted in (ref, node["name"])]
    if not found:
        raise web.HTTPNotFound(text=f"no agent provides a node named {wanted!r}")
    return web.json_response({"versions": found})


def add_node_routes(app: web.Application, js: JetStreamContext) -> None:
    app[_JS] = js
    app.router.add_get("/v1/nodes", list_nodes)
    app.router.add_get("/v1/nodes/{name:.+}", get_node)
