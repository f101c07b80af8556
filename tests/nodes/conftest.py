"""Fixtures for node tests: run a ``uses:`` step through the real executor, a real nats-server
for the Object Store, and a real container engine (podman serving the Docker API)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nodetest import NodeRunner
from waterflow.embedded import free_port, nats_server_binary, wait_for_port
from waterflow_agent.nodes import NodeRegistry

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTAINER_ENGINE_SCRIPT = REPO_ROOT.parent / "shared" / "container-engine" / "start.sh"


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    path = tmp_path / "plugins"
    path.mkdir()
    return path


@pytest.fixture
def run_node(tmp_path: Path, plugin_dir: Path) -> NodeRunner:
    workspace = tmp_path / "work" / "rtest" / "job"
    workspace.mkdir(parents=True)
    return NodeRunner(workspace=workspace, temp_dir=tmp_path / "work" / "_temp",
                      registry=NodeRegistry(plugin_dir), env=dict(os.environ))


# --- NATS ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    store = tmp_path_factory.mktemp("nats")
    process = subprocess.Popen([nats_server_binary(), "-js", "-sd", str(store), "-a", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, 10, process)
        yield f"nats://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[Any]:
    nc = await nats.connect(nats_url)
    yield nc.jetstream()
    await nc.close()


# --- containers ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def docker_host() -> str:
    """Start (or reuse) the podman engine serving the Docker API; skip with the reason if impossible."""
    if os.environ.get("DOCKER_HOST") and shutil.which("docker-compose"):
        return os.environ["DOCKER_HOST"]
    if not CONTAINER_ENGINE_SCRIPT.exists():
        pytest.skip(f"no container engine: {CONTAINER_ENGINE_SCRIPT} is missing (it lives in shared/ beside the repo)")
    done = subprocess.run(["bash", str(CONTAINER_ENGINE_SCRIPT)], capture_output=True, text=True, timeout=600)
    exports = [line for line in done.stdout.splitlines() if line.startswith("export DOCKER_HOST=")]
    if done.returncode != 0 or not exports:
        pytest.skip(f"the container engine could not be started: {(done.stderr or done.stdout).strip()[-300:]}")
    host = exports[-1].split("=", 1)[1]
    os.environ["DOCKER_HOST"] = host
    return host


@pytest.fixture
def docker_runner(run_node: NodeRunner, docker_host: str) -> NodeRunner:
    run_node.env["DOCKER_HOST"] = docker_host
    return run_node
