"""``trigger fire`` answers with the id of the run it starts: the API chooses it before the fire
is published, so ``waterflow status <id>`` right after finds the run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from waterflow import Client
from waterflow.embedded import Stack

HOOKED = """\
name: hooked
inputs:
  who: {type: string, default: nobody}
jobs:
  greet:
    runs-on: local
    steps:
      - run: echo "hello ${{ inputs.who }}"
"""


def waterflow(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "waterflow", "--api-url", stack.api_url, *args],
                          capture_output=True, text=True, timeout=90)


def test_trigger_fire_prints_the_run_id_and_status_finds_it(stack: Stack, client: Client, tmp_path: Path) -> None:
    workflow = tmp_path / "hooked.yml"
    workflow.write_text(HOOKED)
    trigger_id = client.add_trigger(HOOKED, "hooked.yml")["id"]

    fired = waterflow(stack, "trigger", "fire", trigger_id, "--input", "who=cli")
    assert fired.returncode == 0, fired.stderr
    run_id = fired.stdout.strip()  # piped: the id alone
    assert re.fullmatch(r"r[0-9a-f]+", run_id), fired.stdout
    client.wait(run_id, timeout=60)
    status = waterflow(stack, "status", run_id, "--json")
    assert status.returncode == 0, status.stderr
    state = json.loads(status.stdout)
    assert (state["id"], state["status"], state["event_name"]) == (run_id, "succeeded", "webhook")
    assert "hello cli" in [line["text"] for line in client.logs(run_id)]

    as_json = json.loads(waterflow(stack, "trigger", "fire", trigger_id, "--json").stdout)
    assert as_json["trigger"] == trigger_id and as_json["run_id"] != run_id
    assert client.wait(as_json["run_id"], timeout=60)["status"] == "succeeded"


def test_the_webhook_answers_with_the_run_id(client: Client) -> None:
    trigger = client.add_trigger(HOOKED, "hooked.yml")
    fired = client.fire_trigger(trigger["id"], {"who": "sdk"}, secret=trigger["webhook_secret"])
    assert fired["status"] == "created"  # the API waited for the run to exist
    state = client.get(fired["run_id"])  # no 404 right after the answer
    assert state["id"] == fired["run_id"]
    assert client.wait(fired["run_id"], timeout=60)["status"] == "succeeded"
