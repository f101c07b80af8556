"""``uses:`` steps through the whole stack: API -> compiler -> scheduler -> agent -> node.

Uses the module-scoped ``stack`` fixture of tests/conftest.py (its agent's plugin directory is
``<data_dir>/work/plugins``, the default: ``plugins`` beside the agent's work dir).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from waterflow import ApiError, Client
from waterflow.embedded import Stack

REPO_ROOT = Path(__file__).resolve().parents[2]

NODES_WORKFLOW = """
name: nodes
jobs:
  deploy:
    runs-on: local
    steps:
      - id: health
        uses: http@v1
        with:
          url: {api}/v1/health
          expected-status: 200
      - id: config
        uses: config/edit@v1
        with:
          file: app.yml
          create: true
          set:
            server.port: 8080
          get: [server.port]
      - uses: env/set@v1
        with:
          env:
            DEPLOY_COLOR: blue
      - id: shell
        uses: shell@v1
        with:
          run: |
            echo "status=${{{{ steps.health.outputs.status }}}} port=${{{{ steps.config.outputs['server.port'] }}}} color=$DEPLOY_COLOR"
            cat app.yml
"""


def test_workflow_with_node_steps(client: Client, stack: Stack) -> None:
    run = client.submit(NODES_WORKFLOW.format(api=stack.api_url), "nodes.yml")
    state = client.wait(run["id"], timeout=60)
    steps = state["jobs"]["deploy"]["steps"]
    assert state["status"] == "succeeded", [(s.get("status"), s.get("error")) for s in steps]
    assert steps[0]["outputs"]["status"] == "200"
    assert steps[1]["outputs"]["server.port"] == "8080"
    assert steps[3]["outputs"]["last_lines"].splitlines() == ["status=200 port=8080 color=blue", "server:", "  port: 8080"]
    texts = [line["text"] for line in client.logs(run["id"])]
    assert "status=200 port=8080 color=blue" in texts


RETRIES = """
name: retries
jobs:
  j:
    runs-on: local
    steps:
      - uses: {uses}
        retry: {{attempts: 3, initial-interval: 1}}
        with: {with_}
"""


def test_retryable_node_errors_use_the_retry_policy_and_others_do_not(client: Client) -> None:
    refused = client.submit(RETRIES.format(uses="http@v1", with_="{url: 'http://127.0.0.1:1/', timeout: 2}"), "r.yml")
    missing = client.submit(RETRIES.format(uses="config/edit@v1", with_="{file: missing.yml, get: [a]}"), "m.yml")
    refused_state, missing_state = client.wait(refused["id"], timeout=60), client.wait(missing["id"], timeout=60)
    assert refused_state["status"] == missing_state["status"] == "failed"
    assert refused_state["jobs"]["j"]["steps"][0]["attempt"] == 3, "a refused connection may heal: every attempt is used"
    step = missing_state["jobs"]["j"]["steps"][0]
    assert step["attempt"] == 1, "a missing file will not appear by retrying"
    assert "'missing.yml' does not exist" in step["error"]


def test_plugin_dropped_into_a_running_agent(client: Client, stack: Stack) -> None:
    plugin_dir = stack.data_dir / "work" / "plugins"
    plugin_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "examples" / "plugins" / "semver_bump.py", plugin_dir / "semver_bump.py")
    workflow = """
name: plugin
jobs:
  j:
    runs-on: local
    steps:
      - id: bump
        uses: semver/bump@v1
        with: {current: 1.4.2, part: minor}
      - run: test "${{ steps.bump.outputs.version }}" = 1.5.0
"""
    # The agent publishes the plugin at its next heartbeat; the compiler learns it soon after.
    deadline = time.monotonic() + 30
    while not any(n["name"] == "semver/bump" and n["status"] == "ok" for n in client.nodes()):
        assert time.monotonic() < deadline, "the plugin never showed up in GET /v1/nodes"
        time.sleep(0.3)
    (info,) = client.node("semver/bump@v1")
    assert info["agents"] == ["local-agent"] and "local" in info["groups"]
    while True:
        try:
            run = client.submit(workflow, "plugin.yml")
            break
        except ApiError as error:
            assert time.monotonic() < deadline and error.status == 400, error
            time.sleep(0.5)
    state = client.wait(run["id"], timeout=60)
    steps = state["jobs"]["j"]["steps"]
    assert state["status"] == "succeeded", [(s.get("status"), s.get("error")) for s in steps]
    assert steps[0]["outputs"] == {"version": "1.5.0", "previous": "1.4.2"}
    (plugin_dir / "semver_bump.py").unlink()


def test_broken_plugin_is_listed_as_failed_and_the_agent_keeps_working(client: Client, stack: Stack) -> None:
    import subprocess
    import sys

    plugin_dir = stack.data_dir / "work" / "plugins"
    plugin_dir.mkdir(parents=True, exist_ok=True)
    (plugin_dir / "broken_thing.py").write_text("def oops(:\n")
    try:
        deadline = time.monotonic() + 30
        while not (failed := [n for n in client.nodes() if n["failed_on"]]):
            assert time.monotonic() < deadline, "the broken plugin never showed up as failed"
            time.sleep(0.3)
        assert "broken_thing.py" in str(failed[0]["failed_on"][0]["error"]) or "broken_thing" in failed[0]["name"]
        shown = subprocess.run([sys.executable, "-m", "waterflow", "--api-url", stack.api_url, "node", "list"],
                               capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0 and "failed" in shown.stdout and "shell@v1" in shown.stdout
        run = client.submit("jobs:\n  j:\n    runs-on: local\n    steps:\n      - run: echo still fine\n")
        assert client.wait(run["id"], timeout=60)["status"] == "succeeded"
    finally:
        (plugin_dir / "broken_thing.py").unlink()
