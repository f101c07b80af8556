"""The built-in template library (``libs/waterflow/templates``): every template compiles, and a
workflow calls one with ``uses: name@v1`` from anywhere, without a ``templates/`` directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from waterflow import Client
from waterflow.embedded import Stack
from waterflow_compiler.reuse import builtin_template_dirs

BUILTIN = sorted(p for d in builtin_template_dirs() for p in d.glob("*.yml"))


def waterflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "waterflow", *args], capture_output=True, text=True, timeout=90)


def test_the_library_is_shipped() -> None:
    assert [p.name for p in BUILTIN if p.name == "inspect@v1.yml"], BUILTIN


@pytest.mark.parametrize("template", BUILTIN, ids=lambda p: p.name)
def test_every_builtin_template_validates(template: Path) -> None:
    done = waterflow("validate", str(template))
    assert done.returncode == 0, done.stderr


def test_the_inspection_template_runs_on_every_agent_of_a_group(stack: Stack, client: Client, tmp_path: Path) -> None:
    caller = tmp_path / "check.yml"  # no templates/ next to it: the built-in library answers
    caller.write_text("name: check\njobs:\n  inspect:\n    uses: inspect@v1\n    with:\n      group: local\n")
    done = waterflow("--api-url", stack.api_url, "run", str(caller))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Run succeeded" in done.stdout and "host:" in done.stdout
