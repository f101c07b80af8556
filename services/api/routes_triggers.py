"""``/v1/triggers``: register a workflow for its cron schedules and webhook, list, fire, delete."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from waterflow_common.diagnostics import to_problem
from waterflow_common.limits import MAX_WEBHOOK_PAYLOAD_BYTES
from waterflow_common.triggers import SIGNATURE_HEADERS, signature_matches

from .bodies import parse_json
from .triggers import Triggers

TRIGGERS = web.AppKey("triggers", Triggers)


def signature_of(request: web.Request) -> str | None:
    """The webhook signature the call carries, if any (the API key check lets such a call
    through: the fire handler checks the signature with the trigger's own secret)."""
    for header in SIGNATURE_HEADERS:
        if header in request.headers:
            return request.headers[header]
    return None


def _shown(trigger: Any, with_secret: bool = False) -> dict[str, Any]:
    body = msgspec.to_builtins(trigger)
    body.pop("source", None)
    body.pop("workflows", None)
    if not with_secret:
        body.pop("webhook_secret", None)
    body["webhook"] = f"/v1/triggers/{trigger.id}/fire"
    body["next_fire_at"] = next_fire_at(trigger.crons)
    return body


def next_fire_at(crons: list[str]) -> str | None:
    """When the earliest of ``crons`` fires next (UTC, ISO 8601), or None without a schedule."""
    from datetime import UTC, datetime

    from cronsim import CronSim, CronSimError

    now = datetime.now(UTC).replace(microsecond=0)
    times = []
    for cron in crons:
        try:
            times.append(next(CronSim(cron, now)))
        except (CronSimError, StopIteration, ValueError):
            continue
    return min(times).isoformat() if times else None


async def register(request: web.Request) -> web.Response:
    from .app import read_workflow  # the same body forms as POST /v1/workflows

    source, filename, inputs, workflows = await read_workflow(request)
    trigger, diagnostics = await request.app[TRIGGERS].register(source, filename, inputs, workflows)
    if trigger is None:
        return web.json_response(to_problem(diagnostics), status=400, content_type="application/problem+json")
    return web.json_response(_shown(trigger, with_secret=True), status=201)  # the only time the secret is shown


async def list_triggers(request: web.Request) -> web.Response:
    return web.json_response({"triggers": [_shown(t) for t in await request.app[TRIGGERS].list()]})


async def get_trigger(request: web.Request) -> web.Response:
    trigger = await request.app[TRIGGERS].get(request.match_info["trigger_id"])
    if trigger is None:
        raise web.HTTPNotFound(text=f"no trigger with id {request.match_info['trigger_id']!r}")
    return web.json_response(_shown(trigger))


async def delete_trigger(request: web.Request) -> web.Response:
    if not await request.app[TRIGGERS].delete(request.match_info["trigger_id"]):
        raise web.HTTPNotFound(text=f"no trigger with id {request.match_info['trigger_id']!r}")
    return web.Response(status=204)


async def fire(request: web.Request) -> web.Response:
    """A webhook: optional JSON body ``{"inputs": {...}}``; starts one run and answers its id."""
    trigger_id = request.match_info["trigger_id"]
    trigger = await request.app[TRIGGERS].get(trigger_id)
    if trigger is None:
        raise web.HTTPNotFound(text=f"no trigger with id {trigger_id!r}")
    raw = await request.read()
    if len(raw) > MAX_WEBHOOK_PAYLOAD_BYTES:
        raise web.HTTPBadRequest(text=f"the body is {len(raw)} bytes, over the limit of {MAX_WEBHOOK_PAYLOAD_BYTES}")
    signature = signature_of(request)
    if signature is not None and not signature_matches(trigger.webhook_secret, raw, signature):
        raise web.HTTPUnauthorized(text="the webhook signature does not match the body (HMAC-SHA256 with the "
                                        "trigger's webhook secret, as 'sha256=<hex>')")
    body = parse_json(raw) if raw.strip() else {}
    inputs = body.get("inputs", {}) if isinstance(body, dict) else None
    if not isinstance(inputs, dict):
        raise web.HTTPBadRequest(text='expected a JSON object {"inputs": {...}}')
    problems = await request.app[TRIGGERS].check_inputs(trigger, inputs)
    if problems:
        raise web.HTTPBadRequest(text="invalid inputs: " + "; ".join(problems))
    run_id, created = await request.app[TRIGGERS].fire(trigger_id, inputs, body if body != {} else None)
    # 201: the run exists (GET /v1/workflows/{run_id} finds it); 202: it will, once a fire is taken
    return web.json_response({"trigger": trigger_id, "status": "created" if created else "fired", "run_id": run_id},
                             status=201 if created else 202)


def add_trigger_routes(app: web.Application, triggers: Triggers) -> None:
    app[TRIGGERS] = triggers
    app.router.add_post("/v1/triggers", register)
    app.router.add_get("/v1/triggers", list_triggers)
    app.router.add_get("/v1/triggers/{trigger_id}", get_trigger)
    app.router.add_delete("/v1/triggers/{trigger_id}", delete_trigger)
    app.router.add_post("/v1/triggers/{trigger_id}/fire", fire)
