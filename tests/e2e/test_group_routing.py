"""Jobs on groups defined only in server-groups.yml reach a member agent (no agent pulls them by name)."""

from __future__ import annotations

import time
from pathlib import Path

from waterflow import Client
from waterflow.embedded import Stack

GROUPS = """
groups:
  databases:
    agents: [db-1]
  everything:
    include: [databases]
    labels: {role: web}
"""


def _wait_healthy(client: Client, name: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        agents = {a["name"]: a for a in client.agents()}
        if agents.get(name, {}).get("status") == "healthy":
            return
        time.sleep(0.2)
    raise AssertionError(f"agent {name} never became healthy")


def test_defined_group_routes_to_a_member(tmp_path: Path) -> None:
    groups_file = tmp_path / "server-groups.yml"
    groups_file.write_text(GROUPS)
    stack = Stack(data_dir=tmp_path / "stack", env={"WATERFLOW_SERVER_GROUPS": str(groups_file)})
    stack.start()
    try:
        stack.start_agent("db-1", ["storage"])
        stack.start_agent("web-9", ["frontends"], WATERFLOW_LABELS="role=web")
        client = Client(stack.api_url)
        for name in ("db-1", "web-9"):
            _wait_healthy(client, name)
        workflow = (
            "jobs:\n"
            "  migrate:\n    runs-on: databases\n    steps:\n      - run: echo \"on $WATERFLOW_AGENT\"\n"
            "  all:\n    runs-on: {group: everything, each: true}\n    steps:\n      - run: echo \"each $WATERFLOW_AGENT\"\n"
        )
        run_id = client.submit(workflow, "g.yml")["id"]
        state = client.wait(run_id, timeout=60)
        assert state["status"] == "succeeded", state
        texts = {line["text"] for line in client.logs(run_id)}
        assert "on db-1" in texts
        assert {"each db-1", "each web-9"} <= texts
    finally:
        stack.stop()
