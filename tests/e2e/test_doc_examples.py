"""Every workflow example in the docs that targets the local agent is run for real.

An example is a ```yaml block with a top-level ``jobs:`` whose jobs all say ``runs-on: local``.
Skipped, with the reason shown: examples that need a container engine when none is configured,
and examples that reach a host other than this machine (CI has no network).
Add ``# expect: failed`` inside a block whose point is to fail, and ``# docs: not run (why)``
inside a fragment that cannot run on its own (the compiler tests still check it).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from waterflow import Client

ROOT = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(r"```yaml\n(.*?)```", re.S)
_REMOTE_URL = re.compile(r"https?://(?!127\.0\.0\.1|localhost)[\w.-]+")


def _examples() -> list[pytest.param]:
    params = []
    for path in sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]):
        for number, block in enumerate(_BLOCK.findall(path.read_text(encoding="utf-8"))):
            if not re.search(r"^jobs:", block, re.M):
                continue
            try:
                document = yaml.safe_load(block)
            except yaml.YAMLError:
                continue  # the compiler test reports broken examples with their position
            jobs = document.get("jobs") or {}
            if not all(isinstance(j, dict) and j.get("runs-on") == "local" for j in jobs.values()):
                continue
            marks = []
            if "# docs: not run" in block:
                marks.append(pytest.mark.skip(reason=block.split("# docs: not run", 1)[1].splitlines()[0].strip(" ()")))
            elif _REMOTE_URL.search(block):
                marks.append(pytest.mark.skip(reason="reaches a remote host; CI has no network"))
            elif "docker" in block and not os.environ.get("DOCKER_HOST"):
                marks.append(pytest.mark.skip(reason="needs a container engine (DOCKER_HOST)"))
            params.append(pytest.param(block, id=f"{path.relative_to(ROOT)}#{number}", marks=marks))
    return params


def _sample_inputs(workflow: str) -> dict[str, object]:
    """A value for every required input without a default, as a user would pass with --input."""
    samples: dict[str, object] = {"string": "example", "number": 1, "boolean": True}
    inputs = (yaml.safe_load(workflow) or {}).get("inputs") or {}
    values: dict[str, object] = {}
    for name, spec in inputs.items():
        spec = spec or {}
        if spec.get("required") and spec.get("default") is None:
            values[name] = (spec.get("options") or [None])[0] if spec.get("type") == "choice" else samples[spec.get("type", "string")]
    return values


@pytest.mark.parametrize("workflow", _examples())
def test_doc_example_runs(workflow: str, client: Client) -> None:
    run = client.submit(workflow, "example.yml", inputs=_sample_inputs(workflow))
    state = client.wait(run["id"], timeout=120)
    expected = "failed" if "# expect: failed" in workflow else "succeeded"
    assert state["status"] == expected, (state, client.logs(run["id"])[-20:])


def test_notification_example_in_observability_guide(stack, client: Client) -> None:  # type: ignore[no-untyped-def]
    """The Python subscriber shown in docs/guides/observability.md is told when a run finishes."""
    import subprocess
    import sys
    import time

    guide = (ROOT / "docs" / "guides" / "observability.md").read_text(encoding="utf-8")
    (snippet,) = re.findall(r"```python\n(.*?)```", guide, re.S)
    env = {**os.environ, "WATERFLOW_NATS_URL": stack.nats_url, "WAIT_SECONDS": "60"}
    subscriber = subprocess.Popen([sys.executable, "-c", snippet], env=env, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)  # let it subscribe: core subscriptions see only what comes after them
        run_id = client.submit("jobs:\n  j:\n    runs-on: local\n    steps:\n      - run: echo hi\n")["id"]
        out, _ = subscriber.communicate(timeout=60)
    finally:
        subscriber.kill()
    assert f"run {run_id} finished: succeeded" in out
