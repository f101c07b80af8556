"""hashFiles() in a step's run, env and with is computed on the agent, over the files the job's
earlier steps wrote in its workspace (issue #12: it used to wedge the run, or fail with "only
available on the agent")."""

from __future__ import annotations

import hashlib

from waterflow import Client

WORKFLOW = """
name: cache-key
jobs:
  build:
    runs-on: local
    steps:
      - run: mkdir -p deps && printf 'requests==2.0\\n' > deps/requirements.lock
      - env:
          KEY: deps-${{ hashFiles('**/*.lock') }}
        run: |
          echo "env=$KEY"
          echo "run=${{ hashFiles('**/*.lock') }}"
          echo "none=[${{ hashFiles('*.nothing') }}]"
"""


def test_hashfiles_is_computed_in_the_workspace(client: Client) -> None:
    state = client.wait(client.submit(WORKFLOW)["id"], timeout=60)
    assert state["status"] == "succeeded", state
    digest = hashlib.sha256(hashlib.sha256(b"requests==2.0\n").digest()).hexdigest()
    lines = [line["text"] for line in client.logs(state["id"])]
    assert f"env=deps-{digest}" in lines and f"run={digest}" in lines and "none=[]" in lines
