"""An agent never runs more steps at once than ``max_concurrent_steps``, from its group's queue
and its own subject (fan-out) together; with one slot, both sources still get served."""

from __future__ import annotations

import time
from pathlib import Path

from waterflow import Client
from waterflow.embedded import Stack

WORKFLOW = """
jobs:
""" + "".join(
    f"  queued{i}:\n    runs-on: solo\n    steps:\n      - run: sleep 0.4\n" for i in range(4)
) + """
  pinned:
    runs-on: {group: solo, each: true}
    steps:
      - run: sleep 0.4
"""


def _wait_healthy(client: Client, name: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(a["name"] == name and a["status"] == "healthy" for a in client.agents()):
            return
        time.sleep(0.2)
    raise AssertionError(f"agent {name} never became healthy")


def test_one_slot_runs_one_step_at_a_time_from_both_sources(tmp_path: Path) -> None:
    stack = Stack(data_dir=tmp_path / "stack", agent_groups=())
    stack.start()
    try:
        stack.start_agent("solo-1", ["solo"], WATERFLOW_MAX_CONCURRENT_STEPS="1")
        client = Client(stack.api_url)
        _wait_healthy(client, "solo-1")
        run_id = client.submit(WORKFLOW, "slots.yml")["id"]
        state = client.wait(run_id, timeout=90)
        assert state["status"] == "succeeded", state
        spans = sorted(
            (step.started_at, step.finished_at, job.id)  # datetimes (waterflow.models.StepInfo)
            for job in state["jobs"].values() for step in job["steps"]
        )
        assert len(spans) == 5  # four queued jobs and the fan-out instance
        for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
            assert start >= end, f"{second} started before {first} finished on a one-slot agent"
    finally:
        stack.stop()
