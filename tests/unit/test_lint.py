"""ruff's correctness rules (undefined names, unused imports, syntax errors) over the whole tree."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_finds_no_correctness_problems() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (it is in the dev extras)")
    result = subprocess.run(
        [ruff, "check", "--select", "F,E9", "--output-format", "concise", "libs", "services", "tests", "bench", "examples"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
