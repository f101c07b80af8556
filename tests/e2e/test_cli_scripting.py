"""The CLI in scripts: JSON that parses, ids never cut or wrapped when piped."""

from __future__ import annotations

import json
import subprocess
import sys

from waterflow import Client
from waterflow.embedded import Stack

OK = "name: listed\njobs:\n  a:\n    runs-on: local\n    steps:\n      - run: echo listed\n"


def waterflow(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "waterflow", "--api-url", stack.api_url, *args],
                          capture_output=True, text=True, timeout=60)


def test_list_json_is_the_apis_shape(stack: Stack, client: Client) -> None:
    run_id = client.submit(OK)["id"]
    client.wait(run_id, timeout=60)
    done = waterflow(stack, "list", "--json", "--limit", "5")
    assert done.returncode == 0, done.stderr
    runs = json.loads(done.stdout)["runs"]
    assert run_id in [r["id"] for r in runs]


def test_piped_list_shows_whole_ids(stack: Stack, client: Client) -> None:
    run_id = client.submit(OK)["id"]
    done = waterflow(stack, "list", "--limit", "5")
    assert done.returncode == 0 and run_id in done.stdout
