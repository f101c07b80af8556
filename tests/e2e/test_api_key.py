"""With an API key configured, every endpoint but /v1/health needs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from waterflow import ApiError, Client
from waterflow.embedded import Stack


def test_api_key_is_required_when_configured(tmp_path: Path) -> None:
    stack = Stack(data_dir=tmp_path / "stack", env={"WATERFLOW_API_KEY": "k-123456"})
    stack.start()
    try:
        with pytest.raises(ApiError) as caught:
            Client(stack.api_url).list()
        assert caught.value.status == 401
        assert "needs a key" in str(caught.value)
        with pytest.raises(ApiError):
            Client(stack.api_url, api_key="wrong").submit("jobs: {}")
        client = Client(stack.api_url, api_key="k-123456")
        run_id = client.submit("jobs:\n  j:\n    runs-on: local\n    steps:\n      - run: echo ok\n")["id"]
        assert client.wait(run_id, timeout=60)["status"] == "succeeded"
        cli = subprocess.run(
            [sys.executable, "-m", "waterflow", "--api-url", stack.api_url, "list"],
            capture_output=True, text=True, timeout=60, env={"WATERFLOW_API_KEY": "k-123456", "PATH": "/usr/bin:/bin"},
        )
        assert cli.returncode == 0 and run_id in cli.stdout
    finally:
        stack.stop()


SIGNED = """
name: signed-hook
jobs:
  j:
    runs-on: local
    steps:
      - run: echo "ref ${{ github.event_name }}"
"""


def test_a_webhook_signed_with_its_trigger_secret_needs_no_api_key(tmp_path: Path) -> None:
    """Issue #13 row 8: webhook callers (GitHub, GitLab) cannot send our API key; each trigger has
    its own secret, and a call signed with it (HMAC-SHA256 of the body, GitHub's
    X-Hub-Signature-256 scheme) is accepted; a wrong or missing signature without the key is not."""
    stack = Stack(data_dir=tmp_path / "stack", env={"WATERFLOW_API_KEY": "k-123456"})
    stack.start()
    try:
        admin = Client(stack.api_url, api_key="k-123456")
        trigger = admin.add_trigger(SIGNED, "signed.yml")
        secret = trigger["webhook_secret"]
        assert all(t.webhook_secret is None for t in admin.triggers())  # shown once, never listed
        anonymous = Client(stack.api_url)
        with pytest.raises(ApiError) as caught:
            anonymous.fire_trigger(trigger["id"])
        assert caught.value.status == 401
        with pytest.raises(ApiError) as caught:
            anonymous.fire_trigger(trigger["id"], secret="not-the-secret")
        assert caught.value.status == 401 and "signature" in str(caught.value)
        fired = anonymous.fire_trigger(trigger["id"], secret=secret)
        assert fired["status"] in ("created", "fired") and fired["run_id"]
    finally:
        stack.stop()
