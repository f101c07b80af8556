"""docker, docker/compose-up and docker/compose-down against a real engine (podman serving the
Docker API; see the ``docker_host`` fixture). Only the local image ``localhost/busybox`` exists."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import pytest
from nodetest import BUSYBOX, NodeRunner


@pytest.fixture
def engine(docker_host: str) -> Iterator[Any]:
    client = docker.DockerClient(base_url=docker_host)
    yield client
    client.close()


@pytest.fixture
def name() -> Iterator[str]:
    value = f"wf-test-{uuid.uuid4().hex[:8]}"
    yield value
    client = docker.from_env()
    for container in client.containers.list(all=True, filters={"name": value}):
        container.remove(force=True)
    client.close()


async def test_run_attached_streams_output_and_returns_exit_code(docker_runner: NodeRunner, engine: Any, name: str) -> None:
    step = await docker_runner("docker@v1", {"action": "run", "image": BUSYBOX, "name": name,
                                             "command": ["sh", "-c", "echo hello $WHO; echo second"], "env": {"WHO": "podman"}})
    assert step.result.succeeded, step.result.error
    assert step.result.outputs["exit_code"] == "0" and step.result.outputs["output"] == "hello podman\nsecond"
    assert ("stdout", "hello podman") in step.lines
    assert not engine.containers.list(all=True, filters={"name": name}), "an attached run removes its container"

    failed = await docker_runner("docker", {"action": "run", "image": BUSYBOX, "command": "sh -c 'exit 3'"})
    assert failed.result.exit_code == 3 and failed.result.retryable


async def test_detached_lifecycle_exec_logs_inspect_stop_rm(docker_runner: NodeRunner, engine: Any, name: str) -> None:
    run = await docker_runner("docker", {"action": "run", "image": BUSYBOX, "name": name, "detach": True,
                                         "command": ["sh", "-c", "echo started; sleep 300"], "labels": {"owner": "waterflow-test"}})
    assert run.result.succeeded, run.result.error
    container_id = run.result.outputs["container_id"]
    assert engine.containers.get(name).id == container_id

    exec_ = await docker_runner("docker", {"action": "exec", "container": name, "command": ["cat", "/etc/hostname"]})
    assert exec_.result.succeeded and exec_.result.outputs["exit_code"] == "0"
    exec_fail = await docker_runner("docker", {"action": "exec", "container": name, "command": ["false"]})
    assert exec_fail.result.exit_code == 1

    logs = await docker_runner("docker", {"action": "logs", "container": name})
    assert logs.result.outputs["output"].strip() == "started"

    inspect = await docker_runner("docker", {"action": "inspect", "container": name})
    assert inspect.result.outputs["status"] == "running"
    assert json.loads(inspect.result.outputs["inspect"])["Config"]["Labels"]["owner"] == "waterflow-test"

    stop = await docker_runner("docker", {"action": "stop", "container": name, "stop-timeout": 0})
    assert stop.result.succeeded and stop.result.outputs["status"] == "exited"
    rm = await docker_runner("docker", {"action": "rm", "container": name})
    assert rm.result.succeeded
    assert not engine.containers.list(all=True, filters={"name": name})


async def test_missing_image_and_container_are_not_retryable(docker_runner: NodeRunner) -> None:
    step = await docker_runner("docker", {"action": "run", "image": "localhost/does-not-exist:1"})
    assert not step.result.succeeded and not step.result.retryable
    step = await docker_runner("docker", {"action": "inspect", "container": "wf-no-such-container"})
    assert not step.result.retryable and "not found" in (step.result.error or "").lower()
    step = await docker_runner("docker", {"action": "exec", "container": "x"})
    assert "'command' is a required property" in (step.result.error or "")


async def test_unreachable_engine_is_retryable(run_node: NodeRunner, tmp_path: Any) -> None:
    run_node.env["DOCKER_HOST"] = f"unix://{tmp_path}/no.sock"
    step = await run_node("docker", {"action": "pull", "image": BUSYBOX})
    assert step.result.retryable and not step.result.succeeded


COMPOSE = """
services:
  web:
    image: localhost/busybox:latest
    command: ["httpd", "-f", "-p", "8080"]
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
  worker:
    image: localhost/busybox:latest
    command: ["sh", "-c", "echo $$GREETING; sleep 300"]
    environment:
      GREETING: ${GREETING}
"""


async def test_compose_up_inline_waits_then_down(docker_runner: NodeRunner, engine: Any) -> None:
    project = f"wfc{uuid.uuid4().hex[:6]}"
    label = {"label": f"com.docker.compose.project={project}"}
    try:
        up = await docker_runner("docker/compose-up@v1", {"project": project, "inline": COMPOSE, "env": {"GREETING": "hi"},
                                                         "wait-timeout": 60})
        assert up.result.succeeded, up.result.error + "\n" + up.text
        assert json.loads(up.result.outputs["services"]) == {"web": "healthy", "worker": "running"}
        worker = next(c for c in engine.containers.list(filters=label) if c.labels["com.docker.compose.service"] == "worker")
        assert "GREETING=hi" in worker.attrs["Config"]["Env"]

        down = await docker_runner("docker/compose-down@v1", {"project": project, "stop-timeout": 0})
        assert down.result.succeeded, down.result.error
        assert json.loads(down.result.outputs["removed"]) == ["web", "worker"]
        assert not engine.containers.list(all=True, filters=label)
        assert not engine.networks.list(filters=label)
    finally:
        for container in engine.containers.list(all=True, filters=label):
            container.remove(force=True)


async def test_compose_up_from_file_fails_when_a_service_exits(docker_runner: NodeRunner, engine: Any) -> None:
    project = f"wfc{uuid.uuid4().hex[:6]}"
    (docker_runner.workspace / "deploy").mkdir()
    (docker_runner.workspace / "deploy" / "compose.yml").write_text(
        "services:\n  broken:\n    image: localhost/busybox:latest\n    command: ['sh', '-c', 'exit 1']\n")
    try:
        up = await docker_runner("docker/compose-up", {"project": project, "file": "deploy/compose.yml", "wait-timeout": 30})
        assert not up.result.succeeded and up.result.retryable
        assert "services not healthy" in (up.result.error or "") and "broken" in (up.result.error or "")
        down = await docker_runner("docker/compose-down", {"project": project, "file": "deploy/compose.yml", "stop-timeout": 0})
        assert down.result.succeeded, down.result.error
    finally:
        for container in engine.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"}):
            container.remove(force=True)


async def test_cancelled_attached_run_removes_its_container(docker_runner: NodeRunner, engine: Any, name: str) -> None:
    import asyncio

    cancel = asyncio.Event()
    running = asyncio.create_task(docker_runner("docker", {"action": "run", "image": BUSYBOX, "name": name,
                                                           "command": ["sh", "-c", "echo up; sleep 300"]}, cancel=cancel))
    deadline = asyncio.get_running_loop().time() + 30
    while not engine.containers.list(filters={"name": name}):
        assert asyncio.get_running_loop().time() < deadline, "the container never started"
        await asyncio.sleep(0.1)
    cancel.set()
    step = await asyncio.wait_for(running, 30)
    assert step.result.error == "cancelled"
    assert not engine.containers.list(all=True, filters={"name": name})
