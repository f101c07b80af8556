"""HTTP routes (aiohttp). Every error is an RFC 7807 problem document; no tracebacks leak.

The full reference is ``services/api/openapi.yaml``; keep the two in step.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
from aiohttp import web

from waterflow_common import subjects
from waterflow_common.diagnostics import Diagnostic, has_errors, to_problem
from waterflow_common.limits import MAX_PATH_PARAMETER
from waterflow_common.log import get_logger
from waterflow_common.messages import RunCancelRequested, RunCompleted, RunRetryRequested
from waterflow_common.streams import follow

from .bodies import parse_json
from .console import add_console_routes, is_public as is_public_console_route
from .routes_triggers import signature_of
from .runs import InvalidInputs, Runs, ServiceUnavailable, public_state

log = get_logger("waterflow.api")
RUNS = web.AppKey("runs", Runs)
API_KEY = web.AppKey("api_key", str)
MAX_WORKFLOW_BYTES = 1024 * 1024


def problem(status: int, title: str, detail: str | None = None, **extra: Any) -> web.Response:
    body = {"type": "about:blank", "title": title, "status": status, **({"detail": detail} if detail else {}), **extra}
    return web.json_response(body, status=status, content_type="application/problem+json")


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), status=status, content_type="application/json")


@web.middleware
async def errors_and_auth(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    key = request.app[API_KEY]
    signed_webhook = request.method == "POST" and request.path.endswith("/fire") and signature_of(request) is not None
    public = request.path in ("/v1/health", "/v1/health/live") or is_public_console_route(request)  # the console and docs are not secret
    if key and not public and not signed_webhook:  # a signed webhook is checked by its handler
        given = request.headers.get("Authorization", "")
        token = given[7:] if given.startswith("Bearer ") else request.headers.get("X-API-Key", "")
        if not token:
            return problem(401, "unauthorized", "this API needs a key: send 'Authorization: Bearer <key>'")
        if not hmac.compare_digest(token.encode(), key.encode()):
            return problem(401, "unauthorized", "the API key is wrong (check WATERFLOW_API_KEY)")
    if not public and not getattr(request.app[RUNS], "ready", True):
        return problem(503, "service unavailable", "the API is starting: JetStream is not ready yet "
                       "(streams are being provisioned; see the api log, jetstream.not_ready)")
    invalid = _invalid_path_parameter(request.match_info)
    if invalid:
        return problem(400, "invalid path parameter", invalid)
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return problem(error.status, error.reason, error.text if error.text != f"{error.status}: {error.reason}" else None)
    except ServiceUnavailable as error:
        return problem(503, "service unavailable", str(error))
    except Exception:
        log.exception("request.failed", path=request.path)
        return problem(500, "internal error", "the API failed to handle this request; see its log")


TOKEN_PARAMETERS = {"run_id": "run id", "trigger_id": "trigger id"}
"""Path parameters that become part of a NATS subject or KV key: letters, digits, '-', '_'."""


def _invalid_path_parameter(match_info: Mapping[str, str]) -> str | None:
    """Why a path parameter cannot be used (too long, or not a subject token), or None.

    Checked before any handler runs: a 5,000-character id used to reach NATS as a key and make
    the server close the API's connection."""
    for name, value in match_info.items():
        if len(value) > MAX_PATH_PARAMETER:
            return f"{name} is {len(value)} characters long, over the limit of {MAX_PATH_PARAMETER}"
        if name in TOKEN_PARAMETERS:
            try:
                subjects.check_token(value, TOKEN_PARAMETERS[name])
            except ValueError as error:
                return str(error)
    return None


WORKFLOW_CONTENT_TYPES = frozenset({
    "application/json", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain",
    "application/octet-stream",
})
"""What a workflow may be sent as (no Content-Type at all is read as YAML text too)."""


async def read_workflow(request: web.Request) -> tuple[str, str, dict[str, object], dict[str, str]]:
    """Workflow text, file name and inputs, from a YAML body (inputs as ``?input.NAME=value``)
    or ``{"workflow": "...", "filename": "...", "inputs": {...}}``."""
    raw = await request.read()
    if len(raw) > MAX_WORKFLOW_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_WORKFLOW_BYTES, actual_size=len(raw))
    if request.content_type not in WORKFLOW_CONTENT_TYPES and request.headers.get("Content-Type"):
        raise web.HTTPUnsupportedMediaType(text=(
            f"a workflow is sent as application/json ({{\"workflow\": ...}}) or as YAML text "
            f"(application/yaml, text/yaml, text/plain), not {request.content_type}"))
    filename = request.query.get("filename", "workflow.yml")
    inputs: dict[str, object] = {k[6:]: v for k, v in request.query.items() if k.startswith("input.")}
    if request.content_type == "application/json":
        body = parse_json(raw)
        if not isinstance(body, dict) or not isinstance(body.get("workflow"), str):
            raise web.HTTPBadRequest(text='expected a JSON object {"workflow": "<yaml text>"}')
        if not isinstance(body.get("inputs", {}), dict):
            raise web.HTTPBadRequest(text="'inputs' must be an object of name -> value")
        workflows = body.get("workflows") or {}
        if not isinstance(workflows, dict) or not all(isinstance(v, str) for v in workflows.values()):
            raise web.HTTPBadRequest(text="'workflows' must be an object of file reference -> YAML text")
        return body["workflow"], str(body.get("filename") or filename), dict(body.get("inputs") or {}), workflows
    try:
        return raw.decode("utf-8"), filename, inputs, {}
    except UnicodeDecodeError as error:
        raise web.HTTPBadRequest(text=f"the workflow is not UTF-8 text: {error}") from error


async def submit(request: web.Request) -> web.Response:
    source, filename, inputs, workflows = await read_workflow(request)
    try:
        submitted = await request.app[RUNS].submit(source, filename, inputs, workflows)
    except InvalidInputs as error:
        return problem(400, "invalid inputs", str(error), errors=[{"message": p} for p in error.problems])
    if submitted.run_id is None:
        body = to_problem(submitted.diagnostics)
        return web.json_response(body, status=400, content_type="application/problem+json")
    warnings = [msgspec.to_builtins(d) for d in submitted.diagnostics]
    return _json({"id": submitted.run_id, "status": "queued", "url": f"/v1/workflows/{submitted.run_id}", "warnings": warnings}, 201)


async def validate(request: web.Request) -> web.Response:
    source, filename, _, workflows = await read_workflow(request)
    reply = await request.app[RUNS].compile(source, filename, workflows)
    diagnostics = [msgspec.convert(d, Diagnostic) for d in reply.diagnostics]
    return _json({"valid": not has_errors(diagnostics), "errors": msgspec.to_builtins(diagnostics)})


async def list_runs(request: web.Request) -> web.Response:
    try:
        limit = max(1, min(int(request.query.get("limit", "50")), 1000))
    except ValueError as error:
        raise web.HTTPBadRequest(text="'limit' must be a whole number") from error
    before = request.query.get("before") or None
    states, cursor = await request.app[RUNS].list(limit, before)
    return _json({
        # a summary per run: not its jobs, nor the webhook payload that started it (up to 64 KiB)
        "runs": [{k: v for k, v in public_state(s).items() if k not in ("jobs", "event")} for s in states],
        "next": cursor,
    })


async def _existing(request: web.Request) -> str:
    run_id = request.match_info["run_id"]
    if await request.app[RUNS].status(run_id) is None:
        raise web.HTTPNotFound(text=f"no run with id {run_id!r}")
    return run_id


async def get_run(request: web.Request) -> web.Response:
    run_id = request.match_info["run_id"]
    state = await request.app[RUNS].state(run_id)
    if state is None:
        raise web.HTTPNotFound(text=f"no run with id {run_id!r}")
    return _json(public_state(state))


async def cancel(request: web.Request) -> web.Response:
    """Ask to cancel a run: running steps are stopped on their agents, queued ones never start."""
    run_id = request.match_info["run_id"]
    state = await request.app[RUNS].status(run_id)
    if state is None:
        raise web.HTTPNotFound(text=f"no run with id {run_id!r}")
    if state.finished:
        return problem(409, "run already finished", f"run {run_id} is {state.status}; nothing to cancel")
    await request.app[RUNS].request(run_id, RunCancelRequested(run_id=run_id))
    return _json({"id": run_id, "status": "cancelling"}, 202)


async def retry(request: web.Request) -> web.Response:
    """Re-run what failed, was cancelled or skipped, keeping the steps that succeeded."""
    run_id = request.match_info["run_id"]
    state = await request.app[RUNS].status(run_id)
    if state is None:
        raise web.HTTPNotFound(text=f"no run with id {run_id!r}")
    if not state.finished or state.status == "succeeded":
        return problem(409, "run cannot be retried", f"run {run_id} is {state.status}; only failed or cancelled runs can be retried")
    await request.app[RUNS].request(run_id, RunRetryRequested(run_id=run_id))
    return _json({"id": run_id, "status": "retrying", "attempt": state.attempt + 1}, 202)


async def get_logs(request: web.Request) -> web.StreamResponse:
    run_id = await _existing(request)
    lines = await request.app[RUNS].logs(run_id)
    if request.query.get("format") == "text":
        text = "".join(f"[{l['job']}/{l['step']}] {l['text']}\n" for l in lines)
        return web.Response(text=text, content_type="text/plain")
    return _json({"id": run_id, "lines": lines})


async def get_workflow(request: web.Request) -> web.Response:
    """The workflow file that ran, as submitted (its plan keeps the text)."""
    run_id = await _existing(request)
    plan = await request.app[RUNS].plan(run_id)
    if plan is None:
        raise web.HTTPNotFound(text=f"no run with id {run_id!r}")
    return _json({"id": run_id, "filename": plan.source_name, "source": plan.source})


async def get_events(request: web.Request) -> web.Response:
    run_id = await _existing(request)
    return _json({"id": run_id, "events": await request.app[RUNS].events(run_id)})


async def watch(request: web.Request) -> web.StreamResponse:
    """NDJSON stream of a run's events and log lines, from the start, until the run ends."""
    run_id = await _existing(request)
    runs = request.app[RUNS]
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    async def pump(kind: str, stream: str, subject_filter: str) -> None:
        async for msg in follow(runs.js, stream, subject_filter):
            await queue.put((kind, msg))

    pumps = [
        asyncio.create_task(pump("event", subjects.EVENTS_STREAM, subjects.run_events(run_id))),
        asyncio.create_task(pump("log", subjects.LOGS_STREAM, subjects.run_logs(run_id))),
    ]
    log_batches_seen, expected_batches = 0, None
    try:
        while expected_batches is None or log_batches_seen < expected_batches:
            try:
                kind, msg = await asyncio.wait_for(queue.get(), timeout=15)
            except asyncio.TimeoutError:
                await response.write(b'{"kind":"keepalive"}\n')
                continue
            if kind == "event":
                event = runs.trusted_event(run_id, msg.subject, msg.data)
                if event is None:
                    continue
                await response.write(msgspec.json.encode({"kind": "event", **msgspec.to_builtins(event)}) + b"\n")
                current = await runs.status(run_id) if isinstance(event, RunCompleted) else None
                if isinstance(event, RunCompleted) and (current is None or event.attempt >= current.attempt):
                    expected_batches = await runs.log_batch_count(run_id)
            else:
                log_batches_seen += 1
                for line in runs.trusted_log_lines(run_id, msg.subject, msg.data):
                    await response.write(msgspec.json.encode({"kind": "log", **line}) + b"\n")
        await response.write_eof()
    except ConnectionResetError:
        # The client went away (a follower that has what it wanted, a closed tab): not an error.
        # Logging it as one cost ~150 ms of rendering on the event loop, stalling every request.
        pass
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
    return response


async def health(request: web.Request) -> web.Response:
    """Readiness: 503 while NATS is not connected (every other /v1 route would fail then), so a
    load balancer stops sending requests here; ``/v1/health/live`` stays 200 (the process runs)."""
    runs = request.app[RUNS]
    connected = runs.nc.is_connected
    ready = connected and getattr(runs, "ready", True)
    status = "ok" if ready else "starting" if connected else "unavailable"
    return _json({"status": status, "nats": connected}, 200 if ready else 503)


async def live(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


def make_app(runs: Runs, api_key: str | None, groups: Any = None) -> web.Application:
    app = web.Application(middlewares=[errors_and_auth], client_max_size=MAX_WORKFLOW_BYTES + 1024)
    app[RUNS] = runs
    app[API_KEY] = api_key or ""
    app.router.add_get("/v1/health", health)
    app.router.add_get("/v1/health/live", live)
    app.router.add_post("/v1/workflows", submit)
    app.router.add_get("/v1/workflows", list_runs)
    app.router.add_get("/v1/workflows/{run_id}", get_run)
    app.router.add_get("/v1/workflows/{run_id}/logs", get_logs)
    app.router.add_get("/v1/workflows/{run_id}/events", get_events)
    app.router.add_get("/v1/workflows/{run_id}/workflow", get_workflow)
    app.router.add_get("/v1/workflows/{run_id}/watch", watch)
    app.router.add_post("/v1/workflows/{run_id}/cancel", cancel)
    app.router.add_delete("/v1/workflows/{run_id}", cancel)  # the same, as REST clients expect
    app.router.add_post("/v1/workflows/{run_id}/retry", retry)
    app.router.add_post("/v1/validate", validate)
    from .routes_agents import add_agent_routes  # /v1/agents, /v1/groups; groups: a ServerGroupProvider
    add_agent_routes(app, runs, groups)
    from .routes_secrets import add_secret_routes

    add_secret_routes(app, runs.js)
    from .routes_nodes import add_node_routes

    add_node_routes(app, runs.js)
    from .routes_files import add_file_routes

    add_file_routes(app, runs.js)
    from .routes_triggers import add_trigger_routes
    from .triggers import Triggers

    add_trigger_routes(app, Triggers(runs))
    from .routes_deadletters import add_dead_letter_routes

    add_dead_letter_routes(app, runs)
    add_console_routes(app)  # /, /console/…, /openapi.json, /openapi.yaml, /docs: no key needed
    return app
