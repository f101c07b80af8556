"""``docker``: run/exec/pull/stop/rm/logs/inspect containers through the Docker SDK.

The engine is found the Docker way, from the step env (``DOCKER_HOST``, ``DOCKER_TLS_VERIFY``,
``DOCKER_CERT_PATH``), so a podman socket serving the Docker API works too. The SDK is blocking:
every call runs in a thread. A ``run`` streams the container's output into the step log live and
stops (then removes) the container if the step is cancelled or times out.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from waterflow_common.errors import NonRetryableError, RetryableError

from .base import CommandFailed, Node, NodeContext

T = TypeVar("T")
COMMAND = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
MAX_LOG_OUTPUT = 64 * 1024


async def docker_client(ctx: NodeContext) -> Any:
    """A client for the engine named by the step env; RetryableError if it does not answer."""
    import docker

    host = ctx.env.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    # docker-py leaks its socket when the first connection fails: check a unix socket ourselves.
    if host.startswith("unix://") and not Path(host[len("unix://"):]).exists():
        raise RetryableError(f"cannot reach the container engine: no socket at {host} (is it running? is DOCKER_HOST right?)")
    try:
        return await asyncio.to_thread(docker.DockerClient.from_env, environment=ctx.env)
    except docker.errors.DockerException as error:
        raise RetryableError(f"cannot reach the container engine (DOCKER_HOST={host}): {error}") from None


async def call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking SDK call in a thread, turning SDK errors into typed node errors."""
    import docker.errors
    import requests

    try:
        return await asyncio.to_thread(function, *args, **kwargs)
    except docker.errors.ImageNotFound as error:
        raise NonRetryableError(f"image not found: {error.explanation or error}") from None
    except docker.errors.NotFound as error:
        raise NonRetryableError(f"not found: {error.explanation or error}") from None
    except docker.errors.APIError as error:
        kind = RetryableError if error.is_server_error() else NonRetryableError
        raise kind(f"container engine error: {error.explanation or error}") from None
    except (docker.errors.DockerException, requests.RequestException) as error:
        raise RetryableError(f"container engine unreachable: {error}") from None


class Docker(Node):
    name = "docker"
    description = "Run, exec, pull, stop, remove, read logs of, or inspect containers."
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["action"],
        "allOf": [
            {"if": {"properties": {"action": {"enum": ["run", "pull"]}}}, "then": {"required": ["image"]}},
            {"if": {"properties": {"action": {"enum": ["exec", "stop", "rm", "logs", "inspect"]}}}, "then": {"required": ["container"]}},
            {"if": {"properties": {"action": {"const": "exec"}}}, "then": {"required": ["command"]}},
        ],
        "properties": {
            "action": {"enum": ["run", "exec", "pull", "stop", "rm", "logs", "inspect"]},
            "image": {"type": "string", "description": "Image for run/pull, e.g. 'nginx:1.27'."},
            "command": {**COMMAND, "description": "Command for run (overrides the image's) or exec."},
            "container": {"type": "string", "description": "Container name or id for exec/stop/rm/logs/inspect."},
            "name": {"type": "string", "description": "Name of the container that run creates."},
            "env": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}, "default": {}},
            "detach": {"type": "boolean", "default": False, "description": "run: start and return at once (output container_id)."},
            "remove": {"type": "boolean", "default": True, "description": "run (attached): remove the container when it ends."},
            "ports": {"type": "object", "additionalProperties": {"type": "integer"}, "description": "run: container port ('80/tcp') -> host port."},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}, "default": {}},
            "workdir": {"type": "string"},
            "user": {"type": "string"},
            "force": {"type": "boolean", "default": False, "description": "rm: also remove a running container."},
            "stop-timeout": {"type": "integer", "minimum": 0, "default": 10, "description": "stop: seconds before SIGKILL."},
            "tail": {"type": "integer", "minimum": 1, "default": 100, "description": "logs: last lines to return."},
            "check-exit-code": {"type": "boolean", "default": True, "description": "run/exec: fail the step on a non-zero exit code."},
        },
    }
    outputs = {
        "container_id": "run/exec/stop/rm/logs/inspect: the container's id",
        "exit_code": "run (attached) and exec: the exit code",
        "output": "run (attached), exec and logs: the output (last 64 KiB)",
        "image_id": "run/pull: the image id",
        "status": "inspect/stop: the container status (running, exited, ...)",
        "inspect": "inspect: the engine's JSON description of the container",
    }

    async def execute(self, ctx: NodeContext, params: dict[str, Any]) -> dict[str, str]:
        client = await docker_client(ctx)
        try:
            action = params["action"]
            handler = getattr(self, f"_{action}")
            result: dict[str, str] = await handler(ctx, client, params)
            return result
        finally:
            await asyncio.to_thread(client.close)

    async def _container(self, client: Any, params: dict[str, Any]) -> Any:
        return await call(client.containers.get, params["container"])

    async def _pull(self, ctx: NodeContext, client: Any, params: dict[str, Any]) -> dict[str, str]:
        ctx.log.system(f"pulling {params['image']}")
        image = await call(client.images.pull, params["image"])
        return {"image_id": image.id}

    async def _run(self, ctx: NodeContext, client: Any, params: dict[str, Any]) -> dict[str, str]:
        env = {k: (("true" if v else "false") if isinstance(v, bool) else str(v)) for k, v in params["env"].items()}
        options: dict[str, Any] = {"environment": env, "labels": params["labels"], "detach": True}
        for key in ("name", "workdir", "user", "ports"):
            if params.get(key) is not None:
                options[key] = params[key]
        ctx.log.system(f"starting a container from {params['image']}")
        container = await call(client.containers.run, params["image"], params.get("command"), **options)
        if params["detach"]:
            return {"container_id": container.id, "image_id": container.image.id if container.image else ""}
        try:
            exit_code, output = await self._follow(ctx, container)
        except BaseException:
            ctx.log.system("stopping the container")
            await asyncio.shield(call(container.remove, force=True))
            raise
        if params["remove"]:
            await call(container.remove, force=True)
        outputs = {"container_id": container.id, "exit_code": str(exit_code), "output": output}
        if exit_code != 0 and params["check-exit-code"]:
            raise CommandFailed(f"container exited with code {exit_code}", exit_code=exit_code, outputs=outputs)
        return outputs

    async def _follow(self, ctx: NodeContext, container: Any) -> tuple[int, str]:
        loop = asyncio.get_running_loop()
        kept: deque[str] = deque()
        size = 0

        def stream() -> None:
            nonlocal size
            buffer = b""
            for chunk in container.logs(stream=True, follow=True):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for raw in lines:
                    text = raw.decode("utf-8", errors="replace").rstrip("\r")
                    loop.call_soon_threadsafe(ctx.log.info, text)
                    kept.append(text)
                    size += len(text) + 1
                    while size > MAX_LOG_OUTPUT and kept:
                        size -= len(kept.popleft()) + 1
            if buffer:
                text = buffer.decode("utf-8", errors="replace")
                loop.call_soon_threadsafe(ctx.log.info, text)
                kept.append(text)

        follower = asyncio.create_task(call(stream))
        status = await call(container.wait)
        try:
            await asyncio.wait_for(follower, 5)
        except TimeoutError:
            pass
        return int(status.get("StatusCode", -1)), ctx.masker("\n".join(kept))

    async def _exec(self, ctx: NodeContext, client: Any, params: dict[str, Any]) -> dict[str, str]:
        container = await self._container(client, params)
        env = {k: str(v) for k, v in params["env"].items()}
        result = await call(container.exec_run, params["command"], environment=env or None,
                            workdir=params.get("workdir"), user=params.get("user") or "")
        text = (result.output or b"").decode("utf-8", errors="replace")
        for line in text.splitlines():
            ctx.log.info(line)
        outputs = {"container_id": container.id, "exit_code": str(result.exit_code), "output": ctx.masker(text[-MAX_LOG_OUTPUT:])}
        if result.exit_code != 0 and params["check-exit-code"]:
            raise CommandFailed(f"command in {params['container']} exited with code {result.exit_code}",
                                exit_code=result.exit_code, outputs=outputs)
        return outputs

    async def _stop(self, ctx: NodeContext, client: Any, params: dict[str, Any]) -> dict[str, str]:
        container = await self._container(client, params)
        await call(container.stop, timeout=params["stop-timeout"])
        await call(container.reload)
        return {"container_id": container.id, "status": container.status}

    async def _rm(self, ctx: NodeContext, client: Any, params: dict[str, Any]) -> dict[str, str]:
        container = await self._container(client, params)
        await call(container.remove, force=params["force"])
        return {"container_id": container.id}

    async def _logs(self, ctx: NodeContext, client: Any, params: dict[str, Any]) -> dict[str, str]:
        container = await self._container(client, params)
        raw = await call(container.logs, tail=params["tail"])
        text = raw.decode("utf-8", errors="replace")
        for line in text.splitlines():
            ctx.log.info(line)
        return {"container_id": container.id, "output": ctx.masker(text[-MAX_LOG_OUTPUT:])}

    async def _inspect(self, ctx: NodeContext, client: Any, params: dict[str, Any]) -> dict[str, str]:
        container = await self._container(client, params)
        return {"container_id": container.id, "status": container.status,
                "inspect": ctx.masker(json.dumps(container.attrs, sort_keys=True, default=str))}
