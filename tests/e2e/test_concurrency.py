"""``concurrency:`` groups: one run of a group at a time; later runs queue or cancel the running one."""

from __future__ import annotations

import time

from waterflow import Client

QUEUED = """
name: deploy
inputs:
  env: {type: string, default: staging}
concurrency:
  group: deploy-${{ inputs.env }}
jobs:
  d:
    runs-on: local
    steps:
      - run: sleep 1.5
"""


def test_second_run_of_a_group_waits_for_the_first(client: Client) -> None:
    first = client.submit(QUEUED, "d.yml")["id"]
    second = client.submit(QUEUED, "d.yml")["id"]
    other_group = client.submit(QUEUED, "d.yml", inputs={"env": "prod"})["id"]
    time.sleep(0.7)
    assert client.get(second)["status"] == "queued"
    assert client.get(second)["queued_behind"] == first
    assert client.get(other_group)["status"] == "running"  # another group is not blocked
    a, b = client.wait(first, timeout=60), client.wait(second, timeout=60)
    assert a["status"] == b["status"] == "succeeded"
    assert b["started_at"] >= a["finished_at"]


def test_cancel_in_progress_cancels_the_running_run(client: Client) -> None:
    workflow = QUEUED.replace("group: deploy-${{ inputs.env }}", "group: ci\n  cancel-in-progress: true").replace("sleep 1.5", "sleep 30")
    first = client.submit(workflow, "c.yml")["id"]
    deadline = time.monotonic() + 30
    while client.get(first)["jobs"]["d"]["steps"][0]["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    second = client.submit(workflow, "c.yml")["id"]
    assert client.wait(first, timeout=60)["status"] == "cancelled"
    client.cancel(second)
    assert client.wait(second, timeout=60)["status"] == "cancelled"
