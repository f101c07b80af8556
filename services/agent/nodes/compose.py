"""``docker/compose-up`` and ``docker/compose-down``: a compose project from a file or inline YAML.

Uses ``docker compose`` (v2) where it works and falls back to ``docker-compose`` (v1). After
``up -d`` the node waits until every container of the project runs and, where a healthcheck is
declared, is healthy. Engines that do not run healthchecks themselves (podman without systemd
leaves them "starting" forever) are handled by running the declared test inside the container.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import Any

from waterflow_common.errors import NonRetryableError, RetryableError

from .base import CommandFailed, Node, NodeContext
from .containers import call, docker_client

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
_SOURCE: dict[str, Any] = {
    "file": {"type": "string", "description": "Compose file, relative to the working directory."},
    "inline": {"type": "string", "description": "Compose YAML text (instead of file)."},
    "project": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$", "description": "Compose project name."},
    "env": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}, "default": {},
            "description": "Variables for ${VAR} substitution in the compose file."},
    "timeout": {"type": "number", "exclusiveMinimum": 0, "default": 300, "description": "Seconds for the compose command."},
}


async def compose_command(ctx: NodeContext) -> list[str]:
    """``docker compose`` if the v2 plugin answers, else ``docker-compose``."""
    path = ctx.env.get("PATH")
    if shutil.which("docker", path=path):
        probe = await asyncio.create_subprocess_exec(
            "docker", "compose", "version", env=ctx.env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        if await probe.wait() == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose", path=path):
        return ["docker-compose"]
    raise NonRetryableError("neither `docker compose` nor `docker-compose` is installed on this agent")


async def run_compose(ctx: NodeContext, params: dict[str, Any], args: list[str], file: Path) -> None:
    env = {**ctx.env, **{k: str(v) for k, v in params["env"].items()}}
    argv = [*await compose_command(ctx), "-p", params["project"], "-f", str(file), *args]
    result = await ctx.run(argv, cwd=file.parent, env=env, timeout=params["timeout"])
    if result.exit_code != 0:
        raise CommandFailed(f"`{' '.join(argv[:-len(args)])} {args[0]}` exited with code {result.exit_code}: "
                            + " | ".join(result.last_lines[-3:]), exit_code=result.exit_code)


def compose_file(ctx: NodeContext, params: dict[str, Any], stem: str) -> tuple[Path, bool]:
    """The compose file to use and whether it is a temporary one."""
    if params.get("file"):
        path = ctx.path(params["file"], must_exist=True)
        return path, False
    ctx.temp_dir.mkdir(parents=True, exist_ok=True)
    path = ctx.temp_dir / f"{stem}-{params['project']}.compose.yml"
    path.write_text(params.get("inline") or 'version: "3"\nservices: {}\n')
    return path, True


async def service_states(ctx: NodeContext, client: Any, project: str) -> dict[str, str]:
    containers = await call(client.containers.list, all=True, filters={"label": f"{PROJECT_LABEL}={project}"})
    states: dict[str, str] = {}
    for container in containers:
        service = container.labels.get(SERVICE_LABEL, container.name)
        state = container.attrs.get("State", {})
        health = (state.get("Health") or {}).get("Status") or ""
        test = ((container.attrs.get("Config") or {}).get("Healthcheck") or {}).get("Test") or []
        if state.get("Running") and health in ("starting", "unhealthy") and not (state.get("Health") or {}).get("Log") and test:
            health = await _probe(container, test)
        states[service] = health if health and state.get("Running") else str(state.get("Status", container.status))
    return states


async def _probe(container: Any, test: list[str]) -> str:
    """Run a healthcheck the engine does not run itself; 'healthy' if it exits 0."""
    if test[0] == "NONE":
        return ""
    command = test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", " ".join(test[1:])]
    result = await call(container.exec_run, command)
    return "healthy" if result.exit_code == 0 else "starting"


class ComposeUp(Node):
    name = "docker/compose-up"
    description = "Start a compose project (file or inline YAML) and wait until its services are healthy."
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["project"],
        "oneOf": [{"required": ["file"]}, {"required": ["inline"]}],
        "properties": {
            **_SOURCE,
            "services": {"type": "array", "items": {"type": "string"}, "description": "Only these services (default all)."},
            "wait": {"type": "boolean", "default": True, "description": "Wait until every container runs (and is healthy if it has a healthcheck)."},
            "wait-timeout": {"type": "number", "exclusiveMinimum": 0, "default": 120},
            "build": {"type": "boolean", "default": False, "description": "Build images first (--build)."},
        },
    }
    outputs = {"project": "the project name", "services": "JSON object service -> state (running, healthy, exited, ...)"}

    async def execute(self, ctx: NodeContext, params: dict[str, Any]) -> dict[str, str]:
        file, temporary = compose_file(ctx, params, f"{ctx.run_id or 'node'}-{ctx.step_index}")
        try:
            await run_compose(ctx, params, ["up", "-d", *(["--build"] if params["build"] else []), *params.get("services", [])], file)
        finally:
            if temporary:
                file.unlink(missing_ok=True)
        client = await docker_client(ctx)
        try:
            states = await service_states(ctx, client, params["project"])
            if params["wait"]:
                states = await self._wait(ctx, client, params, states)
        finally:
            await asyncio.to_thread(client.close)
        ctx.log.system("services: " + ", ".join(f"{k}={v}" for k, v in sorted(states.items())))
        return {"project": params["project"], "services": json.dumps(states, sort_keys=True)}

    async def _wait(self, ctx: NodeContext, client: Any, params: dict[str, Any], states: dict[str, str]) -> dict[str, str]:
        timeout = ctx.timeout(params["wait-timeout"]) or params["wait-timeout"]
        deadline = time.monotonic() + timeout
        while True:
            pending = {s: v for s, v in states.items() if v not in ("running", "healthy")}
            if not pending and states:
                return states
            failed = {s: v for s, v in pending.items() if v in ("exited", "dead", "unhealthy")}
            if failed:
                raise RetryableError(f"compose project {params['project']}: services not healthy: {failed}")
            if time.monotonic() > deadline:
                raise RetryableError(f"compose project {params['project']} not healthy within {timeout:g}s: {pending or 'no containers'}")
            await asyncio.sleep(0.5)
            states = await service_states(ctx, client, params["project"])


class ComposeDown(Node):
    name = "docker/compose-down"
    description = "Stop and remove a compose project's containers and networks (and volumes if asked)."
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["project"],
        "not": {"required": ["file", "inline"]},
        "properties": {
            **_SOURCE,
            "volumes": {"type": "boolean", "default": False, "description": "Also remove named volumes (-v)."},
            "stop-timeout": {"type": "integer", "minimum": 0, "default": 10},
        },
    }
    outputs = {"project": "the project name", "removed": "JSON list of the services whose containers were removed"}

    async def execute(self, ctx: NodeContext, params: dict[str, Any]) -> dict[str, str]:
        client = await docker_client(ctx)
        try:
            before = await service_states(ctx, client, params["project"])
            # Without a file, an empty project plus --remove-orphans removes every container of it.
            file, temporary = compose_file(ctx, params, f"{ctx.run_id or 'node'}-{ctx.step_index}-down")
            args = ["down", "--remove-orphans", "-t", str(params["stop-timeout"]), *(["-v"] if params["volumes"] else [])]
            try:
                await run_compose(ctx, params, args, file)
            finally:
                if temporary:
                    file.unlink(missing_ok=True)
            for network in await call(client.networks.list, filters={"label": f"{PROJECT_LABEL}={params['project']}"}):
                await call(network.remove)
        finally:
            await asyncio.to_thread(client.close)
        return {"project": params["project"], "removed": json.dumps(sorted(before))}
