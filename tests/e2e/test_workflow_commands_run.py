"""A GitHub workflow that talks to its runner through stdout and files runs unchanged: outputs
from ``::set-output``, masks from ``::add-mask::``, annotations, ``$GITHUB_PATH`` and
``$GITHUB_STEP_SUMMARY`` (issue #16)."""

from __future__ import annotations

import msgspec

from waterflow import Client

WORKFLOW = """
name: commands
jobs:
  talk:
    runs-on: local
    outputs:
      result: ${{ steps.out.outputs.result }}
    steps:
      - id: out
        run: |
          echo "::set-output name=result::success"
          echo "::add-mask::s3cr3t-value"
          echo "the value is s3cr3t-value"
          echo "::warning file=deploy.sh,line=3::disk almost full"
          echo "## Deployed" >> "$GITHUB_STEP_SUMMARY"
          mkdir -p "$WATERFLOW_WORKSPACE/bin" && printf '#!/bin/sh\\necho tool-ran\\n' > "$WATERFLOW_WORKSPACE/bin/mytool"
          chmod +x "$WATERFLOW_WORKSPACE/bin/mytool" && echo "$WATERFLOW_WORKSPACE/bin" >> "$GITHUB_PATH"
      - run: mytool && test "${{ steps.out.outputs.result }}" = success
"""


def test_workflow_commands_and_runner_files(client: Client, stack) -> None:  # type: ignore[no-untyped-def]
    state = client.wait(client.submit(WORKFLOW)["id"], timeout=60)
    assert state["status"] == "succeeded", state
    job = state["jobs"]["talk"]
    assert job["outputs"] == {"result": "success"}
    first = job["steps"][0]
    assert msgspec.to_builtins(first.annotations) == [{"level": "warning", "message": "disk almost full", "file": "deploy.sh", "line": 3}]
    assert first["summary"].strip() == "## Deployed"
    lines = [line["text"] for line in client.logs(state["id"])]
    assert "the value is ***" in lines and not any("s3cr3t-value" in line for line in lines)
    assert not any(line.startswith("::") for line in lines)
    assert "tool-ran" in lines
    import subprocess
    import sys

    shown = subprocess.run([sys.executable, "-m", "waterflow", "--api-url", stack.api_url, "status", state["id"]],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "warning deploy.sh:3: disk almost full" in shown.stdout and "Deployed" in shown.stdout
