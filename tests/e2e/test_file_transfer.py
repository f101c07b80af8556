"""Files from the submitter to agents and back, through /v1/files and the file nodes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from waterflow import ApiError, Client
from waterflow.embedded import Stack

WORKFLOW = """
jobs:
  use:
    runs-on: local
    steps:
      - uses: file/download@v1
        with: {object: inbox/config.ini, path: config.ini}
      - run: |
          grep -q 'mode=blue' config.ini
          sed 's/blue/green/' config.ini > result.ini
      - uses: file/upload@v1
        with: {path: result.ini, object: outbox/result.ini}
"""


def test_upload_run_download(stack: Stack, tmp_path: Path) -> None:
    client = Client(stack.api_url)
    source = tmp_path / "config.ini"
    source.write_bytes(b"[app]\nmode=blue\n" + bytes(range(256)) * 4096)  # 1 MiB of binary too
    stored = client.put_file(str(source), "inbox/config.ini")
    assert stored["size"] == source.stat().st_size
    state = client.wait(client.submit(WORKFLOW, "f.yml")["id"], timeout=60)
    assert state["status"] == "succeeded", state
    fetched = tmp_path / "result.ini"
    cli = subprocess.run([sys.executable, "-m", "waterflow", "--api-url", stack.api_url, "file", "get", "outbox/result.ini", str(fetched)],
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert fetched.read_bytes().startswith(b"[app]\nmode=green\n")
    assert {"inbox/config.ini", "outbox/result.ini"} <= {f["object"] for f in client.files()}
    with pytest.raises(ApiError) as caught:
        client.get_file("no/such/file", str(tmp_path / "x"))
    assert caught.value.status == 404
