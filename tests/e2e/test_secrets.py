"""Secrets reach the step but never its logs, outputs, events, or the API."""

from __future__ import annotations


import msgspec
import subprocess
import sys

from waterflow import Client
from waterflow.embedded import Stack

VALUE = "s3cr3t-Value-42"

WORKFLOW = """
jobs:
  use:
    runs-on: local
    steps:
      - id: s
        env:
          TOKEN: ${{ secrets.DEPLOY_TOKEN }}
        run: |
          echo "env token: $TOKEN"
          echo "inline: ${{ secrets.DEPLOY_TOKEN }}"
          test "$TOKEN" = "s3cr3t-Value-42"
          echo "leak=$TOKEN" >> "$WATERFLOW_OUTPUT"
      - run: echo "missing secret is empty [${{ secrets.NOT_SET }}]"
"""


def test_secret_is_usable_and_masked_everywhere(stack: Stack) -> None:
    client = Client(stack.api_url)
    client.set_secret("DEPLOY_TOKEN", VALUE)
    assert "DEPLOY_TOKEN" in [secret.name for secret in client.secrets()]
    run_id = client.submit(WORKFLOW, "s.yml")["id"]
    state = client.wait(run_id, timeout=60)
    assert state["status"] == "succeeded"
    texts = [line["text"] for line in client.logs(run_id)]
    assert "env token: ***" in texts and "inline: ***" in texts
    assert "missing secret is empty []" in texts
    assert state["jobs"]["use"]["steps"][0]["outputs"] == {"leak": "***"}
    everything = msgspec.json.encode([state, client.events(run_id), client.logs(run_id), client.secrets()]).decode()
    assert VALUE not in everything


def test_secret_cli_set_list_delete(stack: Stack) -> None:
    base = [sys.executable, "-m", "waterflow", "--api-url", stack.api_url, "secret"]
    done = subprocess.run([*base, "set", "CLI_SECRET"], input="from-stdin\n", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    listed = subprocess.run([*base, "list"], capture_output=True, text=True, timeout=60)
    assert "CLI_SECRET" in listed.stdout and "from-stdin" not in listed.stdout
    assert subprocess.run([*base, "delete", "CLI_SECRET"], capture_output=True, timeout=60).returncode == 0
    missing = subprocess.run([*base, "delete", "CLI_SECRET"], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no secret named" in missing.stderr
    bad = subprocess.run([*base, "set", "bad name", "--value", "x"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "invalid secret name" in bad.stderr
