"""A workflow calling another file (job-level ``uses:``) runs through the API with its outputs."""

from __future__ import annotations

from pathlib import Path

from waterflow import Client
from waterflow.client import called_workflows

CALLED = """
inputs:
  target: {type: string, required: true}
outputs:
  where: ${{ jobs.push.outputs.where }}
jobs:
  push:
    runs-on: local
    outputs:
      where: ${{ steps.p.outputs.where }}
    steps:
      - id: p
        env:
          TARGET: ${{ inputs.target }}
        run: echo "where=$TARGET" >> "$WATERFLOW_OUTPUT"
"""

CALLER = """
jobs:
  call:
    uses: ./deploy.yml
    with:
      target: prod-eu
  after:
    runs-on: local
    needs: call
    steps:
      - run: echo "deployed to ${{ needs.call.outputs.where }}"
"""


def test_called_workflow_runs_and_returns_outputs(client: Client, tmp_path: Path) -> None:
    (tmp_path / "deploy.yml").write_text(CALLED)
    main = tmp_path / "main.yml"
    main.write_text(CALLER)
    workflows = called_workflows(str(main))
    assert any("deploy.yml" in key for key in workflows)
    run = client.submit(CALLER, str(main), workflows=workflows)
    state = client.wait(run["id"], timeout=60)
    assert state["status"] == "succeeded"
    assert "deployed to prod-eu" in [line["text"] for line in client.logs(run["id"])]
