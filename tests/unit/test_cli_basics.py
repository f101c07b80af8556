"""What a new user types first: ``waterflow``, ``waterflow --version``."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version


def waterflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "waterflow", *args], capture_output=True, text=True, timeout=60)


def test_version() -> None:
    done = waterflow("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"waterflow {version('waterflow')}"


def test_bare_waterflow_shows_help_and_succeeds() -> None:
    done = waterflow()
    assert done.returncode == 0
    assert "usage: waterflow" in done.stdout and "run" in done.stdout and not done.stderr
