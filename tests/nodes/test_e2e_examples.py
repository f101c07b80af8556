"""Every workflow in examples/nodes/ runs to success through the whole stack."""

from __future__ import annotations

from pathlib import Path

import pytest
from waterflow import Client
from waterflow.embedded import Stack

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples" / "nodes").glob("*.yml"))
NEEDS_CONTAINERS = {"compose-deploy.yml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(path: Path, client: Client, stack: Stack, request: pytest.FixtureRequest) -> None:
    source = path.read_text(encoding="utf-8")
    if path.name in NEEDS_CONTAINERS:
        docker_host = request.getfixturevalue("docker_host")
        # The stack's agent may have started before the engine: hand it the socket through env.
        source = source.replace("\njobs:\n", f"\nenv:\n  DOCKER_HOST: {docker_host}\njobs:\n", 1)
    inputs = {"url": f"{stack.api_url}/v1/health"} if path.name == "http-health.yml" else None
    run = client.submit(source, path.name, inputs=inputs)
    state = client.wait(run["id"], timeout=120)
    failed = [(job, s.get("name"), s.get("error")) for job, j in state["jobs"].items() for s in j["steps"] if s["status"] == "failed"]
    assert state["status"] == "succeeded", failed
